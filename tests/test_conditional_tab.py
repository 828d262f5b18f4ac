"""The Class-conditional tab and CLI end to end, on tiny untrained models (fast; the numbers mean nothing)."""
import argparse
import json
import re

import gradio as gr
import pytest
import torch
from conftest import ROOT, needs_mnist
from diffusers import UNet2DModel

from lab.diffusion.schedules import make_ddpm_scheduler
from lab.models.conditional import ConditionalUNet, LabelSpec, NoisyClassifier, save_model
from lab.models.store import save_diffusion

TINY28 = dict(sample_size=28, in_channels=1, out_channels=1, block_out_channels=[8, 16],
              down_block_types=["DownBlock2D", "DownBlock2D"], up_block_types=["UpBlock2D", "UpBlock2D"],
              layers_per_block=1, norm_num_groups=4, attention_head_dim=4)
DIGITS = LabelSpec("class", tuple(str(i) for i in range(10)))
DATA = {"name": "mnist", "split": "train", "size": 28, "channels": 1, "style": "plain", "condition_on": "class",
        "classes": list(DIGITS.names)}

pytestmark = needs_mnist


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """A checkpoint folder with one tiny model per method, plus the shipped judge (classifier-mnist)."""
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    scheduler = make_ddpm_scheduler()
    for name, method, p in (("cfg-tiny", "label-embed", 0.1), ("condnorm-tiny", "condnorm", 0.0),
                            ("auxclf-tiny", "auxclf", None)):
        save_model(root / name, ConditionalUNet(TINY28, method=method, **DIGITS.as_config()), scheduler,
                   {"kind": "conditional", "method": method, "p_uncond": p, "data": DATA,
                    "labels": {"kind": "class", "names": list(DIGITS.names)}})
    save_model(root / "noisy-tiny", NoisyClassifier(TINY28, **DIGITS.as_config()), scheduler,
               {"kind": "noisy-classifier", "data": DATA})
    save_diffusion(root / "ddpm-tiny", UNet2DModel(**TINY28), scheduler, "ddpm", {"data": DATA})
    (root / "classifier-mnist").symlink_to(ROOT / "checkpoints" / "classifier-mnist", target_is_directory=True)
    return root


@pytest.fixture
def checkpoints(tiny_checkpoints, monkeypatch):
    monkeypatch.setenv("LAB_CHECKPOINT_DIR", str(tiny_checkpoints))
    return tiny_checkpoints


GRID = dict(method="cfg", model="cfg-tiny", classifier="noisy-tiny", scale=2.0, sampler="ddim", steps=2, eta=0.0,
            per_class=2, classes="all", judge="auto", fid=True, seed=0)


def test_tab_answers_through_gradio_client(checkpoints, launch_tab):
    from lab.ui import conditional

    with gr.Blocks() as demo:
        conditional.build()
    client = launch_tab(demo)
    image, info, table, plot, files = client.predict(**GRID, api_name="/conditional_grid")
    assert "Conditional accuracy" in info and "n = 20" in info
    rows = table["data"]
    assert len(rows) == 10 and all(0 <= r[table["headers"].index("accuracy")] <= 1 for r in rows)
    assert "FID" in table["headers"] and "n reference" in table["headers"]
    # n = 2 per class: a Wilson interval per accuracy, a bootstrap interval per FID and notes that say so
    assert {"accuracy 95 % (Wilson)", "FID 95 % (bootstrap)"} <= set(table["headers"])
    assert "Per-class FID from n = 2 samples per class is not stable" in info
    assert re.search(r"the label (does not steer|steers) the samples|as often as real images", info)  # a verdict
    names = {p.rsplit("/", 1)[-1] for p in (f if isinstance(f, str) else f["path"] for f in files)}
    assert {"grid.png", "per_class.csv", "tsne.html"} <= names
    assert json.loads(plot["plot"])["data"]  # the t-SNE figure has traces

    figure, sweep_table, text, gallery, sweep_files = client.predict(
        **{**GRID, "fid": False}, scales="0, 2", api_name="/conditional_sweep")
    assert [r[0] for r in sweep_table["data"]] == [0.0, 2.0] and "Best accuracy" in text and len(gallery) == 2

    compare_rows, per_class, grids, verdict, _ = client.predict(
        methods=["label-embed", "condnorm", "auxclf", "classifier-guidance", "cfg"],
        models=["label-embed=cfg-tiny", "condnorm=condnorm-tiny", "auxclf=auxclf-tiny", "classifier-guidance=ddpm-tiny",
                "cfg=cfg-tiny"], method_scales="auxclf=1, classifier-guidance=1, cfg=2", classifier="noisy-tiny",
        sampler="ddim", steps=2, eta=0.0, per_class=1, classes="0, 1", judge="auto", fid=False, seed=0,
        api_name="/conditional_compare")
    assert len(compare_rows["data"]) == 6 and len(grids) == 5       # five methods + the real-data floor
    assert len(per_class["data"]) == 5
    assert "is the most accurate" in verdict and "n = 2 per method" in verdict  # the verdict, with its small n


@pytest.mark.parametrize("change,message", [({"scale": -1.0}, "minimum value 0|between 0"),
                                            ({"classes": "0, 12"}, "Unknown class '12'"),
                                            ({"method": "condnorm"}, "needs a condnorm model"),
                                            ({"model": "nowhere"}, "No model folder")])
def test_tab_bad_inputs_give_clear_messages(checkpoints, launch_tab, change, message):
    from lab.ui import conditional

    with gr.Blocks() as demo:
        conditional.build()
    client = launch_tab(demo)
    with pytest.raises(Exception, match=message):
        client.predict(**{**GRID, **change}, api_name="/conditional_grid")


def test_cli_grid_and_errors(checkpoints, capsys):
    from lab.cli import main

    assert main(["conditional", "--method", "classifier-guidance", "--model", "ddpm-tiny", "--classifier",
                 "noisy-tiny", "--scale", "1", "--steps", "2", "--per-class", "2", "--classes", "3,5",
                 "--no-fid", "--threads", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 4 and out["rows"] == ["3", "5"] and 0 <= out["accuracy"] <= 1
    assert main(["conditional", "--method", "cfg", "--model", "condnorm-tiny", "--steps", "2"]) == 2
    assert "without label dropout" in capsys.readouterr().err
    assert main(["conditional", "--method", "cfg", "--model", "cfg-tiny", "--scale", "-2", "--steps", "2"]) == 2
    assert "0 or more" in capsys.readouterr().err


def test_intervals_of_small_samples():
    from lab.metrics.intervals import bootstrap, interval_text, wilson

    lo, hi = wilson(0.5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)   # the closed form
    assert wilson(1.0, 10)[1] == 1.0 and wilson(1.0, 10)[0] == pytest.approx(0.7225, abs=1e-4)
    assert wilson(0.5, 1000)[1] - wilson(0.5, 1000)[0] < 0.07 < hi - lo          # narrower with n
    torch.manual_seed(0)
    values = torch.randn(400, 1) + 3.0
    spread = bootstrap(lambda x: float(x.mean()), values, reps=200)
    assert spread[0] < float(values.mean()) < spread[1] and spread[1] - spread[0] < 0.4
    few = bootstrap(lambda x: float(x.mean()), values[:10], reps=200)
    assert few[1] - few[0] > spread[1] - spread[0]
    assert interval_text((0.41, 0.923), percent=True) == "41–92 %" and interval_text(None) == ""


def test_presets_fill_the_tab_and_the_cli(checkpoints, launch_tab, capsys):
    """The faces preset sets classifier guidance on the UTKFace pair; what is missing from the checkpoint folder
    is said; on the CLI the preset's values apply and an option given on the line wins."""
    from lab.commands.conditional import _method_defaults
    from lab.experiments.conditional.presets import PRESETS
    from lab.ui import conditional

    with gr.Blocks() as demo:
        conditional.build()
    client = launch_tab(demo)
    out = client.predict(api_name="/conditional_preset_faces")
    faces = PRESETS["faces"].values
    classifier_box, scale_box, *values = out[:-1]
    assert classifier_box["value"] == faces["classifier"] and classifier_box["visible"] is True
    assert scale_box["value"] == faces["scale"] and scale_box["label"].startswith("Classifier scale s")
    assert faces["method"] in values and faces["model"] in values
    assert "is not in the checkpoint folder" in out[-1]      # the tiny folder has no UTKFace models
    assert "Preset" in client.predict(api_name="/conditional_preset_digits")[-1]
    args = argparse.Namespace(preset="faces", scale=7.0)
    base = _method_defaults(args)
    assert base["model"] == "ddpm-utkface64" and base["classifier"] == "noisy-classifier-utkface64"
    assert _method_defaults(argparse.Namespace(preset=None))["model"] == "cfg-mnist"


def test_model_choice_brings_a_fitting_noisy_classifier(checkpoints, tmp_path):
    """Classifier guidance: picking a DDPM of other data swaps in the noisy classifier of that data."""
    from lab.ui import conditional

    other = {**DATA, "name": "fashion"}
    scheduler = make_ddpm_scheduler()
    save_model(checkpoints / "noisy-fashion-tiny", NoisyClassifier(TINY28, **DIGITS.as_config()), scheduler,
               {"kind": "noisy-classifier", "data": other})
    save_diffusion(checkpoints / "ddpm-fashion-tiny", UNet2DModel(**TINY28), scheduler, "ddpm", {"data": other})
    try:
        swapped = conditional._on_model("classifier-guidance", "ddpm-fashion-tiny", "noisy-tiny")
        assert swapped.value == "noisy-fashion-tiny"
        assert conditional._on_model("classifier-guidance", "ddpm-tiny", "noisy-tiny") == gr.skip()  # it fits
        assert conditional._on_model("cfg", "ddpm-fashion-tiny", "noisy-tiny") == gr.skip()  # no classifier used
    finally:
        import shutil

        shutil.rmtree(checkpoints / "noisy-fashion-tiny")
        shutil.rmtree(checkpoints / "ddpm-fashion-tiny")
