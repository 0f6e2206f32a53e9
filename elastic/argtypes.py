"""argparse value types that refuse impossible values at parse time, naming the
valid range, so that bad input ends in one line before any work starts."""
from __future__ import annotations

import argparse
from typing import Callable


def integer(minimum: int) -> Callable[[str], int]:
    """A whole number of at least `minimum`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}; give {minimum} or more")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def number(*, above: float | None = None, at_least: float | None = None) -> Callable[[str], float]:
    """A finite number above `above` (exclusive) or at least `at_least`."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"{text} must be above {above:g}")
        if at_least is not None and value < at_least:
            raise argparse.ArgumentTypeError(f"{text} must be at least {at_least:g}")
        return value
    parse.__name__ = "number"
    return parse


def device(text: str) -> str:
    """'auto', 'cpu', 'cuda' or 'cuda:N' (whether CUDA is there is checked when
    the device is picked: elastic.train.pick_device)."""
    import torch
    if text == "auto":
        return text
    try:
        parsed = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if parsed.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text!r}: Elastic runs on cpu or cuda; use auto, cpu, cuda or cuda:N")
    return text


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit 2), not a
    usage block followed by the message."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


ROUNDINGS = (1, 4, 8, 16, 32)      # channel multiples a --round-to takes
AUTO_ROUNDINGS = (8, 16, 32)       # what --round-to auto chooses among, by measured onnxruntime latency


def rounding(text: str) -> int | str:
    """--round-to: one of ROUNDINGS, or 'auto'."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(map(str, ROUNDINGS))} or auto") from None
    if value not in ROUNDINGS:
        raise argparse.ArgumentTypeError(f"{value} is not one of {', '.join(map(str, ROUNDINGS))} or auto")
    return value
