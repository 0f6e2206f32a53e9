import json

import pytest
import torch

from elastic.data import DATASETS, load_dataset, read_image_bytes, validation_indices
from elastic.errors import DataNotFound, ElasticError, UnknownName
from tests.conftest import shared_archive


@pytest.fixture(scope="module")
def cifar10():
    return load_dataset("cifar10", shared_archive("cifar10").parent)


def test_cifar10_archive_splits(cifar10):
    assert (len(cifar10.train), len(cifar10.val), len(cifar10.test)) == (45000, 5000, 10000)
    assert cifar10.train.images.dtype == torch.uint8
    assert cifar10.train.images.shape[1:] == (3, 32, 32)
    assert cifar10.classes[:3] == ("airplane", "automobile", "bird")
    # 1,000 test images a class, every class present in validation
    assert cifar10.test.labels.bincount().tolist() == [1000] * 10
    assert cifar10.val.labels.unique().numel() == 10
    assert cifar10.source.startswith("archive:")


def test_validation_split_is_disjoint_and_fixed(cifar10):
    train_idx, val_idx = validation_indices(50000, 5000, seed=0)
    assert len(set(train_idx.tolist()) & set(val_idx.tolist())) == 0
    assert len(train_idx) + len(val_idx) == 50000
    again, _ = validation_indices(50000, 5000, seed=0)
    assert torch.equal(train_idx, again)
    other, _ = validation_indices(50000, 5000, seed=1)
    assert not torch.equal(train_idx, other)
    # no validation image is also a training image (as pixels, on a sample)
    train_bytes = {bytes(img.numpy()) for img in cifar10.train.images[:20000]}
    assert not any(bytes(img.numpy()) in train_bytes for img in cifar10.val.images[:2000])


def test_decoded_arrays_are_cached(cifar10, tmp_path_factory):
    cached = list((tmp_path_factory.getbasetemp() / "elastic-cache" / "datasets").glob("cifar10-*/meta.json"))
    assert cached and json.loads(cached[0].read_text())["classes"][0] == "airplane"
    again = load_dataset("cifar10", shared_archive("cifar10").parent)
    assert torch.equal(again.test.images[:100], cifar10.test.images[:100])


def test_imagenette_archive_subset():
    data = load_dataset("imagenette", shared_archive("imagenette").parent)
    assert data.train.images.shape[1:] == (3, 128, 128)
    assert len(data.test) == 3925
    assert len(data.val) == round(9469 * 0.1)
    assert len(data.train) + len(data.val) == 9469
    assert data.test.labels.unique().numel() == 10


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "imagenette"])
def test_synthetic_data_has_the_dataset_shape(name):
    spec = DATASETS.get(name)
    data = load_dataset(name, source="synthetic", synthetic_size=256)
    assert data.train.images.shape[1:] == (3, spec.input_size, spec.input_size)
    assert int(data.train.labels.max()) < spec.num_classes
    assert len(data.val) > 0 and len(data.test) > 0


def test_missing_data_says_where_it_looked(tmp_path):
    with pytest.raises(DataNotFound) as err:
        load_dataset("cifar100", tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message and "--download" in message


def test_cifar100_loader_reads_torchvision_files(tmp_path):
    """CIFAR-100 has no offline copy: write a tiny file set in torchvision's own
    format and check the real loader reads it."""
    import hashlib
    import pickle

    import torchvision.datasets as tvd

    folder = tmp_path / tvd.CIFAR100.base_folder
    folder.mkdir()
    rng = torch.Generator().manual_seed(0)
    for name, n in (("train", 60), ("test", 20)):
        batch = {"data": torch.randint(0, 256, (n, 3072), generator=rng, dtype=torch.uint8).numpy(),
                 "fine_labels": [i % 100 for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"fine_label_names": [f"c{i}" for i in range(100)]}
    (folder / "meta").write_bytes(pickle.dumps(meta))
    # torchvision checks md5 sums of the files it knows: point them at ours
    sums = {f: hashlib.md5((folder / f).read_bytes()).hexdigest() for f in ("train", "test", "meta")}
    original = (tvd.CIFAR100.train_list, tvd.CIFAR100.test_list, dict(tvd.CIFAR100.meta))
    tvd.CIFAR100.train_list = [["train", sums["train"]]]
    tvd.CIFAR100.test_list = [["test", sums["test"]]]
    tvd.CIFAR100.meta = {**tvd.CIFAR100.meta, "md5": sums["meta"]}
    try:
        data = load_dataset("cifar100", tmp_path)
    finally:
        tvd.CIFAR100.train_list, tvd.CIFAR100.test_list, tvd.CIFAR100.meta = original
    assert data.num_classes == 100 and data.source.startswith("torchvision:")
    assert len(data.train) + len(data.val) == 60 and len(data.test) == 20


def test_broken_archive_is_refused(tmp_path):
    (tmp_path / "cifar10.tar.gz").write_bytes(b"this is not a tar file")
    with pytest.raises(DataNotFound, match="not a readable .tar.gz"):
        load_dataset("cifar10", tmp_path)


def test_unknown_dataset_and_source():
    with pytest.raises(UnknownName):
        load_dataset("mnist")
    with pytest.raises(ElasticError, match="unknown data source"):
        load_dataset("cifar10", source="ftp")


def test_read_image_bytes_rejects_non_images():
    with pytest.raises(ElasticError, match="not a readable image"):
        read_image_bytes(b"GIF89a but not really", 32)
