"""Which arithmetic a training runs in, and the CPU it runs on.

`resolve("auto", device)` picks bfloat16 autocast with channels_last where it is
fast: on CUDA always, on a CPU only when the CPU has native bf16 instructions (AMX
or AVX512-BF16) and a short probe shows bf16 steps faster than fp32 ones. Without
native bf16, PyTorch emulates it and a step is many times slower (measured on an
AMD EPYC with AVX2 only: ResNet-20, batch 256, 645 ms fp32 against 7,230 ms bf16).
Under autocast the convolutions and linear layers run in bf16; the weights, the
optimizer, BatchNorm's running statistics and the loss stay fp32.
"""
from __future__ import annotations

import contextlib
import functools
import os
import platform
import time
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# The widest vector unit of a CPU, by its /proc/cpuinfo flag, widest first: two
# machines that share a model name ("AMD EPYC") can differ in it, and so in speed.
VECTOR_UNITS = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))


def vector_unit(flags: set[str]) -> str:
    """'AMX', 'AVX-512 BF16', 'AVX-512', 'AVX2' or '' for a CPU with `flags`."""
    return next((name for flag, name in VECTOR_UNITS if flag in flags), "")


def cpu_name() -> str:
    """This machine's CPU model, core count and widest vector unit, e.g.
    'AMD EPYC, 2 cores, AVX2'."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    unit = vector_unit(cpu_flags())
    return f"{cpu}, {os.cpu_count()} cores" + (f", {unit}" if unit else "")


def native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (AMX or AVX512-BF16)."""
    return bool(cpu_flags() & set(NATIVE_BF16_FLAGS))


def resolve(precision: str, device: torch.device | str) -> str:
    """'fp32' or 'bf16' for `precision` ('auto', 'fp32' or 'bf16') on `device`."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if torch.device(device).type == "cuda":
        return "bf16"
    if torch.device(device).type == "cpu" and native_bf16() and _bf16_faster_on_cpu():
        return "bf16"
    return "fp32"


@functools.lru_cache(maxsize=1)
def _bf16_faster_on_cpu() -> bool:
    """Time a few training steps of a small convolutional network in each
    arithmetic (about a second on a CPU with AMX)."""
    fp32, bf16 = probe_step_seconds("fp32"), probe_step_seconds("bf16")
    return bf16 < 0.9 * fp32


def probe_step_seconds(precision: str, steps: int = 3) -> float:
    """Fastest of `steps` training steps of a ResNet-20-sized stack on the CPU."""
    from torch import nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                        nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
                        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    if precision == "bf16":
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    best = float("inf")
    for _ in range(steps + 1):            # the first step warms up the kernels
        start = time.perf_counter()
        with autocast("cpu", precision):
            loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        best = min(best, time.perf_counter() - start)
    return best


def autocast(device_type: str, precision: str):
    """bf16 autocast for 'bf16', nothing for 'fp32'."""
    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
