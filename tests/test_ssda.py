"""Batch adaptation + CNN evaluation: the seed's CNN, its training, cached translation, the experiment and the tab."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import ROOT, needs_checkpoints, needs_mnist, tiny_editor
from PIL import Image

from lab.data.imageset import ImageSet
from lab.errors import LabError
from lab.experiments.ssda.config import SSDAConfig
from lab.experiments.ssda.data import check_label_spaces
from lab.experiments.ssda.result import load_result
from lab.experiments.ssda.run import run_ssda
from lab.experiments.ssda.translate import translate
from lab.train.cnn import CNNTrainConfig, make_cnn, train_cnn

pytestmark = pytest.mark.usefixtures("one_thread")


def test_cnn_layers_match_the_seed_description():
    net = make_cnn(channels=3, size=64, num_classes=2)
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    pools = [m for m in net.features if isinstance(m, torch.nn.MaxPool2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128] and convs[0].in_channels == 3
    assert len(pools) == 3
    x = torch.zeros(2, 3, 64, 64)
    sizes = []
    for layer in net.features:
        x = layer(x)
        if isinstance(layer, torch.nn.MaxPool2d):
            sizes.append(x.shape[-1])
    assert sizes == [32, 16, 8]                      # each pooling halves the size
    assert net.fc1.in_features == 128 * 8 * 8 and net.fc2.out_features == 1  # binary: one logit (sigmoid + BCE)
    assert make_cnn(1, 28, 10).fc2.out_features == 10
    with pytest.raises(LabError):
        make_cnn(1, 28, 1)


def _separable(n: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class k = a bright square in the k-th quadrant of an otherwise dark, noisy 28-px image."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.randint(0, 60, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    for i, k in enumerate(y.tolist()):
        r, c = divmod(k, 2)
        x[i, 0, r * 14 + 3:r * 14 + 11, c * 14 + 3:c * 14 + 11] = 230
    return x, y


@pytest.mark.parametrize("classes", [2, 4])
def test_cnn_learns_a_trivially_separable_set(classes):
    x, y = _separable(256, classes)
    xt, yt = _separable(200, classes, seed=1)
    _, history = train_cnn(x, y, classes, {"test": (xt, yt)}, CNNTrainConfig(epochs=4, batch_size=32, seed=0))
    assert len(history) == 4 and history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["test_acc"] > 0.95


def test_cnn_training_is_reproducible_by_seed():
    x, y = _separable(64, 2)
    a = train_cnn(x, y, 2, {"t": (x, y)}, CNNTrainConfig(epochs=1, seed=3))[1]
    b = train_cnn(x, y, 2, {"t": (x, y)}, CNNTrainConfig(epochs=1, seed=3))[1]
    assert a[0]["loss"] == b[0]["loss"]


def test_different_label_spaces_are_a_clear_error():
    images = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    source = ImageSet("mnist", images, torch.tensor([0, 1, 0, 1]), [str(i) for i in range(10)])
    target = ImageSet("folder:mine", images, torch.tensor([0, 1, 0, 1]), ["cat", "dog"])
    with pytest.raises(LabError, match="label spaces differ"):
        check_label_spaces(source, target)


@pytest.fixture(scope="module")
def editor_dir(tiny_ddpm, tmp_path_factory):
    """A checkpoint folder holding a tiny base DDPM and a 'DiffusionCLIP' model fine-tuned from it."""
    root = tmp_path_factory.mktemp("checkpoints")
    tiny_editor(root, tiny_ddpm)
    return root


def test_translation_is_cached_and_reused(editor_dir, tmp_path):
    x = torch.randint(0, 255, (10, 1, 28, 28), dtype=torch.uint8)
    first, info1 = translate(str(editor_dir / "tiny-editor"), x, batch_size=4, device="cpu", cache_dir=tmp_path)
    assert first.shape == x.shape and first.dtype == torch.uint8
    assert info1["cached_batches"] == 0 and info1["batches"] == 3
    again, info2 = translate(str(editor_dir / "tiny-editor"), x, batch_size=4, device="cpu", cache_dir=tmp_path)
    assert info2["cached_batches"] == 3 and torch.equal(first, again)
    # a partly new set reuses the batches it shares
    _, info3 = translate(str(editor_dir / "tiny-editor"), torch.cat([x[:8], x[:2]]), batch_size=4, device="cpu",
                         cache_dir=tmp_path)
    assert info3["cached_batches"] == 2


def test_a_model_that_is_not_a_diffusionclip_one_is_refused(tiny_ddpm):
    with pytest.raises(LabError, match="not a DiffusionCLIP"):
        translate(str(tiny_ddpm), torch.zeros(2, 1, 28, 28, dtype=torch.uint8), device="cpu")


@pytest.mark.parametrize("change, message", [
    (dict(task="nope"), "Unknown task"), (dict(n_labelled=1), "n_labelled"), (dict(epochs=0), "epochs"),
    (dict(conditions=[]), "at least one"), (dict(conditions=["magic"]), "Unknown training set"),
    (dict(seeds=[]), "seeds"), (dict(task="folder"), "folder"), (dict(lr=2.0), "learning rate"),
    (dict(eval_on="train"), "validation"), (dict(task="folder", target_path="x", eval_on="validation"), "test")])
def test_bad_configs_are_clear_errors(change, message):
    with pytest.raises(LabError, match=message):
        SSDAConfig(**change).validate()


@needs_mnist
def test_missing_editor_names_where_to_get_one(monkeypatch, tmp_path):
    monkeypatch.setenv("LAB_CHECKPOINT_DIR", str(tmp_path))
    with pytest.raises(LabError, match="No model folder"):
        run_ssda(SSDAConfig(editor="no-such-model", n_labelled=20, n_test=20, seeds=[0], epochs=1))


@needs_mnist
def test_experiment_records_every_condition_and_reopens(editor_dir, monkeypatch, tmp_path):
    from lab.runs import new_run

    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    config = SSDAConfig(task="mnist-sketch", editor=str(editor_dir / "tiny-editor"), n_labelled=300, n_test=200,
                        seeds=[0, 1], epochs=3, device="cpu")
    run = new_run("ssda", {})
    result = run_ssda(config, record=run)
    result.save(run)
    assert set(result.histories) == {f"{c}/{s}" for c in ("original", "adapted", "oracle", "combined") for s in (0, 1)}
    rows = {r["training set"]: r for r in result.rows()}
    # plain-MNIST training does not transfer to sketches; the oracle, trained on sketches, does better there
    assert rows["oracle"]["target_acc_mean"] > rows["original"]["target_acc_mean"] + 0.1
    assert rows["original"]["source_acc_mean"] > 0.3
    assert result.gain() == pytest.approx(100 * (rows["adapted"]["target_acc_mean"] - rows["original"]["target_acc_mean"]))
    assert len(result.runs("combined")[0]) == 3
    for name in ("config.json", "result.json", "curves.csv", "table.csv", "gallery.png", "curves.html"):
        assert (run.dir / name).exists(), name
    assert Image.open(run.dir / "gallery.png").size[0] > 100
    again = load_result(run.dir)
    assert again.rows() == result.rows() and torch.equal(again.adapted, result.adapted)
    assert json.loads((run.dir / "config.json").read_text())["n_labelled"] == 300


@needs_mnist
def test_validation_uses_labelled_target_training_images_never_the_test_set():
    from lab.data import load_dataset
    from lab.experiments.ssda.data import load_task_data

    config = SSDAConfig(n_labelled=20, n_test=50, eval_on="validation").resolved()
    data = load_task_data(config, channels=1)
    train = load_dataset("mnist", "train", limit=50, seed=11, style="sketch")
    test = load_dataset("mnist", "test", style="sketch").images.flatten(1)
    assert torch.equal(data.target_test.images, train.images)
    assert not (data.target_test.images.flatten(1)[:, None] == test[None, :2000]).all(-1).any()


@needs_mnist
def test_folder_target_with_matching_classes_runs_without_oracle(editor_dir, tmp_path):
    from lab.data import load_dataset

    ds = load_dataset("mnist", "test", limit=30, seed=3)
    for i, (img, label) in enumerate(zip(ds.images, ds.labels)):
        (tmp_path / "sketches" / str(int(label))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(255 - img[0].numpy()).save(tmp_path / "sketches" / str(int(label)) / f"{i}.png")
    config = SSDAConfig(task="folder", target_path=str(tmp_path / "sketches"), editor=str(editor_dir / "tiny-editor"),
                        n_labelled=20, n_test=30, seeds=[0], epochs=1, conditions=["original", "adapted"], device="cpu")
    result = run_ssda(config)
    assert result.data["target_test"] == 30 and len(result.rows()) == 2
    bad = SSDAConfig(**{**config.__dict__, "conditions": ["oracle"]})
    with pytest.raises(LabError, match="oracle"):
        run_ssda(bad)
    (tmp_path / "animals" / "cat").mkdir(parents=True)
    (tmp_path / "animals" / "dog").mkdir(parents=True)
    Image.new("L", (28, 28)).save(tmp_path / "animals" / "cat" / "a.png")
    Image.new("L", (28, 28)).save(tmp_path / "animals" / "dog" / "b.png")
    with pytest.raises(LabError, match="label spaces differ"):
        run_ssda(SSDAConfig(**{**config.__dict__, "target_path": str(tmp_path / "animals")}))


@pytest.fixture(scope="module")
def client(request):
    from conftest import serve_tab

    from lab.ui import ssda

    return serve_tab(ssda.build, request)


@needs_mnist
def test_tab_runs_and_reopens_through_gradio_client(client, editor_dir, monkeypatch):
    monkeypatch.setenv("LAB_CHECKPOINT_DIR", str(editor_dir))
    info, table, plot, gallery, folder, files = client.predict(
        "mnist-sketch", "tiny-editor", "", 20, 50, ["original", "adapted"], "0", 1, 32, 0.001, api_name="/ssda_run")
    assert "n′ = **20**" in info and "Gain on the target test set" in info
    assert [r[0] for r in table["data"]] == ["original", "adapted"]
    assert table["headers"][:2] == ["training set", "target test acc %"]  # the column one came for, first
    assert "under-trained" in info  # 1 epoch of 20 images: the headline says the table means little
    assert gallery and files and any(str(f).endswith(".zip") for f in files)
    again = client.predict(folder, api_name="/ssda_reopen")
    assert again[1]["data"] == table["data"]


@needs_mnist
@pytest.mark.parametrize("args, message", [
    (("mnist-sketch", "tiny-editor", "", 1, 50, ["original"], "0", 1, 32, 0.001), "n′|minimum value 2"),
    (("mnist-sketch", "tiny-editor", "", 20, 50, ["original"], "zero", 1, 32, 0.001), "Seeds"),
    (("mnist-sketch", "tiny-editor", "", 20, 50, [], "0", 1, 32, 0.001), "at least one"),
    (("mnist-sketch", "missing-editor", "", 20, 50, ["adapted"], "0", 1, 32, 0.001), "No model folder"),
    (("mnist-sketch", "tiny-editor", "", 20, 50, ["original"], "0", -3, 32, 0.001), "Epochs|minimum value 1"),
    (("folder", "tiny-editor", "/etc", 20, 50, ["original"], "0", 1, 32, 0.001), "outside the allowed folders"),
])
def test_tab_answers_bad_input_with_a_message(client, editor_dir, monkeypatch, args, message):
    from gradio_client.exceptions import AppError

    monkeypatch.setenv("LAB_CHECKPOINT_DIR", str(editor_dir))
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/ssda_run")




@needs_mnist
@needs_checkpoints("ddpm-mnist", "clip-lab")
def test_tab_fine_tunes_an_editor_from_the_task_prompts(client, tmp_path, monkeypatch):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    for name in ("ddpm-mnist", "clip-lab"):
        (checkpoints / name).symlink_to(ROOT / "checkpoints" / name)
    monkeypatch.setenv("LAB_CHECKPOINT_DIR", str(checkpoints))
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    editor, about = client.predict("mnist-sketch", "my-editor", 1, api_name="/ssda_finetune")
    info = json.loads((checkpoints / "my-editor" / "training.json").read_text())
    assert info["diffusionclip"]["target"] == "a sketch of a digit" and info["base_model"] == "ddpm-mnist"
    assert "a sketch of a digit" in about
    with pytest.raises(Exception, match="usable model name"):
        client.predict("mnist-sketch", "../escape", 1, api_name="/ssda_finetune")


def test_editor_selection_keeps_the_best_validation_seed_and_says_so(editor_dir, tmp_path, monkeypatch):
    """``select_editor``: one candidate per seed, scored on validation; the best is kept, every score is in the card."""
    import shutil

    from lab.experiments.ssda import editor as ssda_editor
    from lab.experiments.ssda.result import SSDAResult

    scores = {0: 0.30, 1: 0.08, 2: 0.52}
    seen = []

    def fake_finetune(task, folder, seed=0, **kw):
        shutil.copytree(editor_dir / "tiny-editor", folder)
        return folder

    def fake_run(config, **kw):
        seen.append(config)
        seed = int(str(config.editor).rsplit("seed", 1)[1])
        row = lambda acc: [{"epoch": 1, "loss": 1.0, "source_acc": 0.9, "target_acc": acc}]  # noqa: E731
        return SSDAResult(config, histories={"original/0": row(0.1), "adapted/0": row(scores[seed])})

    monkeypatch.setattr(ssda_editor, "finetune_editor", fake_finetune)
    monkeypatch.setattr(ssda_editor, "run_ssda", fake_run)
    out = ssda_editor.select_editor("mnist-sketch", tmp_path / "editor", [0, 1, 2])
    assert out["kept_seed"] == 2 and all(c.eval_on == "validation" for c in seen)
    card = (tmp_path / "editor" / "README.md").read_text()
    assert "kept: seed 2" in card and "seed 1: 0.080" in card and "ssda-editor --task mnist-sketch" in card
    assert not (tmp_path / ".editor-candidates").exists()


def test_fp16_selection_halves_the_kept_unet_and_it_loads_back_close(editor_dir, tmp_path, monkeypatch):
    """``--fp16-weights``: the kept UNet's file is about half, its record says float16, it loads back as fp32 with
    weights within fp16 rounding of the trained ones, and the card's command carries the flag."""
    import shutil

    from lab.experiments.ssda import editor as ssda_editor
    from lab.experiments.ssda.result import SSDAResult
    from lab.models.store import load_diffusion, read_info

    def fake_finetune(task, folder, seed=0, **kw):
        shutil.copytree(editor_dir / "tiny-editor", folder)
        return folder

    def fake_run(config, **kw):
        row = [{"epoch": 1, "loss": 1.0, "source_acc": 0.9, "target_acc": 0.5}]
        return SSDAResult(config, histories={"original/0": row, "adapted/0": row})

    monkeypatch.setattr(ssda_editor, "finetune_editor", fake_finetune)
    monkeypatch.setattr(ssda_editor, "run_ssda", fake_run)
    ssda_editor.select_editor("mnist-sketch", tmp_path / "half", [0], fp16_weights=True)
    weights = lambda f: next((f / "unet").glob("*.safetensors"))  # noqa: E731
    full, half = weights(editor_dir / "tiny-editor").stat().st_size, weights(tmp_path / "half").stat().st_size
    assert half < 0.6 * full, (half, full)
    assert read_info(tmp_path / "half")["stored_dtype"] == "float16"
    a = load_diffusion(str(editor_dir / "tiny-editor"), "cpu").unet.state_dict()
    b = load_diffusion(str(tmp_path / "half"), "cpu").unet.state_dict()
    assert all(b[k].dtype == torch.float32 for k in b)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 2e-3
    assert "--fp16-weights" in (tmp_path / "half" / "README.md").read_text()


def test_each_task_translator_uses_its_backbones_recipe():
    """The faces translator is fine-tuned with the faces recipe (face-api identity, L1 leash), the digits' with
    the digits recipe; both with the same generation settings."""
    from lab.experiments.edit.recipes import DIGITS, FACES
    from lab.experiments.ssda.editor import EDITOR_RECIPE, GENERATION, editor_recipe

    faces, digits = editor_recipe("faces-sketch"), editor_recipe("mnist-sketch")
    assert {k: faces[k] for k in FACES} == FACES and {k: digits[k] for k in DIGITS} == DIGITS
    assert all(faces[k] == digits[k] == v for k, v in GENERATION.items())
    assert EDITOR_RECIPE == digits and faces["identity"] == "face-api" and faces != digits


@needs_checkpoints("diffusionclip-utkface-sketch", "ddpm-utkface64")
def test_shipped_face_translator_is_the_faces_task_editor_and_changes_faces():
    """The shipped face translator opens (fp16 on disk, fp32 in memory), is what the faces task expects, was
    fine-tuned toward the task's prompts with the faces recipe, and an edit of a face is a visible change that keeps
    the image's size and range."""
    from lab.experiments.ssda.config import TASKS
    from lab.models.store import load_diffusion, read_info

    spec = TASKS["faces-sketch"]
    assert spec.editor == "diffusionclip-utkface-sketch"
    info = read_info(ROOT / "checkpoints" / spec.editor)
    assert info["stored_dtype"] == "float16" and info["diffusionclip"]["target"] == spec.target_prompt
    assert info["diffusionclip"]["identity"] == "face-api" and "ssda-editor --task faces-sketch" in info["command"]
    tuned, base = load_diffusion(spec.editor, "cpu"), load_diffusion(spec.base_model, "cpu")
    assert next(tuned.unet.parameters()).dtype == torch.float32 and tuned.size == 64
    from lab.diffusion.editing import edit_batched

    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64) * 1.6 - 0.8
    t0 = info["diffusionclip"]["t0"]
    edited, _ = edit_batched(base.unet, tuned.unet, base.scheduler, x, t0, 4, 4, 1)
    recon, _ = edit_batched(base.unet, base.unet, base.scheduler, x, t0, 4, 4, 1)
    assert edited.shape == x.shape and edited.min() >= -1 and edited.max() <= 1
    assert float((edited - recon).abs().mean()) > 0.02


def _result(histories: dict, n: int = 1000, epochs: int = 1, batch: int = 64):
    from lab.experiments.ssda.result import SSDAResult

    seeds = sorted({int(k.split("/")[1]) for k in histories})
    conditions = list(dict.fromkeys(k.split("/")[0] for k in histories))
    config = SSDAConfig(conditions=conditions, seeds=seeds, epochs=epochs, batch_size=batch)
    return SSDAResult(config, histories={k: [{"epoch": 1, "loss": 1.0, "source_acc": s, "target_acc": t}]
                                         for k, (s, t) in histories.items()},
                      data={"n_labelled": n, "classes": [str(c) for c in range(10)]})


def test_the_headline_warns_when_cells_sit_at_chance_or_the_source_accuracy_is_low():
    """The issue's case: "+17.00 points" with cells at chance after 16 optimisation steps must say so."""
    weak = _result({"original/0": (0.10, 0.10), "adapted/0": (0.30, 0.27)})
    text = weak.headline()
    assert "**+17.0 points** (10.0 % → 27.0 %" in text and "one seed" in text
    assert "original ends near chance (10%) even on the test set of the domain trained on" in text
    assert "The CNN is under-trained (16 optimisation steps: 1 epoch of n′ = 1000 images in batches of 64" in text
    assert "raise epochs or n′" in text
    strong = _result({"original/0": (0.98, 0.60), "adapted/0": (0.97, 0.80), "original/1": (0.98, 0.62),
                      "adapted/1": (0.97, 0.79), "original/2": (0.99, 0.61), "adapted/2": (0.98, 0.81)}, epochs=10)
    text = strong.headline()
    assert "**+19.0 points**" in text and "over 3 seeds" in text and "translating **helps**" in text
    assert "⚠️" not in text and strong.warnings() == []
    noisy = _result({"original/0": (0.98, 0.60), "adapted/0": (0.97, 0.70), "original/1": (0.98, 0.70),
                     "adapted/1": (0.97, 0.60)}, epochs=10)
    assert "no gain beyond the spread over seeds" in noisy.headline()
    # the defaults (n′ = 1000, 10 epochs): the oracle at chance on the *source* test set is the domain gap, no warning
    gap = _result({"original/0": (0.95, 0.17), "oracle/0": (0.14, 0.95)}, epochs=10)
    assert gap.warnings() == [] and gap.optimizer_steps() == 160
