"""The Domain-discovery experiment: inputs, metrics, every action on a tiny model, the tab through
gradio_client, and (once it is shipped) the inversion round trip of the MNIST DDPM."""
import json

import numpy as np
import pytest
import torch
from conftest import ROOT, needs_checkpoints, needs_fashion, needs_mnist
from PIL import Image

from lab.data.uploads import images_from_files
from lab.errors import LabError
from lab.experiments.discovery.baseline import run_finetune
from lab.experiments.discovery.config import BaselineSettings, DiscoveryConfig, DiscoverySettings, parse_t0s
from lab.experiments.discovery.data import TargetData, load_model
from lab.experiments.discovery.discover import run_discover
from lab.experiments.discovery.evaluate import evaluate
from lab.experiments.discovery.reconstruct import run_reconstruct
from lab.experiments.discovery.stats import run_stats
from lab.metrics.psnr import psnr_mse

SHIPPED_DDPM = ROOT / "checkpoints" / "ddpm-mnist"
needs_shipped_ddpm = needs_checkpoints("ddpm-mnist")


@pytest.fixture
def image_files(tmp_path):
    """Five odd-sized RGB PNGs (a user's folder) and one text file."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "unseen"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    return folder


def test_uploads_are_checked_and_resized_with_a_notice(image_files):
    images, notes = images_from_files(sorted(image_files.glob("*.png")), 28, 1)
    assert images.shape == (5, 1, 28, 28) and images.dtype == torch.uint8
    assert notes and "30×40" in notes[0] and "28×28" in notes[0]
    with pytest.raises(LabError, match="No images were uploaded"):
        images_from_files([], 28, 1)
    with pytest.raises(LabError, match="1 of 2 uploaded files cannot be used \\(notes.txt\\).*not a readable image"):
        images_from_files([image_files / "im0.png", image_files.parent / "notes.txt"], 28, 1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(target="svhn"), "Unknown target domain"),
    (dict(target="folder"), "needs the path"),
    (dict(shots=1), "between 2 and"),
    (dict(t0=1000), "t0 must be between 1 and 999"),
    (dict(t0=10, steps=20), "between 1 and t0 = 10"),
    (dict(target_style="wavy"), "Unknown style"),
])
def test_bad_settings_are_clear_errors(kwargs, message):
    with pytest.raises(LabError, match=message):
        DiscoveryConfig(**kwargs).validate()


def test_bad_t0_lists_and_discovery_settings():
    assert parse_t0s("900, 300;600") == [300, 600, 900]
    for text, message in (("a, b", "whole numbers"), ("", "1 to 8"), ("0, 500", "between 1 and 999")):
        with pytest.raises(LabError, match=message):
            parse_t0s(text)
    with pytest.raises(LabError, match="Unknown proposal"):
        DiscoverySettings(method="lerp").validate()
    with pytest.raises(LabError, match="budget"):
        DiscoverySettings(count=100, max_candidates=10).validate()


def test_psnr_matches_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio

    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1
    y = (x + 0.1 * torch.randn(3, 1, 8, 8, generator=g)).clamp(-1, 1)
    psnr, mse = psnr_mse(y, x)
    for i in range(3):
        ref = peak_signal_noise_ratio(((x[i] + 1) / 2).numpy(), ((y[i] + 1) / 2).numpy(), data_range=1.0)
        assert psnr[i].item() == pytest.approx(ref, abs=1e-3)
    assert mse[0].item() == pytest.approx((((x[0] - y[0]) / 2) ** 2).mean().item())


@needs_mnist
def test_metrics_tell_copies_real_images_and_noise_apart():
    from lab.data import load_dataset

    ds = load_dataset("mnist", "test", limit=650, seed=0).to_float()
    target = TargetData("mnist", ds[:50], ds[50:450])
    copies = evaluate(ds[:50].repeat(2, 1, 1, 1), target, None)
    real = evaluate(ds[450:650], target, "classifier-mnist")
    noise = evaluate(torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1, target,
                     "classifier-mnist", with_floor=False)
    assert copies["copies"]["nn_copy_fraction"] == 1.0 and copies["fid"] is None
    assert real["copies"]["nn_copy_fraction"] < 0.1
    assert real["fid"]["n"] == real["floor"]["n"] == 200
    assert real["fid"]["fid"] < 3 * real["floor"]["fid"] + 1
    assert noise["fid"]["fid"] > 10 * real["fid"]["fid"]
    assert noise["diversity"]["diversity_pixels"] > real["diversity"]["diversity_pixels"]
    assert real["diversity"]["diversity_features"] > 0


@needs_mnist
def test_every_action_runs_on_a_tiny_model(tiny_ddpm, image_files):
    config = DiscoveryConfig(model=str(tiny_ddpm), target="mnist", target_style="negative", shots=8, t0=40, steps=2,
                             classifier="none", batch_size=8)
    rec = run_reconstruct(config, [20, 40], n_images=3)
    assert [(r["domain"], r["t0"]) for r in rec.rows] == [("unseen", 20), ("in-domain", 20), ("unseen", 40),
                                                          ("in-domain", 40)]
    assert all(r["n"] == 3 and np.isfinite(r["psnr_mean"]) for r in rec.rows) and len(rec.grids) == 2
    stats = run_stats(config)
    assert [r["set"].split(" ")[0] for r in stats.rows] == ["unseen", "in-domain", "Gaussian"]
    assert stats.rows[2]["norm_mean"] == pytest.approx(28.0, rel=0.05)  # √784
    settings = DiscoverySettings(method="mix", count=5, norm_tol=50.0, origin_tol=45.0, pair_tol=45.0,
                                 metrics=False)
    found = run_discover(config, settings)
    assert found.samples.shape == (5, 1, 28, 28) and found.accepted == 5 and len(found.provenance) == 5
    strict = DiscoverySettings(count=5, norm_tol=0.0, origin_tol=0.0, pair_tol=0.0, max_candidates=300,
                               metrics=False)
    with pytest.raises(LabError, match="None of 300 slerp proposals passed"):
        run_discover(config, strict)
    tuned = run_finetune(config, BaselineSettings(train_steps=3, train_batch=4, count=4, metrics=False))
    assert tuned.samples.shape == (4, 1, 28, 28) and tuned.losses
    # a user's folder of odd-sized colour images, resized with a notice
    folder = DiscoveryConfig(model=str(tiny_ddpm), target="folder", target_path=str(image_files), shots=3, t0=40,
                             steps=2, classifier="none")
    rec = run_reconstruct(folder, [40], n_images=3)
    assert any("resized" in n for n in rec.notes) and rec.rows[0]["n"] == 3


def test_a_score_model_is_refused(tiny_score):
    with pytest.raises(LabError, match="needs a DDPM"):
        load_model(DiscoveryConfig(model=str(tiny_score)))


@needs_mnist
def test_tab_answers_through_gradio_client(tiny_ddpm, image_files, launch_tab, monkeypatch):
    import gradio as gr
    from gradio_client import handle_file

    import lab.viz.export
    from lab.ui import discovery

    # static figure export starts a browser (seconds per file): real for the statistics call only
    real_export, static = lab.viz.export.static_export_available, {"on": False}
    monkeypatch.setattr(lab.viz.export, "static_export_available", lambda: static["on"] and real_export())

    with gr.Blocks() as demo:
        discovery.build()
    client = launch_tab(demo)
    uploads = [handle_file(str(p)) for p in sorted(image_files.glob("*.png"))]
    common = dict(model=str(tiny_ddpm), target="upload", target_style="plain", target_path="", upload=uploads,
                  shots=4, in_domain="auto", t0=30, steps=2, classifier="none", seed=0)
    gallery, table, plot, text, files = client.predict(**common, t0s="30", n_images=2,
                                                       api_name="/discovery_reconstruct")
    assert len(gallery) == 1 and [r[0].split(" ")[0] for r in table["data"]] == ["unseen", "in-domain"]
    assert "resized" in text and any(str(f).endswith("reconstruction.csv") for f in files)
    assert "**Verdict:** at t0 = 30 the frozen model reconstructs the unseen domain" in text
    static["on"] = True
    norm_plot, angle_plot, table, text, files = client.predict(**common, api_name="/discovery_stats")
    static["on"] = False
    assert len(table["data"]) == 3
    if real_export():
        png = next(f for f in files if str(f).endswith("latent_norms.png"))
        assert Image.open(png).size[0] > 300
    grid, pairs, table, plot, text, files = client.predict(
        **common, method="slerp", count=3, use_norm=True, norm_tol=50.0, use_origin=False, origin_tol=2.0,
        use_pair=False, pair_tol=2.0, t_margin=0.2, mix_count=3, max_candidates=1000, metrics=True,
        api_name="/discovery_discover")
    assert Image.open(grid).size[0] > 0 and "3** of" in text
    written = json.loads(next(open(f).read() for f in files if str(f).endswith("discovery.json")))
    assert written["accepted"] == 3 and written["metrics"]["copies"]["n"] == 3
    grid, pairs, table, plot, text, files = client.predict(**common, train_steps=2, lr=1e-4, train_batch=4, count=2,
                                                           metrics=False, save=True,
                                                           api_name="/discovery_finetune")
    assert "Fine-tuned a copy for 2 steps" in text and "model" in text
    with pytest.raises(Exception, match="No images were uploaded"):
        client.predict(**{**common, "upload": []}, api_name="/discovery_stats")
    with pytest.raises(Exception, match="inversion steps do not fit below t0 = 10|between 1 and t0"):
        client.predict(**{**common, "t0": 1}, t0s="10", n_images=2, api_name="/discovery_reconstruct")


@needs_shipped_ddpm
@needs_mnist
@needs_fashion
def test_shipped_ddpm_round_trip_is_close_in_domain():
    """The MNIST DDPM inverts and regenerates MNIST test digits closely (η = 0, 50 steps)."""
    config = DiscoveryConfig(model="ddpm-mnist", target="fashion", shots=16, t0=900, steps=50, classifier="none")
    result = run_reconstruct(config, [900], n_images=16)
    in_domain = result.psnr("in-domain")
    assert in_domain > 20.0, f"in-domain reconstruction PSNR {in_domain:.2f} dB"
    assert result.psnr("unseen") > 12.0


def test_verdicts_say_in_words_whether_the_domain_was_found_and_how_it_compares(tmp_path):
    """The issue's case — FID 1,367 against a floor of 115 — reads "not of the unseen domain", and a finished
    fine-tuning baseline with the same settings and n is named as better or worse, by how much."""
    import json as json_

    from lab.experiments.discovery.verdict import reconstruction_verdict, sampling_verdict, separability_verdict
    from lab.runs import recorded

    config = {"model": "ddpm-mnist", "target": "fashion", "target_style": "plain", "target_path": None, "shots": 100,
              "seed": 0}
    metrics = {"fid": {"fid": 1367.0, "n": 64}, "floor": {"fid": 115.0}}
    text = sampling_verdict("discovery", metrics, config, root=tmp_path)
    assert "11.9× the real-vs-real floor" in text and "**not of the unseen domain**" in text
    assert "discovery did not find the domain" in text and "run '4 · Tuning baseline'" in text and "n = 64" in text
    with recorded("discovery-finetune", {**config, "train_steps": 300}, root=tmp_path) as run:
        run.save_json("finetune.json", {"metrics": {"fid": {"fid": 400.0, "n": 64}}})
    with recorded("discovery-finetune", {**config, "shots": 10}, root=tmp_path) as run:   # other settings: not it
        run.save_json("finetune.json", {"metrics": {"fid": {"fid": 1.0, "n": 64}}})
    text = sampling_verdict("discovery", metrics, config, root=tmp_path)
    assert "**worse than the fine-tuning baseline** (FID 400.0, same n" in text and "by 967.0 (3.42×)" in text
    baseline = sampling_verdict("discovery-finetune", {"fid": {"fid": 400.0, "n": 64}, "floor": {"fid": 115.0}},
                                config, root=tmp_path)
    assert "The fine-tuning baseline gives FID 400.0" in baseline and "3.5× the real-vs-real floor" in baseline
    assert sampling_verdict("discovery", {"fid": None}, config, root=tmp_path) == ""
    assert json_.loads((run.dir / "run.json").read_text())["status"] == "finished"

    rows = [{"domain": "unseen", "t0": 900, "psnr_mean": 14.6, "n": 10},
            {"domain": "in-domain", "t0": 900, "psnr_mean": 35.3, "n": 10}]
    assert "less faithfully than its own data (14.6 dB against 35.3 dB, 20.7 dB apart; n = 10" in \
        reconstruction_verdict(rows)
    noise_like = {"unseen vs Gaussian": {"accuracy": 0.52, "std": 0.03, "n_per_set": 100}}
    told_apart = {"unseen vs Gaussian": {"accuracy": 0.97, "std": 0.02, "n_per_set": 100}}
    assert "look like Gaussian noise" in separability_verdict(noise_like)
    assert "are told apart from Gaussian noise" in separability_verdict(told_apart)
