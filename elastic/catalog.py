"""The names of the registered architectures and datasets, without importing
torch: the results schema checks rows against them when the app loads its
tables, and the explorer's first page must not wait for torch.
tests/test_results.py checks that they match the registries."""
from __future__ import annotations

ARCH_NAMES = ("resnet20", "resnet56", "vgg16", "alexnet", "resnet50", "vgg16_bn")
DATASET_NAMES = ("cifar10", "cifar100", "imagenette")
