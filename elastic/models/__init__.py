"""Architectures by name, and pruned architectures stored as data.

A pruned or block-removed model is described by its architecture name plus a small
config dict that lists only what differs from the default network:

    {"removed_blocks": ["layer1.2", ...],            # residual blocks taken out
     "shapes": {"layer1.0.conv1": [16, 9],           # conv / linear: [in, out]
                "layer1.0.bn1": [9], ...}}           # batch norm: [features]

`arch_config(model, ...)` derives that dict from a live model and `build_model`
rebuilds the same structure from it, so results can be stored as JSON.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from elastic.models.cifar_resnet import CifarResNet
from elastic.models.width_list import CifarAlexNet, CifarVGG
from elastic.registry import Registry


@dataclass(frozen=True)
class ArchSpec:
    name: str
    family: str                 # "cifar" (32x32) or "imagenette" (128x128)
    input_size: int
    build: Callable[[int], nn.Module]   # num_classes -> default model
    description: str


ARCHS: Registry[ArchSpec] = Registry("architecture")


def _register(name: str, family: str, input_size: int, description: str):
    def decorate(build: Callable[[int], nn.Module]) -> Callable[[int], nn.Module]:
        ARCHS.add(name, ArchSpec(name, family, input_size, build, description))
        return build
    return decorate


@_register("resnet20", "cifar", 32, "ResNet-20 for CIFAR (3 stages x 3 basic blocks, 16/32/64)")
def resnet20(num_classes: int) -> nn.Module:
    return CifarResNet(3, num_classes)


@_register("resnet56", "cifar", 32, "ResNet-56 for CIFAR (3 stages x 9 basic blocks, 16/32/64)")
def resnet56(num_classes: int) -> nn.Module:
    return CifarResNet(9, num_classes)


@_register("vgg16", "cifar", 32, "VGG-16 with BatchNorm for CIFAR (13 convolutions, linear head)")
def vgg16(num_classes: int) -> nn.Module:
    return CifarVGG(num_classes)


@_register("alexnet", "cifar", 32, "AlexNet for CIFAR (5 convolutions with BN, 3 linear layers)")
def alexnet(num_classes: int) -> nn.Module:
    return CifarAlexNet(num_classes)


@_register("resnet50", "imagenette", 128, "torchvision ResNet-50 with a new linear head")
def resnet50(num_classes: int) -> nn.Module:
    # torchvision is imported where it is used: importing it takes two seconds
    # (its ops import torch._dynamo), which every page and command would pay.
    from torchvision.models import resnet50 as torchvision_resnet50
    model = torchvision_resnet50(weights=None)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


@_register("vgg16_bn", "imagenette", 128,
           "torchvision VGG-16-BN features with global pooling and a new linear head")
def vgg16_bn(num_classes: int) -> nn.Module:
    from torchvision.models import vgg16_bn as torchvision_vgg16_bn     # imported here: see resnet50
    model = torchvision_vgg16_bn(weights=None)
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(512, num_classes))
    return model


def build_model(arch: str, num_classes: int, config: dict[str, Any] | None = None) -> nn.Module:
    """The default `arch`, or the pruned structure that `config` describes
    (freshly initialised weights)."""
    model = ARCHS.get(arch).build(num_classes)
    if not config:
        return model
    remove_blocks(model, config.get("removed_blocks", []))
    for name, shape in config.get("shapes", {}).items():
        _set_module(model, name, resized(model.get_submodule(name), shape))
    return model


def arch_config(model: nn.Module, arch: str, num_classes: int) -> dict[str, Any]:
    """What distinguishes `model` from the default `arch`: removed blocks and
    the shapes of resized layers (see the module docstring)."""
    reference = dict(ARCHS.get(arch).build(num_classes).named_modules())
    present = dict(model.named_modules())
    removed = [name for name in reference if name and name not in present
               and name.rpartition(".")[0] in present]
    shapes = {}
    for name, module in present.items():
        shape = layer_shape(module)
        if shape is not None and name in reference and shape != layer_shape(reference[name]):
            shapes[name] = shape
    return {"removed_blocks": removed, "shapes": shapes}


def remove_blocks(model: nn.Module, names: list[str]) -> nn.Module:
    """Take submodules out of their parent container in place. The remaining
    siblings keep their names, so state dicts stay comparable with the original."""
    for name in names:
        parent, _, child = name.rpartition(".")
        container = model.get_submodule(parent)
        if not isinstance(container, nn.Sequential):
            raise ValueError(f"{name} is not an element of a sequential container")
        delattr(container, child)
    return model


def layer_shape(module: nn.Module) -> list[int] | None:
    """The shape `arch_config` records for a conv / linear / batch-norm layer, else None."""
    if isinstance(module, nn.Conv2d):
        return [module.in_channels, module.out_channels]
    if isinstance(module, nn.Linear):
        return [module.in_features, module.out_features]
    if isinstance(module, nn.BatchNorm2d):
        return [module.num_features]
    return None


def layer_channels(module: nn.Module) -> tuple[int, int]:
    """(input, output) channels of a conv / linear / batch-norm layer (a batch
    norm's two are one); ValueError for any other module."""
    shape = layer_shape(module)
    if shape is None:
        raise ValueError(f"unsupported layer {type(module).__name__}")
    return shape[0], shape[-1]


def resized(module: nn.Module, shape: list[int]) -> nn.Module:
    """A fresh conv / linear / batch-norm layer like `module` but of `shape`
    (as `layer_shape` gives it: [in, out], or [features] for a batch norm)."""
    if isinstance(module, nn.Conv2d):
        groups = module.groups if module.groups == 1 else shape[0]  # depthwise stays depthwise
        return nn.Conv2d(shape[0], shape[1], module.kernel_size, module.stride, module.padding,
                         module.dilation, groups, module.bias is not None)
    if isinstance(module, nn.Linear):
        return nn.Linear(shape[0], shape[1], module.bias is not None)
    if isinstance(module, _BatchNorm):
        return type(module)(shape[0], module.eps, module.momentum)
    raise ValueError(f"cannot resize a {type(module).__name__}")


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)


__all__ = ["ARCHS", "ArchSpec", "arch_config", "build_model", "layer_channels", "layer_shape", "resized",
           "remove_blocks"]
