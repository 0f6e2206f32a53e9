"""Datasets by name, held in memory as uint8 tensors.

Three sources, tried in this order by `load_dataset(..., source="auto")`:
  1. a local archive (`cifar10.tar.gz`, `imagenette-128.tar.gz`, as in
     ../shared/data) in the data directory, decoded once and cached as .npy;
  2. torchvision's own download of the dataset (`download=True`), also cached;
  3. nothing: a `DataNotFound` error that says where it looked and what to do.
`source="synthetic"` makes a small learnable dataset for tests and demos.

Every dataset gets a validation split carved from its training data with a fixed
seed (5,000 images for CIFAR, 10% for Imagenette). Selection decisions use it; the
test split (Imagenette's official val split) is for reported accuracy only.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from elastic.atomic import replace_atomically
from elastic.errors import DataNotFound, ElasticError
from elastic.registry import Registry

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_classes: int
    input_size: int             # images are stored at this square size
    family: str                 # which architectures fit: "cifar" or "imagenette"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    archive: str                # file name of the local archive ("" if none exists)
    val_size: int | float       # images (int) or fraction (float) held out for validation
    test_split: str             # the archive's folder used as the test split


DATASETS: Registry[DatasetSpec] = Registry("dataset")
for _spec in (
    DatasetSpec("cifar10", 10, 32, "cifar", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                "cifar10.tar.gz", 5000, "test"),
    DatasetSpec("cifar100", 100, 32, "cifar", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                "", 5000, "test"),
    DatasetSpec("imagenette", 10, 128, "imagenette", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                "imagenette-128.tar.gz", 0.1, "val"),
):
    DATASETS.add(_spec.name, _spec)


@dataclass(frozen=True)
class ImageSet:
    """Images as uint8 (N, 3, H, W) and labels as int64 (N,)."""
    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: Tensor | Sequence[int]) -> "ImageSet":
        indices = torch.as_tensor(indices, dtype=torch.long)
        return ImageSet(self.images[indices], self.labels[indices])

    def head(self, n: int, seed: int = 0) -> "ImageSet":
        """A fixed random subset of n images (the same for the same seed), for
        quick live evaluation."""
        if n >= len(self):
            return self
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self.take(order[:n].sort().values)


@dataclass(frozen=True)
class DataSplits:
    spec: DatasetSpec
    train: ImageSet
    val: ImageSet
    test: ImageSet
    classes: tuple[str, ...]
    source: str                 # "archive:<path>", "torchvision:<root>" or "synthetic"

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes


def default_data_dirs() -> list[Path]:
    """Where datasets are looked for: $ELASTIC_DATA if set, else ./data and the
    ../shared/data folder beside the repository."""
    if os.environ.get("ELASTIC_DATA"):
        return [Path(os.environ["ELASTIC_DATA"])]
    return [Path("data"), REPO_ROOT / "data", REPO_ROOT.parent / "shared" / "data"]


def cache_dir() -> Path:
    """Decoded arrays and checkpoints go here: $ELASTIC_CACHE or ./.cache/elastic
    in the repository (git ignores it)."""
    return Path(os.environ.get("ELASTIC_CACHE", REPO_ROOT / ".cache" / "elastic"))


def load_dataset(name: str, data_dir: str | Path | None = None, *, source: str = "auto",
                 download: bool = False, seed: int = 0, synthetic_size: int = 512) -> DataSplits:
    """Train / validation / test splits of dataset `name`.

    source: "auto" (local archive, then torchvision files, then download if
    allowed), "archive", "torchvision" or "synthetic".
    """
    spec = DATASETS.get(name)
    if source == "synthetic":
        return _split(spec, *synthetic(spec, synthetic_size, seed=seed), "synthetic", seed)
    dirs = [Path(data_dir)] if data_dir is not None else default_data_dirs()
    if source in ("auto", "archive") and spec.archive:
        for folder in dirs:
            path = folder / spec.archive
            if path.is_file():
                train, test, classes = _cached(path, lambda: _read_archive(spec, path))
                return _split(spec, train, test, classes, f"archive:{path}", seed)
    if source in ("auto", "torchvision"):
        for folder in dirs:
            found = _read_torchvision(spec, folder, download=False)
            if found is not None:
                return _split(spec, *found, f"torchvision:{folder}", seed)
        if download:
            folder = dirs[0]
            found = _read_torchvision(spec, folder, download=True)
            assert found is not None
            return _split(spec, *found, f"torchvision:{folder}", seed)
    if source not in ("auto", "archive", "torchvision"):
        raise ElasticError(f"unknown data source {source!r}; use auto, archive, torchvision or synthetic")
    looked = ", ".join(str(d.resolve()) for d in dirs)
    archive = f"the archive {spec.archive} or " if spec.archive else ""
    raise DataNotFound(
        f"dataset {name!r} not found. Looked for {archive}torchvision's files in: {looked}. "
        f"Put {archive}torchvision's files in one of those folders (or point --data-dir / "
        f"$ELASTIC_DATA at it), pass --download to fetch it with torchvision, "
        f"or use --data synthetic for a demo without data.")


def validation_indices(n_train: int, val_size: int | float, seed: int) -> tuple[Tensor, Tensor]:
    """Disjoint (train, val) index sets, fixed by the seed."""
    n_val = val_size if isinstance(val_size, int) else round(n_train * val_size)
    n_val = min(n_val, n_train // 2)  # tiny synthetic sets keep half for training
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))
    return order[n_val:].sort().values, order[:n_val].sort().values


def _split(spec: DatasetSpec, train: ImageSet, test: ImageSet, classes: Sequence[str],
           source: str, seed: int) -> DataSplits:
    train_idx, val_idx = validation_indices(len(train), spec.val_size, seed)
    return DataSplits(spec, train.take(train_idx), train.take(val_idx), test, tuple(classes), source)


def synthetic(spec: DatasetSpec, n: int, seed: int = 0) -> tuple[ImageSet, ImageSet, list[str]]:
    """A learnable toy set at the dataset's size and class count: each class has
    its own colour and stripe orientation, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    size, k = spec.input_size, spec.num_classes
    colours = torch.rand(k, 3, 1, 1, generator=gen)

    def make(count: int) -> ImageSet:
        labels = torch.arange(count) % k
        ramp = torch.linspace(0, 6.28, size)
        stripes = torch.where((labels % 2 == 0).view(-1, 1, 1),
                              ramp.view(1, 1, size).expand(count, size, size),
                              ramp.view(1, size, 1).expand(count, size, size)).sin()
        images = colours[labels] * 0.7 + 0.15 * stripes.unsqueeze(1)
        images = images + 0.1 * torch.randn(count, 3, size, size, generator=gen)
        return ImageSet((images.clamp(0, 1) * 255).to(torch.uint8), labels)

    return make(n), make(max(n // 4, k)), [f"class{i}" for i in range(k)]


# ---- I/O at the edge: archives, torchvision files, the .npy cache ----------------

def _cached(source: Path, read) -> tuple[ImageSet, ImageSet, list[str]]:
    """Decode once, then load the arrays from the cache. The cache key is the
    source file's name, size and modification time."""
    stat = source.stat()
    key = hashlib.sha1(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    folder = cache_dir() / "datasets" / f"{source.name.split('.')[0]}-{key}"
    meta = folder / "meta.json"
    if meta.is_file():
        try:
            classes = json.loads(meta.read_text())["classes"]
            sets = [ImageSet(torch.from_numpy(np.load(folder / f"{s}_images.npy")),
                             torch.from_numpy(np.load(folder / f"{s}_labels.npy"))) for s in ("train", "test")]
            return sets[0], sets[1], classes
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    train, test, classes = read()
    folder.mkdir(parents=True, exist_ok=True)
    # Several processes may decode at once (a sweep's workers): each writes its own
    # temporary files and renames them into place, so no reader sees a partial file.
    for split, data in (("train", train), ("test", test)):
        for part, tensor in (("images", data.images), ("labels", data.labels)):
            replace_atomically(folder / f"{split}_{part}.npy",
                               lambda f, t=tensor: np.save(f, t.numpy()))
    replace_atomically(meta, lambda f: f.write(json.dumps({"classes": classes, "source": str(source)}).encode()))
    return train, test, classes


def _read_archive(spec: DatasetSpec, path: Path) -> tuple[ImageSet, ImageSet, list[str]]:
    """Decode `<root>/{train,<test>}/<class>/<file>.jpg` from a .tar.gz archive."""
    files: dict[str, list[tuple[str, str, bytes]]] = {"train": [], spec.test_split: []}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                parts = member.name.split("/")
                if not member.isfile() or len(parts) != 4 or parts[1] not in files:
                    continue
                files[parts[1]].append((parts[2], member.name, tar.extractfile(member).read()))
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataNotFound(f"{path} is not a readable .tar.gz archive ({err}); "
                           f"replace it with a complete copy") from err
    classes = sorted({c for c, _, _ in files["train"]})
    if len(classes) != spec.num_classes or not files[spec.test_split]:
        raise DataNotFound(f"{path} holds {len(classes)} classes and {len(files[spec.test_split])} "
                           f"{spec.test_split} images; expected {spec.num_classes} classes and a "
                           f"'{spec.test_split}' folder. Is the archive complete?")
    index = {c: i for i, c in enumerate(classes)}
    sets = []
    for split in ("train", spec.test_split):
        entries = sorted(files[split], key=lambda e: e[1])
        images = torch.empty(len(entries), 3, spec.input_size, spec.input_size, dtype=torch.uint8)
        for i, (_, name, data) in enumerate(entries):
            try:
                image = decode_image(data)
            except ElasticError as err:
                raise DataNotFound(f"{path}: {name} {err}") from None
            images[i] = _fit(image, spec.input_size)
        labels = torch.tensor([index[c] for c, _, _ in entries], dtype=torch.long)
        sets.append(ImageSet(images, labels))
    return sets[0], sets[1], classes


def decode_image(data: bytes) -> Tensor:
    """JPEG / PNG bytes -> uint8 (3, H, W) RGB, with Pillow (torchvision's own
    decoders are deprecated from 0.29)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            array = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ElasticError(f"is not a readable image ({err})") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def _fit(image: Tensor, size: int) -> Tensor:
    """Resize the short side to `size` and centre-crop to a square."""
    from torchvision.transforms.v2 import functional as F

    if image.shape[-2:] != (size, size):
        image = F.center_crop(F.resize(image, size, antialias=True), [size, size])
    return image


def _read_torchvision(spec: DatasetSpec, root: Path, download: bool):
    """torchvision's dataset files under root (downloading them if asked), or None."""
    import torchvision.datasets as tvd

    try:
        if spec.name in ("cifar10", "cifar100"):
            cls = tvd.CIFAR10 if spec.name == "cifar10" else tvd.CIFAR100
            train, test = (cls(str(root), train=t, download=download) for t in (True, False))
            sets = [ImageSet(torch.from_numpy(d.data).permute(0, 3, 1, 2).contiguous(),
                             torch.tensor(d.targets, dtype=torch.long)) for d in (train, test)]
            return sets[0], sets[1], list(train.classes)
        if spec.name == "imagenette":
            train, test = (tvd.Imagenette(str(root), split=s, size="160px", download=download)
                           for s in ("train", "val"))
            key = root / "imagenette2-160" / "train"
            return _cached(key, lambda: _decode_folder_sets(spec, train, test))
    except RuntimeError as err:
        if download:
            raise DataNotFound(f"could not download {spec.name} into {root}: {err}. Without "
                               f"internet, copy the dataset files there by hand.") from err
        return None
    except OSError as err:
        if download:
            raise DataNotFound(f"could not download {spec.name} into {root} ({err}): this machine seems to be "
                               f"offline. Check the connection, or copy the dataset files there by hand, "
                               f"or use --data synthetic for a demo without data") from err
        return None
    return None


def _decode_folder_sets(spec: DatasetSpec, *datasets) -> tuple[ImageSet, ImageSet, list[str]]:
    sets = []
    for ds in datasets:
        images = torch.empty(len(ds._samples), 3, spec.input_size, spec.input_size, dtype=torch.uint8)
        for i, (file, _) in enumerate(ds._samples):
            try:
                image = decode_image(Path(file).read_bytes())
            except ElasticError as err:
                raise DataNotFound(f"{file} {err}") from None
            images[i] = _fit(image, spec.input_size)
        sets.append(ImageSet(images, torch.tensor([label for _, label in ds._samples])))
    return sets[0], sets[1], [names[0] for names in datasets[0].classes]


def read_image_bytes(data: bytes, size: int) -> Tensor:
    """A user's image file as a uint8 (3, size, size) tensor; clear error if it is
    not an image."""
    try:
        image = decode_image(data)
    except ElasticError as err:
        raise ElasticError(f"the file {err}") from None
    return _fit(image, size)


__all__ = ["DATASETS", "DataSplits", "DatasetSpec", "ImageSet", "cache_dir", "default_data_dirs",
           "load_dataset", "synthetic", "validation_indices", "read_image_bytes"]
