"""The compression methods, by name. Each method's code lives in its own module
(complexity.py, blocks.py, grow.py); this registry holds what the app and the
results need to know about them: a label, the paper, and a one-line summary."""
from __future__ import annotations

from dataclasses import dataclass

from elastic.registry import Registry


@dataclass(frozen=True)
class MethodSpec:
    name: str          # the value of the results' "method" column
    label: str
    paper: str
    summary: str
    modes: bool = False      # rows carry a complexity mode (PA/FA/MA) that tells configurations apart
    stage: str = ""          # what the results' "level" column counts: "step" (blocks removed) or "level" (width)


METHODS: Registry[MethodSpec] = Registry("method")
for _spec in (
    MethodSpec("baseline", "Baseline", "", "the unpruned network trained with the recipe"),
    MethodSpec("uniform", "Uniform thinning", "",
               "every layer thinned by the same factor, trained from scratch (a reference for complexity pruning)"),
    MethodSpec("complexity", "Complexity-driven (PA/FA/MA)",
               "Zawish, Davy, Abraham: complexity-driven CNN compression for resource-constrained edge AI",
               "layers sampled for filter pruning by their share of parameters, FLOPs or memory; trained from scratch",
               modes=True),
    MethodSpec("block", "Block pruning (direct)",
               "Wu, Davoodi, Hu: block pruning for residual networks",
               "residual blocks removed one at a time by measured accuracy, fine-tuned after each step", stage="step"),
    MethodSpec("block-l1", "Block pruning (L1 proxy)", "Wu, Davoodi, Hu (proxy baseline)",
               "blocks removed in the order of the L1 norm of their last BatchNorm scale", stage="step"),
    MethodSpec("block-random", "Block pruning (random)", "Wu, Davoodi, Hu (proxy baseline)",
               "blocks removed in a random order", stage="step"),
    MethodSpec("elastic", "Elastic prune-and-grow",
               "Mangal et al.: prune-and-grow elastic networks",
               "one model with nested widths: pruned to a core, grown back level by level with smaller levels frozen",
               stage="level"),
    MethodSpec("elastic-joint", "Elastic, joint training", "slimmable-network style comparison",
               "the same nested widths trained jointly, all widths in every step", stage="level"),
):
    METHODS.add(_spec.name, _spec)
