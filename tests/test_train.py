import pytest
import torch

from elastic.checkpoints import load_checkpoint, save_checkpoint
from elastic.data import DATASETS, load_dataset
from elastic.errors import BadCheckpoint
from elastic.models import build_model
from elastic.train import Recipe, augment, evaluate, train

QUICK = Recipe(epochs=3, batch_size=32, lr=0.05)


def tiny(seed=0):
    return load_dataset("cifar10", source="synthetic", synthetic_size=256, seed=seed)


def test_training_lowers_the_loss_and_learns():
    data = tiny()
    torch.manual_seed(0)
    model = build_model("resnet20", 10)
    before = evaluate(model, data.val, data.spec)
    result = train(model, data.train, data.spec, QUICK, val_set=data.val)
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < losses[0]
    assert result.history[-1]["val_acc"] > before


def test_training_is_deterministic_under_a_seed():
    data = tiny()
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model("resnet20", 10)
        train(model, data.train, data.spec, Recipe(epochs=1, batch_size=64), seed=3)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_resume_continues_where_it_stopped(tmp_path):
    data = tiny()
    recipe = Recipe(epochs=2, batch_size=64)
    torch.manual_seed(0)
    straight = build_model("resnet20", 10)
    train(straight, data.train, data.spec, recipe, seed=1)

    ckpt = tmp_path / "run.pt"

    class Stop(Exception):  # a run killed during epoch 2 leaves the checkpoint of epoch 1
        pass

    def stop_in_epoch_two(p):
        if p.epoch == 2:
            raise Stop

    torch.manual_seed(0)
    killed = build_model("resnet20", 10)
    with pytest.raises(Stop):
        train(killed, data.train, data.spec, recipe, seed=1, checkpoint=ckpt, on_progress=stop_in_epoch_two)
    assert load_checkpoint(ckpt)["epoch"] == 1
    resumed = build_model("resnet20", 10)
    result = train(resumed, data.train, data.spec, recipe, seed=1, checkpoint=ckpt)
    assert result.resumed_from_epoch == 1
    for key, value in straight.state_dict().items():
        assert torch.allclose(value.float(), resumed.state_dict()[key].float(), atol=1e-5), key


@pytest.mark.parametrize("name", ["cifar10", "imagenette"])
def test_augmentation_keeps_shape_dtype_and_changes_images(name):
    spec = DATASETS.get(name)
    data = load_dataset(name, source="synthetic", synthetic_size=64)
    batch = data.train.images[:16]
    out = augment(batch, spec, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape and out.dtype == torch.uint8
    assert not torch.equal(out, batch)


def test_cifar_crop_is_a_shifted_copy():
    spec = DATASETS.get("cifar10")
    image = torch.arange(3 * 32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8).view(1, 3, 32, 32)
    out = augment(image.repeat(8, 1, 1, 1), spec, torch.Generator().manual_seed(1))
    for crop in out:
        # the centre 24x24 of any crop (shift <= 4) appears somewhere in the original
        centre = crop[:, 4:28, 4:28]
        found = any(torch.equal(centre, img[:, dy:dy + 24, dx:dx + 24])
                    for img in (image[0], image[0].flip(2)) for dy in range(9) for dx in range(9))
        assert found


def test_evaluate_fixed_subset_and_accuracy_range():
    data = tiny()
    model = build_model("resnet20", 10)
    subset = data.test.head(50)
    assert len(subset) == 50
    assert torch.equal(subset.labels, data.test.head(50).labels)
    acc = evaluate(model, subset, data.spec)
    assert 0 <= acc <= 100


def test_checkpoints_are_loaded_safely(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"model": {"w": torch.ones(2)}, "epoch": 3})
    assert load_checkpoint(good)["epoch"] == 3
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BadCheckpoint, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(BadCheckpoint, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
