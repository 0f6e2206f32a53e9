"""What the live pages cost on this machine, from the trained checkpoints that ship.

- Block pruning page: one live measurement (`elastic.live.measure`: blocks
  removed, ONNX export verified against PyTorch, accuracy in onnxruntime on the
  first 1,000 test images, MACs, params, latency) for ResNet-20 and ResNet-56,
  each with three different blocks removed (median and range), and the direct
  step run live (`live.scan`, every candidate on the whole validation split).
- Elastic page: the first visit to a checkpoint (every level evaluated on the
  live test images and timed once, what the page caches) and a later switch of
  level (read from that cache).

    nice -n 10 python benchmarks/bench_live.py [--archs resnet20 resnet56] [--images 1000] [--no-scan]

The machine's CPU, threads and load average come first. Needs the CIFAR-10 archive.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from elastic import live  # noqa: E402
from elastic.checkpoints import load_model
from elastic.data import load_dataset  # noqa: E402
from elastic.methods.blocks import candidate_blocks  # noqa: E402
from elastic.precision import cpu_name  # noqa: E402
from elastic.runs import find_baseline  # noqa: E402

ELASTIC = "cifar10__resnet20__elastic__c2g1__s0__fp32-a92b9931.pt"


def block_removal(arch: str, images: int, scan: bool) -> None:
    data = load_dataset("cifar10")
    path, row = find_baseline("cifar10", arch)
    model, _ = load_model(path)
    model.eval()
    names = candidate_blocks(model)
    test = data.test.head(images)
    started = time.perf_counter()
    exported = live.Exported(model, (3, data.spec.input_size, data.spec.input_size))   # as the page does, once
    print(f"{arch}: the baseline exported to ONNX once in {time.perf_counter() - started:.2f} s")
    removals = (names[-1], names[0], names[1])
    for way in ("cut from the baseline's graph", "exported anew"):
        def once(blocks: list[str]) -> live.Measured:
            if way == "exported anew":
                return live.measure(live.without(model, blocks), test, data.spec)
            network, onnx_model = exported.without(blocks)
            return live.measure(network, test, data.spec, onnx_model=onnx_model)
        once(names[:1])                                     # warm-up: first sessions
        runs = [once([name]) for name in removals]
        seconds = [r.seconds for r in runs]
        print(f"{arch}: one live measurement on {images} test images, ONNX {way}: "
              f"median {statistics.median(seconds):.2f} s (range {min(seconds):.2f}-{max(seconds):.2f} s over "
              f"{len(runs)} removals: {', '.join(removals)}); accuracy {runs[0].accuracy:.2f}% without {names[-1]}")
    if scan:
        started = time.perf_counter()
        scores = live.scan(model, names, data.val, data.spec)
        first = live.ranking(scores, float(row["val_acc"]))[0]
        print(f"{arch}: direct step live, {len(names)} candidates on {len(data.val)} validation images: "
              f"{time.perf_counter() - started:.1f} s; first choice {first['block']} "
              f"({first['accuracy without it (%)']:.2f}%)")


def elastic_visit() -> None:
    from elastic.ui import elastic_view
    path = str(elastic_view.checkpoints_dir() / ELASTIC)
    mtime = elastic_view.stamp(Path(path))
    started = time.perf_counter()
    model = elastic_view.elastic_model(path, mtime)
    images = elastic_view.live_images("cifar10", False)
    elastic_view.level_accuracy(path, mtime, 0, images, "cifar10")
    elastic_view.level_timing(path, mtime, 0)
    first = time.perf_counter() - started
    switches = []
    for level in range(1, model.num_levels):
        started = time.perf_counter()
        elastic_view.level_accuracy(path, mtime, level, images, "cifar10")
        elastic_view.level_timing(path, mtime, level)
        elastic_view.level_profile(path, mtime, level)
        switches.append(time.perf_counter() - started)
    print(f"elastic page, {ELASTIC}: first visit (every level evaluated on {len(images.images)} test images and "
          f"timed once) {first:.2f} s; a later level switch median {statistics.median(switches) * 1e3:.0f} ms "
          f"(max {max(switches) * 1e3:.0f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["resnet20", "resnet56"])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--no-scan", action="store_true", help="skip the live direct step")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}; torch threads {torch.get_num_threads()}; "
          f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for arch in args.archs:
        block_removal(arch, args.images, scan=not args.no_scan and arch == "resnet20")
    elastic_visit()


if __name__ == "__main__":
    main()
