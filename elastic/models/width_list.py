"""Plain convolutional networks described as width lists, in the manner of
torchvision's VGG: an int is a 3x3 convolution + BN + ReLU with that many filters,
"M" a 2x2 max-pool, and a (width, kernel) pair a convolution with another kernel."""
from __future__ import annotations

from typing import Sequence, Union

from torch import Tensor, nn

Layer = Union[int, str, tuple[int, int]]

VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
# AlexNet adapted to 32x32 inputs: 5 convolutions (5x5, 5x5, then three 3x3) and
# three fully connected layers (4096 -> 1024 -> 1024 -> classes).
ALEXNET = [(64, 5), "M", (192, 5), "M", 384, 256, 256, "M"]
ALEXNET_HIDDEN = [1024, 1024]


def make_features(layers: Sequence[Layer], in_ch: int = 3) -> nn.Sequential:
    modules: list[nn.Module] = []
    for layer in layers:
        if layer == "M":
            modules.append(nn.MaxPool2d(2, 2))
            continue
        width, kernel = layer if isinstance(layer, tuple) else (layer, 3)
        modules += [nn.Conv2d(in_ch, width, kernel, padding=kernel // 2, bias=False),
                    nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        in_ch = width
    return nn.Sequential(*modules)


def _last_width(layers: Sequence[Layer]) -> int:
    last = [layer for layer in layers if layer != "M"][-1]
    return last[0] if isinstance(last, tuple) else int(last)


class CifarVGG(nn.Module):
    """VGG with BatchNorm for 32x32 inputs: five pools leave 1x1, one linear head."""

    def __init__(self, num_classes: int, layers: Sequence[Layer] = VGG16) -> None:
        super().__init__()
        self.features = make_features(layers)
        self.classifier = nn.Linear(_last_width(layers), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


class CifarAlexNet(nn.Module):
    """AlexNet for 32x32 inputs; three pools leave a 4x4 map for the classifier."""

    def __init__(self, num_classes: int, layers: Sequence[Layer] = ALEXNET,
                 hidden: Sequence[int] = ALEXNET_HIDDEN) -> None:
        super().__init__()
        self.features = make_features(layers)
        head: list[nn.Module] = []
        in_f = _last_width(layers) * 4 * 4
        for width in hidden:
            head += [nn.Dropout(0.5), nn.Linear(in_f, width), nn.ReLU(inplace=True)]
            in_f = width
        head.append(nn.Linear(in_f, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))
