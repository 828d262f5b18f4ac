"""DANN stages: the GRL's gradient, every placement, CDAN's multilinear map and entropy weights by hand, λ = 0 ≡
source only for every adversarial method, PAD, the standard USPS loader, the verdict, bad inputs."""
import math
import os
from pathlib import Path

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
from lab.train.adversarial import (ConditionalDomainAdversarialLoss, RandomizedMultilinearMap, build_adversary,
                                   multilinear_map)
from lab.train.dann import DANNTrainConfig, DomainPair, dann_lambda, dann_lr, train_dann


needs_usps_libsvm_test = pytest.mark.skipif(
    not (Path(os.environ["LAB_DATA_DIR"]) / "usps" / "usps.t.bz2").exists() or
    not (Path(os.environ["LAB_DATA_DIR"]) / "usps" / "usps.h5").exists(),
    reason="usps.t.bz2 and usps.h5 not both in LAB_DATA_DIR/usps")


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


@pytest.mark.parametrize("method", ["dann", "cdan", "cdan+e"])
@pytest.mark.parametrize("placement", ["stage1", "stage2", "stage3"])
def test_lambda_zero_adversarial_rows_equal_source_only_for_the_same_seed(placement, method):
    data = _random_pair(n=24, seed=1)
    common = dict(epochs=1, steps_per_epoch=4, batch_size=8, eval_limit=8, feature_points=4, seed=7,
                  source_only_sees_target=True)
    plain = train_dann(data, "none", "lenet", DANNTrainConfig(**common))
    zero = train_dann(data, placement, "lenet", DANNTrainConfig(**common, lambda_schedule="constant", lambda_max=0.0),
                      method=method)
    full = train_dann(data, placement, "lenet", DANNTrainConfig(**common, lambda_schedule="constant", lambda_max=1.0),
                      method=method)
    a, b, c = plain.net.state_dict(), zero.net.state_dict(), full.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert plain.target_acc == zero.target_acc and plain.history[0]["cls_loss"] == zero.history[0]["cls_loss"]
    assert math.isfinite(zero.history[0]["domain_loss"]) and zero.row.startswith(method.upper())
    # the control: with λ = 1 the adversarial gradient does reach the label network
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_multilinear_map_by_hand():
    f, g = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0, 5.0]])
    assert multilinear_map(f, g).tolist() == [[3.0, 6.0, 4.0, 8.0, 5.0, 10.0]]  # g_c f_j, class-major
    two = multilinear_map(torch.tensor([[1.0, 0.0], [0.5, -1.0]]), torch.tensor([[0.2, 0.8], [1.0, 0.0]]))
    assert torch.allclose(two, torch.tensor([[0.2, 0.0, 0.8, 0.0], [0.5, -1.0, 0.0, 0.0]]))
    # the randomized map by hand: (f R_f) ⊙ (g R_g) / √k
    mapping = RandomizedMultilinearMap(2, 3, dim=2)
    mapping.rf.copy_(torch.tensor([[1.0, 0.0], [1.0, 2.0]]))
    mapping.rg.copy_(torch.tensor([[1.0, 1.0], [0.0, 1.0], [2.0, 0.0]]))
    # f R_f = [3, 4]; g R_g = [3 + 10, 3 + 4] = [13, 7]; ⊙ / √2
    assert torch.allclose(mapping(f, g), torch.tensor([[39.0, 28.0]]) / math.sqrt(2))
    # in expectation its inner products are those of the full map: ⟨f, f'⟩⟨g, g'⟩
    torch.manual_seed(0)
    big = RandomizedMultilinearMap(2, 3, dim=200_000)
    f2, g2 = torch.tensor([[0.5, -1.0]]), torch.tensor([[1.0, 0.0, 2.0]])
    exact = (multilinear_map(f, g) * multilinear_map(f2, g2)).sum()
    assert exact == (f * f2).sum() * (g * g2).sum() == -19.5
    assert float((big(f, g) * big(f2, g2)).sum()) == pytest.approx(-19.5, rel=0.05)


def test_cdan_sizes_its_discriminator_and_randomizes_large_maps():
    sizes = {}
    for tap in ((1600,), (256,), (10,)):
        loss = build_adversary("cdan", tap, 10)
        sizes[tap[0]] = (loss.discriminator.mlp[0].in_features, loss.mapping is not None)
    assert sizes == {1600: (1024, True), 256: (2560, False), 10: (100, False)}
    assert build_adversary("none", (10,), 10) is None
    assert build_adversary("cdan+e", (10,), 10).entropy and not build_adversary("cdan", (10,), 10).entropy
    assert build_adversary("dann", (256,), 10).discriminator.mlp[0].in_features == 256
    pooled = build_adversary("cdan", (256, 2, 2), 10).view(torch.ones(3, 256, 2, 2), torch.zeros(3, 10))
    assert pooled.shape == (3, 2560) and torch.allclose(pooled, torch.full((3, 2560), 0.1))


def test_cdan_e_weights_examples_by_one_plus_exp_minus_entropy():
    """The weighted loss equals the hand-weighted BCE of a fixed discriminator."""
    torch.manual_seed(0)
    disc = torch.nn.Linear(4, 1)
    loss = ConditionalDomainAdversarialLoss(lambda h: disc(h).squeeze(1), entropy=True)
    f = torch.randn(4, 2)
    logits = torch.tensor([[0.0, 0.0], [30.0, 0.0], [1.0, 0.0], [0.0, -30.0]])  # uniform, sure, unsure, sure
    p = torch.softmax(logits, 1)
    h = -(p * p.clamp_min(1e-12).log()).sum(1)
    w = 1 + torch.exp(-h)
    assert w[0] == pytest.approx(1.5) and w[1] == pytest.approx(2.0)   # 1 + 1/C for C = 2; 2 for one-hot
    w = w / w.sum() * 4
    assert torch.allclose(loss.weights(logits), w)
    d = disc(multilinear_map(f, p)).squeeze(1)
    y = torch.tensor([1.0, 1.0, 0.0, 0.0])
    by_hand = (w * -(y * torch.log(torch.sigmoid(d)) + (1 - y) * torch.log(1 - torch.sigmoid(d)))).mean()
    assert loss(f[:2], f[2:], logits[:2], logits[2:]).item() == pytest.approx(by_hand.item(), rel=1e-5)
    plain = ConditionalDomainAdversarialLoss(lambda h: disc(h).squeeze(1))
    unweighted = (-(y * torch.log(torch.sigmoid(d)) + (1 - y) * torch.log(1 - torch.sigmoid(d)))).mean()
    assert plain(f[:2], f[2:], logits[:2], logits[2:]).item() == pytest.approx(unweighted.item(), rel=1e-5)


def test_jobs_and_verdict():
    config = DANNConfig(placements=["none", "stage2", "stage3"], methods=["dann", "cdan+e"]).validate()
    assert config.jobs() == [("none", "none"), ("stage2", "dann"), ("stage2", "cdan+e"), ("stage3", "dann"),
                             ("stage3", "cdan+e")]
    assert DANNConfig(placements=["stage1"], methods=["none", "cdan"]).validate().jobs() == [
        ("none", "none"), ("stage1", "cdan")]
    from lab.experiments.dann.table import display_rows, verdict

    def row(name, method, mean, std, seeds=3):
        return {"row": name, "method": method, "placement": "stage3", "GRL at": "", "seeds": seeds,
                "target_acc_mean": mean, "target_acc_std": std, "source_acc_mean": 0.9, "source_acc_std": 0.0,
                "pad_mean": 1.9, "pad_std": 0.01, "pad_seen_mean": 0.71234, "pad_seen_std": 0.1,
                "minutes_per_run": 2.345}
    base = row("source only", "none", 0.90, 0.01)
    assert "well beyond the spread" in verdict([base, row("CDAN @ stage3", "cdan", 0.97, 0.005)])
    assert "within the spread" in verdict([base, row("CDAN @ stage3", "cdan", 0.905, 0.01)])
    assert "No adversarial row beat source only" in verdict([base, row("DANN @ stage3", "dann", 0.85, 0.01)])
    assert "One seed only" in verdict([row("source only", "none", 0.9, 0.0, 1), row("D", "dann", 0.95, 0.0, 1)])
    shown = display_rows([base])[0]
    assert list(shown)[0] == "target acc %" and shown["target acc %"] == "90.00 ± 1.00"
    assert shown["PAD: what the discriminator sees"] == "0.71 ± 0.10" and shown["min / run"] == 2.3


def _write_libsvm(path, images, labels):
    import bz2

    lines = [f"{y + 1} " + " ".join(f"{i + 1}:{v:.6f}" for i, v in enumerate(x.reshape(-1))) for x, y in
             zip(images, labels)]
    with bz2.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")


def test_usps_loader_gives_torchvisions_values_when_the_libsvm_file_is_there(tmp_path, monkeypatch):
    import h5py
    import torchvision

    from lab.data import load_dataset
    from lab.data.usps import read_usps, usps_rendering

    rng = np.random.default_rng(0)
    values = np.clip(rng.normal(-0.6, 0.6, (12, 16, 16)), -1, 1).astype(np.float32)
    values[:, 3, 3] = [-1.0, 1.0, 0.999999, -0.999999, 0.0, 0.5, -0.5, 0.1234567, 0.3, 0.7, 0.9, -0.2]
    labels = np.arange(12) % 10
    folder = tmp_path / "usps"
    folder.mkdir()
    _write_libsvm(folder / "usps.bz2", values, labels)
    with h5py.File(folder / "usps.h5", "w") as f:  # a different rendering beside it: the LIBSVM file wins
        for split in ("train", "test"):
            f[f"{split}/data"] = rng.random((12, 256), dtype=np.float32)
            f[f"{split}/target"] = labels
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    reference = torchvision.datasets.USPS(str(folder), train=True)
    ours = load_dataset("usps", "train")
    assert usps_rendering("train") == "libsvm" and "libsvm" in ours.notes[0]
    assert np.array_equal(ours.images.squeeze(1).numpy(), reference.data) and ours.labels.tolist() == reference.targets
    assert not np.array_equal(ours.images.numpy(), read_usps("train", "h5").images.numpy())
    assert usps_rendering("test") == "h5-mapped"  # no LIBSVM test file: the h5, mapped by a fit on the train pairs


@needs_usps_libsvm_test
def test_standard_usps_test_split_and_the_mapped_train_split():
    import torchvision

    from lab.data import load_dataset
    from lab.data.usps import folder, mapping_report, usps_rendering

    test = load_dataset("usps", "test")
    reference = torchvision.datasets.USPS(str(folder()), train=False)
    assert usps_rendering("test") == "libsvm"
    assert np.array_equal(test.images.squeeze(1).numpy(), reference.data) and test.labels.tolist() == reference.targets
    if not (folder() / "usps.bz2").exists():
        assert usps_rendering("train") == "h5-mapped"
    report = mapping_report()  # on held-out test images
    assert report["all"]["stored_mad"] > 15 and report["all"]["mapped_mad"] < 3
    assert report["saturated_at_1"]["mapped_mad"] < report["saturated_at_1"]["stored_mad"] / 5


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


def test_a_stopped_comparison_resumes_with_its_finished_runs(tmp_path, monkeypatch):
    import lab.experiments.dann.run as run_module
    from lab.experiments.dann.results import load_result
    from lab.runs import recorded

    root = _fake_officehome(tmp_path / "OfficeHome")
    config = DANNConfig(task="officehome", officehome_path=str(root), size=32, placements=["none"], epochs=1,
                        steps_per_epoch=2, batch_size=4, feature_points=8)
    with recorded("dann", {}) as record:
        first = run_dann(config, record=record)
        first.save(record)
    trained = []
    real = run_module.train_dann
    monkeypatch.setattr(run_module, "train_dann", lambda *a, **k: trained.append(a[1]) or real(*a, **k))
    more = DANNConfig(**{**config.__dict__, "placements": ["none", "stage3"], "methods": ["cdan"]})
    again = run_dann(more, previous=load_result(record.dir))
    assert trained == ["stage3"] and [r.row for r in again.runs] == ["source only", "CDAN @ stage3"]
    assert again.runs[0].target_acc == first.runs[0].target_acc
    with pytest.raises(LabError, match="other settings \\(epochs\\)"):
        run_dann(DANNConfig(**{**more.__dict__, "epochs": 2}), previous=load_result(record.dir))
