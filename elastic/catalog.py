"""The names of the registered architectures and datasets, and which images
each architecture takes, without importing torch (and which have blocks to prune): the results schema checks
rows against them when the app loads its tables, and the explorer's first page
must not wait for torch. tests/test_results.py checks that they match the
registries."""
from __future__ import annotations

# Architecture -> the image family it takes (the registry's `family`), in menu order.
ARCH_FAMILY = {"resnet20": "cifar", "resnet56": "cifar", "vgg16": "cifar", "alexnet": "cifar",
               "resnet50": "imagenette", "vgg16_bn": "imagenette"}
DATASET_FAMILY = {"cifar10": "cifar", "cifar100": "cifar", "imagenette": "imagenette"}
# Architecture -> how many residual blocks block pruning can remove (every block but
# the first of each stage: `blocks.candidate_blocks`); an architecture not here has
# none (AlexNet, the VGGs), so block pruning does not apply to it.
REMOVABLE_BLOCKS = {"resnet20": 6, "resnet56": 24, "resnet50": 12}
ARCH_NAMES = tuple(ARCH_FAMILY)
DATASET_NAMES = tuple(DATASET_FAMILY)


def archs_for(dataset: str) -> list[str]:
    """The architectures that take this dataset's images (none for an unknown dataset)."""
    family = DATASET_FAMILY.get(dataset)
    return [arch for arch, of in ARCH_FAMILY.items() if of == family]
