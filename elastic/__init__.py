"""Elastic: explore accuracy against resources for compressed CNNs.

The public API lives in the submodules, imported where needed so that light
users (the explorer page) do not pay for torch:

- `elastic.models`: architectures by name, pruned structures as config dicts
- `elastic.data`: datasets by name, validation splits, synthetic data
- `elastic.profile`: per-layer params / MACs / memory and peak memory
- `elastic.train`: the training and evaluation engine
- `elastic.methods`: the method registry; complexity-driven pruning, block pruning, elastic prune-and-grow
- `elastic.checkpoints`: every checkpoint written and read, and the checks on files
- `elastic.identity`: run ids, built and taken apart
- `elastic.results`: the results schema and its files
- `elastic.explore`: Pareto fronts and budgets for the app (pandas only)
- `elastic.deploy`: latency, ONNX / TorchScript export, int8
- `elastic.grids`, `elastic.sweep`: grids of runs, run resumably, local or on Ray
- `elastic.commands`, `elastic.cli`: the command line, at the edge (nothing else imports them)

Only `elastic.ui` (the app's helpers) imports streamlit.
"""

__version__ = "0.1.0"
