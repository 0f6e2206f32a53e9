"""Tests for elastic.profile: hand-computed small nets, then a torchvision model."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from elastic.profile import LayerProfile, count_macs, format_table, profile_model


def tiny_sequential() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(2, 3, 3, stride=2, padding=1),
        nn.Flatten(),
        nn.Linear(12, 5),
    )


class TinyResidual(nn.Module):
    """x -> conv(2->4) -> conv(4->2) -> + x: the input must stay alive across the branch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(4, 2, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


class ViewAndInplace(nn.Module):
    """conv -> in-place relu -> view via x.size(): neither relu nor view allocates."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu_(self.conv(x))
        return y.view(y.size(0), -1)


def test_sequential_by_hand() -> None:
    # Input 1x4x4 = 16 elements.
    # "0" conv 1->2, 3x3, pad 1, no bias: params 2*1*9 = 18; out 2x4x4 = 32;
    #     MACs = 32 outputs * (1*9) = 288
    # "1" relu (not in place): new 2x4x4 tensor, 32 elements
    # "2" conv 2->3, 3x3, stride 2, pad 1: params 3*2*9 + 3 = 57; out 3x2x2 = 12;
    #     MACs = 12 * (2*9) = 216 (bias not counted)
    # "3" flatten: a view of "2", 0 new elements
    # "4" linear 12->5: params 60 + 5 = 65; out 5; MACs = 60
    # Liveness (elements) per node: x 16 | conv 16+32=48 | relu 32+32=64 |
    #     conv 32+12=44 | flatten 12 | linear 12+5=17 | output 5  -> peak 64
    profile = profile_model(tiny_sequential(), (1, 4, 4))

    assert profile.layers == (
        LayerProfile("0", "conv", 18, 288, 72, 128, (2, 4, 4)),
        LayerProfile("2", "conv", 57, 216, 228, 48, (3, 2, 2)),
        LayerProfile("4", "linear", 65, 60, 260, 20, (5,)),
    )
    assert profile.params == 140
    assert profile.macs == 564
    assert profile.flops == 1128
    assert profile.weight_bytes == 560
    assert profile.peak_activation_elements == 64
    assert profile.peak_activation_bytes == 256
    assert profile.peak_memory_bytes() == 560 + 256
    assert profile.layers[0].memory_bytes == 72 + 128


def test_residual_keeps_skip_alive() -> None:
    # Input 2x4x4 = 32; conv1 out 4x4x4 = 64; conv2 out 32; add out 32.
    # Liveness: x 32 | conv1 32+64=96 | conv2 x 32 + 64 + 32 = 128 |
    #     add x 32 + 32 + 32 = 96 | output 32  -> peak 128 elements.
    # Without the skip counted, conv2 would see only 64+32 = 96.
    profile = profile_model(TinyResidual(), (2, 4, 4))

    assert profile.peak_activation_elements == 128
    assert profile.peak_activation_bytes == 512
    # MACs: conv1 64 * (2*9) = 1152, conv2 32 * (4*9) = 1152; the add counts 0.
    assert [layer.macs for layer in profile.layers] == [1152, 1152]
    assert profile.macs == 2304


@pytest.mark.parametrize("inplace, peak", [(False, 64), (True, 48)])
def test_inplace_relu_adds_no_bytes(inplace: bool, peak: int) -> None:
    # Input 1x4x4 = 16; conv 1->2 out 32; relu out 32 (or the conv's storage); conv 2->1 out 16.
    # Not in place: x 16 | conv 48 | relu 32+32=64 | conv 32+16=48 | output 16 -> 64
    # In place:     x 16 | conv 48 | relu 32      | conv 32+16=48 | output 16 -> 48
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(inplace=inplace), nn.Conv2d(2, 1, 3, padding=1))
    assert profile_model(model, (1, 4, 4)).peak_activation_elements == peak


def test_functional_inplace_and_views_add_no_bytes() -> None:
    # Input 16; conv out 32; relu_ and view reuse the conv's storage, size() is an int.
    # x 16 | conv 48 | everything after: 32 -> peak 48
    profile = profile_model(ViewAndInplace(), (1, 4, 4))
    assert profile.peak_activation_elements == 48


@pytest.mark.parametrize("make_model, shape", [(tiny_sequential, (1, 4, 4)), (TinyResidual, (2, 4, 4))])
def test_totals_match_flop_counter_and_parameters(make_model, shape) -> None:
    model = make_model().eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, *shape))
    profile = profile_model(model, shape)

    assert profile.macs == counter.get_total_flops() // 2 == count_macs(model, shape)
    assert profile.params == sum(p.numel() for p in model.parameters())


def test_int8_peak_is_a_quarter_of_fp32() -> None:
    profile = profile_model(TinyResidual(), (2, 4, 4))
    assert profile.peak_memory_int8() * 4 == profile.peak_memory_bytes()
    assert profile.peak_memory_bytes(dtype_bytes=1) == profile.peak_memory_int8()


def test_torchvision_resnet18() -> None:
    model = torchvision.models.resnet18(num_classes=10)
    profile = profile_model(model, (3, 64, 64))

    assert profile.macs > 0
    assert profile.macs == count_macs(model, (3, 64, 64))
    assert profile.peak_activation_bytes >= max(layer.activation_bytes for layer in profile.layers)
    assert profile.peak_activation_bytes >= 3 * 64 * 64 * 4
    assert profile.layers[0].name == "conv1"
    assert profile.layers[-1].kind == "linear"
    assert sum(layer.params for layer in profile.layers) == profile.params


def test_profile_does_not_mutate_model() -> None:
    model = torchvision.models.resnet18(num_classes=10)
    model.train()
    model.layer1[0].bn1.eval()  # a mixed mode must come back as it was
    before = {key: value.clone() for key, value in model.state_dict().items()}

    profile_model(model, (3, 32, 32))
    count_macs(model, (3, 32, 32))

    assert model.training
    assert not model.layer1[0].bn1.training
    assert all(m.training for name, m in model.named_modules() if name != "layer1.0.bn1")
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_rows_and_table() -> None:
    profile = profile_model(tiny_sequential(), (1, 4, 4))
    rows = profile.to_rows()

    assert [row["name"] for row in rows] == ["0", "2", "4"]
    for share in ("params_share", "macs_share", "memory_share"):
        assert sum(row[share] for row in rows) == pytest.approx(1.0)
    assert rows[0]["macs_share"] == pytest.approx(288 / 564)
    assert rows[0]["memory_bytes"] == 200

    table = format_table(profile)
    assert "linear" in table and "FLOPs = 2 x MACs" in table


def test_untraceable_model_is_a_value_error() -> None:
    class DataDependent(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x if x.sum() > 0 else -x

    with pytest.raises(ValueError, match="DataDependent"):
        profile_model(DataDependent(), (1, 2, 2))
    assert count_macs(DataDependent(), (1, 2, 2)) == 0
