"""Grids of configurations: a grid is a list of jobs, a job one
`python -m elastic ...` command (a baseline, a pruning run, an elastic grow) and
the work it is expected to do. The methods' jobs come from the registry
(elastic.methods), family by family (`FAMILY_JOBS`); elastic.sweep runs them.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from elastic import identity
from elastic.catalog import REMOVABLE_BLOCKS
from elastic.methods import METHODS
from elastic.registry import Registry


@dataclass(frozen=True)
class Work:
    """What a job trains, for its expected duration: `epochs` of the full
    network's training (fine-tuning steps, candidate scans and smaller widths
    counted in), at `scale` of its MACs."""
    dataset: str
    arch: str
    batch: int
    epochs: float
    scale: float = 1.0
    run: str = ""          # readable part of the run id of a single training (elastic.identity), whose
                           # resume file, when a cut-off run left one, says how much is done


@dataclass(frozen=True)
class Job:
    name: str                      # readable: dataset/arch/method[/mode/target]
    argv: tuple[str, ...]          # arguments of `python -m elastic`
    after: tuple[str, ...] = ()    # names of jobs that must finish first
    work: Work | None = None       # for the deadline; None: no estimate (always started)

    @property
    def key(self) -> str:
        """Recorded in the ledger when the job finishes: the name and a digest of
        every argument that changes a result (all but where rows are written), so
        a job whose epochs, recipe or precision change runs again."""
        return f"{self.name}@{_digest(self.argv)}"

    @property
    def command(self) -> str:
        return "python -m elastic " + " ".join(self.argv)


def _digest(argv: tuple[str, ...]) -> str:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        else:
            kept.append(arg)
    return hashlib.sha1("\0".join(kept).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Grid:
    name: str
    description: str
    make: Callable[["GridOptions"], list[Job]]


@dataclass(frozen=True)
class GridOptions:
    results: Path                  # the results CSV every job appends to
    epochs: int | None = None      # override the grid's training epochs (e.g. short CPU runs)
    archs: tuple[str, ...] = ()    # restrict to these architectures
    methods: tuple[str, ...] = ()  # restrict to these methods
    extra: tuple[str, ...] = field(default=())  # extra arguments for every job (e.g. --device cuda)


GRIDS: Registry[Grid] = Registry("grid")

TARGETS = (0.3, 0.5, 0.7)
GRID_METHODS = tuple(name for name in METHODS if METHODS.get(name).grid)
VAL_FRACTION = {"cifar10": 5000 / 45000, "cifar100": 5000 / 45000, "imagenette": 0.11}


def argv(method: str) -> tuple[str, ...]:
    """The command-line arguments that run `method` (elastic.methods)."""
    return METHODS.get(method).argv


def _complexity_scale(mode: str, target: float) -> float:
    """MACs kept, roughly, when `target` of the mode's metric is kept: FA keeps
    `target` of the MACs; PA prunes the parameter-heavy late layers, which hold
    fewer MACs (ResNet-20 PA 0.5 kept 0.74 of the MACs, about sqrt(0.5))."""
    return math.sqrt(target) if mode == "PA" else target


@dataclass(frozen=True)
class Cell:
    """One (dataset, architecture) of a grid and the schedule its jobs share."""
    dataset: str
    arch: str
    epochs: int
    opts: GridOptions
    ft_epochs: int
    grow_epochs: int
    batch: int
    joint_epochs: int | None = None
    data: tuple[str, ...] = ()
    block_limit: tuple[str, ...] = ()
    targets: tuple[float, ...] = TARGETS
    modes: tuple[str, ...] = ("PA", "FA", "MA")
    rounded: tuple[int, ...] = ()

    @property
    def common(self) -> tuple[str, ...]:
        return ("--arch", self.arch, "--dataset", self.dataset, "--batch-size", str(self.batch), *self.data,
                "--out", str(self.opts.results), *self.opts.extra)

    @property
    def source(self) -> str:
        return "synthetic" if "synthetic" in self.data else "archive"

    @property
    def baseline(self) -> str:
        return f"{self.dataset}/{self.arch}/baseline"

    def work(self, epochs: float, scale: float = 1.0, run: str = "") -> Work:
        return Work(self.dataset, self.arch, self.batch, epochs, scale, run)


def _baseline_jobs(cell: Cell, methods: tuple[str, ...]) -> list[Job]:
    run = identity.baseline_name(cell.dataset, cell.arch, epochs=cell.epochs, seed=0, data_source=cell.source)
    return [Job(cell.baseline, (*argv(m), *cell.common, "--epochs", str(cell.epochs)),
                work=cell.work(cell.epochs, run=run)) for m in methods]


def _filter_jobs(cell: Cell, methods: tuple[str, ...]) -> list[Job]:
    """Each filter pruning method at every target (a method with modes: in every
    mode), trained from scratch; with `cell.rounded`, each again at 0.5 (in FA)
    with channel counts rounded to each multiple."""
    def job(method: str, mode: str | None, target: float, round_to: int = 1) -> Job:
        name = "/".join([cell.dataset, cell.arch, method, *([mode] if mode else []), str(target),
                         *([f"r{round_to}"] if round_to > 1 else [])])
        run = identity.pruned_name(cell.dataset, cell.arch, method, mode=mode or "FA", target=target,
                                   round_to=round_to, step=None, min_width=None, init="scratch",
                                   epochs=cell.epochs, seed=0, data_source=cell.source)
        options = (*(("--mode", mode) if mode else ()), "--target", str(target),
                   *(("--round-to", str(round_to)) if round_to > 1 else ()))
        scale = _complexity_scale(mode, target) if mode else target
        return Job(name, (*argv(method), *options, "--epochs", str(cell.epochs), *cell.common),
                   work=cell.work(cell.epochs, scale, run))

    def modes(method: str, chosen: tuple[str, ...]) -> tuple[str | None, ...]:
        return chosen if METHODS.get(method).modes else (None,)
    jobs = [job(m, mode, t) for t in cell.targets for m in methods for mode in modes(m, cell.modes)]
    return jobs + [job(m, mode, 0.5, r) for r in cell.rounded for m in methods for mode in modes(m, ("FA",))]


def _block_jobs(cell: Cell, methods: tuple[str, ...]) -> list[Job]:
    """Each block pruning method to half the MACs, on residual networks only."""
    if cell.arch not in REMOVABLE_BLOCKS:
        return []
    blocks = REMOVABLE_BLOCKS[cell.arch]
    steps = blocks // 2                                   # about half the blocks go for half the MACs
    scans = sum(blocks - k for k in range(steps)) * VAL_FRACTION.get(cell.dataset, 0.1) / 3
    return [Job(f"{cell.dataset}/{cell.arch}/{m}", (
        *argv(m), "--target", "0.5", "--ft-epochs", str(cell.ft_epochs), *cell.block_limit, *cell.common),
        after=(cell.baseline,),
        work=cell.work(steps * cell.ft_epochs * 0.75 + (scans if m == "block" else 0.0)))   # block: measured
        for m in methods]


def _elastic_jobs(cell: Cell, methods: tuple[str, ...]) -> list[Job]:
    """Each elastic method from the trained baseline (joint training: its own, shorter, length)."""
    jobs = []
    for name in methods:
        command, *flags = argv(name)          # flags last: the order the ledger's keys were made with
        joint = "--joint" in flags
        length = (cell.joint_epochs or cell.grow_epochs) if joint else cell.grow_epochs
        core = max(1, length // 2)
        grown = max(1, (length - core) // 3)
        # prune-and-grow trains the core (width 0.512: 0.26 of the MACs), then each
        # grown level (0.64, 0.8, 1: 2.05 together); joint training runs all four widths a step
        effort = length * 2.3 if joint else core * 0.3 + grown * 2.1
        jobs.append(Job(f"{cell.dataset}/{cell.arch}/{name}",
                        (command, *cell.common, "--epochs", str(length), *flags),
                        after=(cell.baseline,), work=cell.work(effort)))
    return jobs


# A method family's jobs for one grid cell (elastic.methods: Method.family).
FAMILY_JOBS: dict[str, Callable[[Cell, tuple[str, ...]], list[Job]]] = {
    "": _baseline_jobs, "filters": _filter_jobs, "blocks": _block_jobs, "elastic": _elastic_jobs}


def method_jobs(cell: Cell) -> list[Job]:
    """Every grid method of the product for one cell (those of `cell.opts.methods`
    if it names any), family by family in the registry's order."""
    chosen = [m for m in GRID_METHODS if not cell.opts.methods or m in cell.opts.methods]
    families = dict.fromkeys(METHODS.get(m).family for m in GRID_METHODS)
    jobs = []
    for family in families:
        jobs += FAMILY_JOBS[family](cell, tuple(m for m in chosen if METHODS.get(m).family == family))
    return jobs


def _cifar10(opts: GridOptions) -> list[Job]:
    epochs = opts.epochs or 60
    jobs = []
    for arch in ("resnet20", "resnet56", "vgg16", "alexnet"):
        if not opts.archs or arch in opts.archs:
            jobs += method_jobs(Cell("cifar10", arch, epochs, opts, ft_epochs=max(epochs // 12, 1),
                                     grow_epochs=max(epochs // 6, 1), batch=256))
    return jobs


def _imagenette(opts: GridOptions) -> list[Job]:
    epochs = opts.epochs or 40
    jobs = []
    for arch in ("resnet50", "vgg16_bn"):
        if not opts.archs or arch in opts.archs:
            jobs += method_jobs(Cell("imagenette", arch, epochs, opts, ft_epochs=max(epochs // 10, 1),
                                     grow_epochs=max(epochs // 5, 1), batch=128))
    return jobs


def cpu_stage(name: str) -> str:
    """The stage of the CPU grid a job belongs to ('a' first), or '' if it is not
    in that grid: a. the CIFAR baselines; b. FA 0.5, uniform 0.5 and prune-and-grow;
    c. ResNet-56 block pruning, direct and L1; d. the other targets, PA and MA at
    0.5 and joint training; e. Imagenette ResNet-50; f. FA 0.5 and uniform 0.5 with
    channel counts rounded to 8 (hardware-aligned widths); g. PA and MA at 0.3 and 0.7."""
    dataset, arch, method, *rest = name.split("/")
    if rest and rest[-1].startswith("r"):
        return "f" if dataset == "cifar10" else ""
    if dataset == "imagenette":
        return "e" if method in ("baseline", "block", "elastic") or rest in (["FA", "0.5"], ["0.5"]) else ""
    if arch == "resnet20":   # its a-e rows are shipped
        return "g" if method == "complexity" and rest[0] in ("PA", "MA") and rest[1] != "0.5" else ""
    if method == "baseline":
        return "a"
    if method == "elastic" or rest in (["FA", "0.5"], ["0.5"]):
        return "b"
    if method in ("block", "block-l1"):
        return "c" if arch == "resnet56" else ""
    if method == "complexity" and rest[0] in ("PA", "MA") and rest[1] != "0.5":
        return "g"
    return "d" if method in ("complexity", "uniform", "elastic-joint") else ""


DATASET_FILES = ("cifar10", "imagenette")


def _cpu(opts: GridOptions) -> list[Job]:
    """The 12-epoch CIFAR-10 recipe of the shipped ResNet-20 rows (batch 256, lr
    0.2, seed 0; block pruning 1 fine-tuning epoch a step; prune-and-grow 4 epochs,
    joint 1) for ResNet-56, AlexNet and VGG-16, ResNet-50 on Imagenette at 16
    epochs (batch 128), in the order of `cpu_stage`, cheapest architecture first
    within a stage, so that a partial run is already useful. Rows go to
    cifar10.csv and imagenette.csv beside the grid's results file, which names
    the ledger (cpu.sweep.jsonl by default)."""
    epochs = opts.epochs or 12
    order = ("resnet56", "alexnet", "vgg16", "resnet20")
    cifar, imagenette = (replace(opts, results=opts.results.with_name(f"{name}.csv")) for name in DATASET_FILES)
    jobs = []
    for arch in order:
        if not opts.archs or arch in opts.archs:
            jobs += method_jobs(Cell("cifar10", arch, epochs, cifar, ft_epochs=1, grow_epochs=4, joint_epochs=1,
                                     batch=256, rounded=(8,)))
    if not opts.archs or "resnet50" in opts.archs:
        jobs += method_jobs(Cell("imagenette", "resnet50", opts.epochs or 16, imagenette, ft_epochs=1,
                                 grow_epochs=4, batch=128, modes=("FA",), targets=(0.5,)))
    staged = [j for j in jobs if cpu_stage(j.name)]
    return sorted(staged, key=lambda j: cpu_stage(j.name))    # stable: architecture order within a stage


def _smoke(opts: GridOptions) -> list[Job]:
    """Tiny and synthetic: every method once on ResNet-20, in seconds."""
    jobs = method_jobs(Cell("cifar10", "resnet20", opts.epochs or 1, opts, ft_epochs=1, grow_epochs=1,
                            batch=64, data=("--data", "synthetic"), block_limit=("--max-blocks", "1"),
                            targets=(0.5,), modes=("FA",)))
    return [j for j in jobs if not j.name.endswith("elastic-joint")]


GRIDS.add("smoke", Grid("smoke", "ResNet-20 on synthetic data, every method once (seconds)", _smoke))
GRIDS.add("cifar10", Grid("cifar10", "CIFAR-10: ResNet-20/56, VGG-16, AlexNet x every method", _cifar10))
GRIDS.add("imagenette", Grid("imagenette", "Imagenette: ResNet-50, VGG-16-BN x every method", _imagenette))
GRIDS.add("cpu", Grid("cpu", "the CPU grid: 12-epoch CIFAR-10 ResNet-56 / AlexNet / VGG-16 and 16-epoch "
                             "Imagenette ResNet-50, most useful rows first", _cpu))
