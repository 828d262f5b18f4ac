"""DANN stages: the GRL's gradient, every placement, λ = 0 ≡ source only, PAD, bad inputs."""
import math

import numpy as np
import pytest
import torch

from lab.data.officehome import officehome_domain
from lab.errors import LabError
from lab.experiments.dann.config import DANNConfig
from lab.experiments.dann.data import load_task
from lab.experiments.dann.run import run_dann
from lab.metrics.domain import pad_from_error, proxy_a_distance
from lab.models.dann import GradientReversalLayer, GradientReverse, build_dann
from lab.models.dann_registry import check_placement
from lab.train.dann import DANNTrainConfig, DomainPair, dann_lambda, dann_lr, train_dann


def _random_pair(n=32, size=32, classes=10, seed=0) -> DomainPair:
    g = torch.Generator().manual_seed(seed)
    img = lambda: torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)  # noqa: E731
    lab = lambda: torch.randint(0, classes, (n,), generator=g)  # noqa: E731
    return DomainPair(img(), lab(), img(), img(), lab(), img(), lab(), [str(i) for i in range(classes)])


@pytest.mark.parametrize("lam", [0.0, 0.001, 0.37, 1.0, 3.5])
def test_grl_backward_is_exactly_minus_lambda_times_the_gradient(lam):
    x = torch.randn(5, 7, requires_grad=True)
    grad = torch.randn(5, 7)
    y = GradientReverse.apply(x, lam)
    assert torch.equal(y, x)  # identity forward
    y.backward(grad)
    assert torch.equal(x.grad, -lam * grad)
    x.grad = None
    layer = GradientReversalLayer(lam)
    (layer(x) * grad).sum().backward()
    assert torch.equal(x.grad, -lam * grad)


def test_schedules_match_the_paper():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1, abs=1e-15)
    assert dann_lambda(0.5, 0.3) == pytest.approx(0.3 * (2 / (1 + math.exp(-5)) - 1), abs=1e-15)
    assert dann_lambda(0.7, 0.001, "constant") == 0.001
    assert dann_lr(0.0, 0.01) == 0.01
    assert dann_lr(1.0, 0.01) == pytest.approx(0.01 / 11 ** 0.75, rel=1e-12)
    assert dann_lr(0.4, 0.02, "constant") == 0.02


@pytest.mark.parametrize("backbone,placements", [
    ("lenet", ["none", "stage1", "stage2", "stage3"]),
    ("resnet18", ["layer2", "layer3"]),
    pytest.param("resnet50", ["layer3", "stage2"], marks=pytest.mark.slow),
])
def test_every_placement_builds_and_trains_a_few_steps(backbone, placements):
    data = _random_pair(n=8)
    config = DANNTrainConfig(epochs=1, steps_per_epoch=2, batch_size=4, eval_limit=8, feature_points=8,
                             lambda_schedule="constant")
    for placement in placements:
        torch.manual_seed(123)
        before = {k: v.clone() for k, v in build_dann(backbone, placement, weights="scratch")[0].state_dict().items()}
        run = train_dann(data, placement, backbone, config, weights="scratch")
        after = run.net.state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before if after[k].is_floating_point())
        assert len(run.history) == 1 and 0 <= run.target_acc <= 1
        assert run.pretrained is False and "scratch" in run.weights
        entry = run.history[0]
        if placement == "none":
            assert math.isnan(entry["domain_loss"])
        else:
            assert math.isfinite(entry["domain_loss"]) and 0 <= entry["domain_acc"] <= 1


def test_discriminator_is_sized_per_placement():
    shapes = {}
    for placement in ("stage1", "stage2", "stage3"):
        net, disc = build_dann("lenet", placement)
        shapes[placement] = (net.tap_shape(), disc.mlp[0].in_features, disc.mlp[0].out_features)
    assert shapes["stage1"] == ((1600,), 1600, 1024)
    assert shapes["stage2"] == ((256,), 256, 256)
    assert shapes["stage3"] == ((10,), 10, 64)
    net, disc = build_dann("resnet18", "layer3", weights="scratch")
    assert net.tap_shape() == (256, 2, 2) and disc.reduce[0].in_channels == 256
    assert build_dann("lenet", "none")[1] is None


@pytest.mark.parametrize("placement", ["stage1", "stage2", "stage3"])
def test_lambda_zero_dann_equals_source_only_for_the_same_seed(placement):
    data = _random_pair(n=24, seed=1)
    common = dict(epochs=1, steps_per_epoch=4, batch_size=8, eval_limit=8, feature_points=4, seed=7,
                  source_only_sees_target=True)
    plain = train_dann(data, "none", "lenet", DANNTrainConfig(**common))
    zero = train_dann(data, placement, "lenet", DANNTrainConfig(**common, lambda_schedule="constant", lambda_max=0.0))
    full = train_dann(data, placement, "lenet", DANNTrainConfig(**common, lambda_schedule="constant", lambda_max=1.0))
    a, b, c = plain.net.state_dict(), zero.net.state_dict(), full.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert plain.target_acc == zero.target_acc and plain.history[0]["cls_loss"] == zero.history[0]["cls_loss"]
    # the control: with λ = 1 the adversarial gradient does reach the label network
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_proxy_a_distance_closed_forms():
    assert pad_from_error(0.0) == 2.0 and pad_from_error(0.25) == 1.0 and pad_from_error(0.5) == 0.0
    assert pad_from_error(0.7) == 0.0  # worse than chance is capped
    rng = np.random.default_rng(0)
    same = proxy_a_distance(rng.normal(size=(1000, 8)), rng.normal(size=(1000, 8)))
    apart = proxy_a_distance(rng.normal(size=(400, 8)), rng.normal(size=(400, 8)) + 10.0)
    assert same.pad < 0.3 and apart.pad == 2.0 and apart.error == 0.0
    assert same.n_per_domain == 1000 and same.dim == 8
    with pytest.raises(LabError, match="same size"):
        proxy_a_distance(np.zeros((10, 3)), np.zeros((10, 4)))


def test_bad_inputs_give_clear_messages(tmp_path):
    with pytest.raises(LabError, match="Unknown GRL placement 'stage4'"):
        check_placement("stage4", "lenet")
    with pytest.raises(LabError, match="taps a ResNet"):
        DANNConfig(placements=["layer2"]).validate()
    with pytest.raises(LabError, match="Unknown task"):
        DANNConfig(task="svhn-mnist").validate()
    with pytest.raises(LabError, match="Unknown backbone"):
        DANNConfig(backbone="vgg16").validate()
    with pytest.raises(LabError, match="listed twice"):
        DANNConfig(placements=["stage1", "stage1"]).validate()
    with pytest.raises(LabError, match="Unknown optimizer"):
        DANNConfig(optimizer="rmsprop").validate()
    with pytest.raises(LabError, match="Unknown DANN setting"):
        DANNConfig.from_dict({"task": "usps-mnist", "lambdaa": 1})
    with pytest.raises(LabError, match="LeNet has no ImageNet weights"):
        build_dann("lenet", "stage1", weights="imagenet")
    with pytest.raises(LabError, match="offline"):
        build_dann("resnet18", "stage1", weights="imagenet")  # tests run offline with an empty torch cache
    with pytest.raises(LabError, match="not shipped"):
        load_task(DANNConfig(task="officehome"))
    with pytest.raises(LabError, match="does not exist"):
        load_task(DANNConfig(task="officehome", officehome_path=str(tmp_path / "nowhere")))
    (tmp_path / "Art").mkdir()
    with pytest.raises(LabError, match="has no Clipart/ folder"):
        officehome_domain(tmp_path, "Clipart", 32)
    with pytest.raises(LabError, match="different domains"):
        DANNConfig(task="officehome", officehome_source="Art", officehome_target="Art").validate()


def _fake_officehome(root, classes=("Bike", "Mug"), per_class=20):
    from PIL import Image

    rng = np.random.default_rng(0)
    for domain in ("Clipart", "Real World"):  # the official zip spells it with a space
        for c, name in enumerate(classes):
            folder = root / domain / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                array = rng.integers(0, 80, (40, 48, 3), dtype=np.uint8) + (120 if c else 0)
                if domain == "Clipart":
                    array[::4] = 255  # a crude "style"
                Image.fromarray(array).save(folder / f"{i:04d}.jpg")
    return root


def test_officehome_folder_trains_end_to_end(tmp_path):
    root = _fake_officehome(tmp_path / "OfficeHome")
    config = DANNConfig(task="officehome", officehome_path=str(root), size=32, placements=["none", "stage1"],
                        epochs=1, steps_per_epoch=2, batch_size=4, feature_points=8)
    data = load_task(config)
    assert data.classes == ["Bike", "Mug"] and len(data.target_x) == 40 and len(data.target_test_x) == 40
    assert len(data.source_x) == 36 and len(data.source_test_x) == 4 and data.size == 32
    result = run_dann(config)
    assert [r["placement"] for r in result.rows()] == ["none", "stage1"]
    assert result.data["class_names"] == ["Bike", "Mug"] and result.data["target"] == "officehome-Real_World"
    assert result.input_pad["pad"] == 2.0  # the crude clipart stripes are trivially separable
