"""The compression methods, by name: one registry that the command line, the
sweep grids, the app's method groups, the results schema and the tests read.

Each method's algorithm lives in a pure module (complexity.py for PA/FA/MA and
uniform thinning, blocks.py, grow.py); the driver of its family (options, data,
checkpoints, results rows) in elastic.commands. A registered Method says what
the rest of the product needs to know: a label, the paper, a summary, what the
rows' columns mean for it, the command-line arguments that run it, and its
`algorithm`: the function its family's driver calls, named "module:function"
and imported only when called. What that function is, by family:

    filters  (arch, num_classes, complexity.FilterOptions) -> complexity.PrunePlan
    blocks   (model, candidate block names, seed) -> (removal order, scores),
             or (None, {}) when each step measures which block goes
    elastic  (grow.ElasticNet, grow.ElasticTraining) -> None: trains the levels,
             reporting each final one through ElasticTraining.level_done

So a method of an existing family is its function and its registration here;
the CLI's choices, the grids, the app's groups and tests/test_methods.py
follow. A new family also needs a driver in elastic.commands and a job builder
in elastic.grids.FAMILY_JOBS."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from elastic.catalog import REMOVABLE_BLOCKS
from elastic.registry import Registry


@dataclass(frozen=True)
class Method:
    name: str          # the value of the results' "method" column
    label: str
    paper: str
    summary: str
    argv: tuple[str, ...]    # `python -m elastic ARGV ...` runs it (ARGV[0] is the command)
    family: str = ""         # methods one driver runs and one app page compares: "filters", "blocks", "elastic"
    modes: bool = False      # rows carry a complexity mode (PA/FA/MA) that tells configurations apart
    stage: str = ""          # what the results' "level" column counts: "step" (blocks removed) or "level" (width)
    grid: bool = True        # the sweep grids run it
    algorithm: str = ""      # "module:function" that its family's driver calls (see above); "" for the baseline

    @property
    def command(self) -> str:
        return self.argv[0]

    def implementation(self) -> Callable[..., Any]:
        """The function `algorithm` names, imported now."""
        module, _, name = self.algorithm.partition(":")
        if not module or not name:
            raise ValueError(f"method {self.name!r} names no algorithm")
        return getattr(importlib.import_module(module), name)


METHODS: Registry[Method] = Registry("method")
for _method in (
    Method("baseline", "Baseline", "", "the unpruned network trained with the recipe", ("train",)),
    Method("uniform", "Uniform thinning", "",
           "every layer thinned by the same factor, trained from scratch (a reference for complexity pruning)",
           ("prune", "--method", "uniform"), family="filters",
           algorithm="elastic.methods.complexity:uniform_thinning"),
    Method("complexity", "Complexity-driven (PA/FA/MA)",
           "Zawish, Davy, Abraham: complexity-driven CNN compression for resource-constrained edge AI",
           "layers sampled for filter pruning by their share of parameters, FLOPs or memory; trained from scratch",
           ("prune", "--method", "complexity"), family="filters", modes=True,
           algorithm="elastic.methods.complexity:complexity_plan"),
    Method("block", "Block pruning (direct)", "Wu, Davoodi, Hu: block pruning for residual networks",
           "residual blocks removed one at a time by measured accuracy, fine-tuned after each step",
           ("prune", "--method", "block"), family="blocks", stage="step",
           algorithm="elastic.methods.blocks:measured_order"),
    Method("block-l1", "Block pruning (L1 proxy)", "Wu, Davoodi, Hu (proxy baseline)",
           "blocks removed in the order of the L1 norm of their last BatchNorm scale",
           ("prune", "--method", "block-l1"), family="blocks", stage="step",
           algorithm="elastic.methods.blocks:l1_order"),
    Method("block-random", "Block pruning (random)", "Wu, Davoodi, Hu (proxy baseline)",
           "blocks removed in a random order", ("prune", "--method", "block-random"), family="blocks",
           stage="step", grid=False, algorithm="elastic.methods.blocks:random_order"),
    Method("elastic", "Elastic prune-and-grow", "Mangal et al.: prune-and-grow elastic networks",
           "one model with nested widths: pruned to a core, grown back level by level with smaller levels frozen",
           ("grow",), family="elastic", stage="level", algorithm="elastic.methods.grow:prune_and_grow"),
    Method("elastic-joint", "Elastic, joint training", "slimmable-network style comparison",
           "the same nested widths trained jointly, all widths in every step", ("grow", "--joint"),
           family="elastic", stage="level", algorithm="elastic.methods.grow:joint"),
):
    METHODS.add(_method.name, _method)


def in_family(family: str) -> tuple[str, ...]:
    """The names of the methods of one family, in registration order (for blocks:
    the direct method first, then its proxy baselines)."""
    return tuple(name for name in METHODS if METHODS.get(name).family == family)


def selected_by(command: str) -> tuple[str, ...]:
    """The methods a command's --method option chooses between."""
    return tuple(name for name in METHODS if METHODS.get(name).argv[:2] == (command, "--method"))


def applies(name: str, arch: str) -> bool:
    """Whether a method can run on an architecture at all: block pruning needs
    removable residual blocks, which AlexNet and the VGGs do not have
    (`catalog.REMOVABLE_BLOCKS`); the other families run on any."""
    return METHODS.get(name).family != "blocks" or arch in REMOVABLE_BLOCKS


__all__ = ["METHODS", "Method", "applies", "in_family", "selected_by"]
