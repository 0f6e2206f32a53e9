"""Training speed on this machine: fp32 eager against the path `--precision auto`
picks, for each CIFAR architecture and ResNet-50 (Imagenette, 128 px).

For each architecture and precision it prints
- step: images/s of pure training steps (random images, no data pipeline);
- epoch: images/s of `elastic.train.train` over a slice of the real training
  split (augmentation, normalisation, bookkeeping) with the per-epoch validation
  pass on a slice of the validation split of the same proportion as a full epoch;
- overhead: how much slower the epoch is than the pure steps.

    nice -n 10 python benchmarks/bench_train.py [--archs resnet20 ...] [--steps 5] [--epoch-batches 6]

The machine's CPU, threads, load average and what `auto` resolved to come first.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from elastic.data import DataNotFound, load_dataset  # noqa: E402
from elastic.models import build_model  # noqa: E402
from elastic.precision import cpu_name, native_bf16, resolve  # noqa: E402
from elastic.grids import Work  # noqa: E402
from elastic.sweep import probe_step_seconds  # noqa: E402
from elastic.train import Recipe, train  # noqa: E402

ARCHS = {"resnet20": ("cifar10", 256), "resnet56": ("cifar10", 256), "vgg16": ("cifar10", 256),
         "alexnet": ("cifar10", 256), "resnet50": ("imagenette", 64)}


def epoch_images_per_s(arch: str, dataset: str, batch: int, precision: str, batches: int) -> tuple[float, str]:
    """Images/s of one epoch of `train` over `batches` batches of the real
    training split (synthetic images if the dataset is not on disk), with a
    validation slice in the proportion of a full epoch."""
    try:
        data = load_dataset(dataset)
    except DataNotFound:
        data = load_dataset(dataset, source="synthetic", synthetic_size=2 * batch * batches)
    images = batch * batches
    train_set = data.train.head(images, 0)
    val_set = data.val.head(max(1, round(images * len(data.val) / len(data.train))), 0)
    torch.manual_seed(0)
    model = build_model(arch, data.num_classes)
    start = time.perf_counter()
    train(model, train_set, data.spec, Recipe(epochs=1, batch_size=batch, precision=precision), val_set=val_set)
    return images / (time.perf_counter() - start), data.source.split(":")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="*", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--steps", type=int, default=5, help="pure training steps timed (median)")
    parser.add_argument("--epoch-batches", type=int, default=6, help="batches in the timed epoch slice")
    parser.add_argument("--bf16", action="store_true",
                        help="time bf16 too where auto picks fp32 (emulated on a CPU without native bf16)")
    args = parser.parse_args()

    auto = resolve("auto", "cpu")
    print(f"CPU: {cpu_name()}; torch {torch.__version__}, {torch.get_num_threads()} threads; native bf16: "
          f"{'yes' if native_bf16() else 'no'}; --precision auto picks {auto}; "
          f"load average {os.getloadavg()[0]:.2f}")
    header = (f"{'arch':<9} {'batch':>5} {'precision':<9} {'step img/s':>10} {'epoch img/s':>11} "
              f"{'overhead':>8}  data")
    print(header)
    print("-" * len(header))
    for arch in args.archs:
        dataset, batch = ARCHS[arch]
        paths = ["fp32"] + (["bf16"] if auto == "bf16" or args.bf16 else [])
        for precision in paths:
            step = probe_step_seconds(Work(dataset, arch, batch, 1.0), precision, steps=args.steps)
            epoch, source = epoch_images_per_s(arch, dataset, batch, precision, args.epoch_batches)
            step_rate = batch / step
            print(f"{arch:<9} {batch:>5} {precision + ('' if precision != auto else ' (auto)'):<9} "
                  f"{step_rate:>10.0f} {epoch:>11.0f} {step_rate / epoch:>7.2f}x  {source}", flush=True)
        if len(paths) == 1:
            print(f"{'':<9} {'':>5} auto = fp32 on this CPU: nothing else to compare (--bf16 times bf16 anyway)")
    print("An epoch of CIFAR-10 (45,000 training images) takes 45,000 / (epoch img/s) seconds.")


if __name__ == "__main__":
    main()
