"""DiffusionCLIP: the directional loss by hand, DDIM inversion round trips, one fine-tuning step, the latent
cache, clear errors, the saved model, and the tab through gradio_client (tiny untrained models)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import needs_checkpoints, needs_face_api, needs_mnist, needs_utkface
from PIL import Image

from lab.clip import load_clip
from lab.data.images import check_image
from lab.diffusion.cache import invert_cached
from lab.diffusion.samplers import ddim_invert, ddim_sample, ddim_timesteps
from lab.errors import LabError
from lab.experiments.edit.config import EditConfig
from lab.experiments.edit.run import run_edit
from lab.experiments.edit.saved import edit_with_saved, save_tuned
from lab.models.store import load_diffusion
from lab.train.diffusionclip import (
    DiffusionClipLoss,
    FinetuneSettings,
    directional_cosine,
    finetune,
    generate,
    structure_map,
)

pytestmark = pytest.mark.usefixtures("one_thread")


class StubClip(torch.nn.Module):
    """E_I(x) = normalise(W · flatten(x)), E_T fixed vectors: the loss can be computed by hand."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.W = torch.randn(5, 4, generator=g)
        self.texts = {"src": torch.tensor([1.0, 0, 0, 0, 0]), "tgt": torch.tensor([0.6, 0.8, 0, 0, 0])}

    def encode_images(self, x):
        return F.normalize(x.flatten(1) @ self.W.T, dim=-1)

    def encode_text(self, texts):
        return torch.stack([self.texts[t] for t in texts])


def test_directional_loss_matches_a_hand_computation():
    clip = StubClip()
    x0 = torch.tensor([[1.0, 2.0, 0.5, -1.0], [0.0, 1.0, 1.0, 1.0]]).view(2, 1, 2, 2)
    x1 = torch.tensor([[0.5, 1.0, 1.5, 0.0], [1.0, -1.0, 0.0, 2.0]]).view(2, 1, 2, 2)
    loss = DiffusionClipLoss(clip, "src", "tgt", lambda_clip=2.0, lambda_l1=0.5)
    total, parts = loss(x0, x1)
    W = clip.W.numpy()
    dt = np.array([0.6, 0.8, 0, 0, 0]) - np.array([1.0, 0, 0, 0, 0])
    cos = []
    for a, b in zip(x0.view(2, -1).numpy(), x1.view(2, -1).numpy()):
        ea, eb = W @ a, W @ b
        di = eb / np.linalg.norm(eb) - ea / np.linalg.norm(ea)
        cos.append(di @ dt / (np.linalg.norm(di) * np.linalg.norm(dt)))
    l1 = np.abs(x1.numpy() - x0.numpy()).mean()
    expected = 2.0 * (1 - np.mean(cos)) + 0.5 * l1
    assert total.item() == pytest.approx(expected, rel=1e-5)
    assert parts["cos"] == pytest.approx(np.mean(cos), rel=1e-5)
    # moving the image exactly along the text direction in embedding space gives cos = 1
    assert directional_cosine(clip, x0, x0, torch.tensor(dt, dtype=torch.float32)).abs().max() < 1e-6


def test_structure_loss_ignores_polarity_and_brightness_but_not_shape():
    x = -torch.ones(2, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0                      # a bright bar on a dark background
    assert torch.allclose(structure_map(x), structure_map(-x), atol=1e-5)        # the same bar, inverted
    assert torch.allclose(structure_map(x), structure_map(x + 0.5), atol=1e-5)   # brighter everywhere
    moved = torch.roll(x, shifts=6, dims=3)
    class CornerClip(StubClip):  # reads the first four pixels only
        def encode_images(self, x):
            return super().encode_images(x.flatten(1)[:, :4])

    loss = DiffusionClipLoss(CornerClip(), "src", "tgt", lambda_clip=1.0, lambda_struct=3.0)
    _, same = loss(x, -x)
    _, shifted = loss(x, moved)
    assert same["struct"] < 1e-5 < 0.01 < shifted["struct"]
    total, parts = loss(x, moved)
    assert total.item() == pytest.approx(parts["clip"] + 3.0 * parts["struct"], rel=1e-5)


def test_same_source_and_target_is_refused():
    with pytest.raises(LabError, match="same CLIP embedding"):
        DiffusionClipLoss(StubClip(), "src", "src")


class LinearEps(torch.nn.Module):
    """ε(x, t) = c·x: a smooth stand-in for a trained model, so DDIM inversion is nearly exact."""

    def forward(self, x, t):
        return 0.05 * x


def test_generation_equals_the_lab_sampler_and_inversion_round_trips(tiny_ddpm):
    model = load_diffusion(tiny_ddpm)
    x = torch.rand(3, 1, 28, 28) * 1.6 - 0.8
    z = ddim_invert(model.unet, x, model.scheduler, 20, t0=400)
    ours = generate(model.unet, model.scheduler, z, 20, 400)
    theirs = ddim_sample(model.unet, z, model.scheduler, 20, t0=400, snapshots=2).samples
    assert torch.allclose(ours.clamp(-1, 1), theirs, atol=1e-5)  # the sampler returns clamped samples
    # round trip with a smooth ε: error far below the image variance, and shrinking with more steps
    eps = LinearEps()
    err = {}
    for n in (10, 50):
        back = generate(eps, model.scheduler, ddim_invert(eps, x, model.scheduler, n, t0=600), n, 600)
        err[n] = ((back - x) ** 2).mean().item()
    assert err[50] < 1e-3 * x.var().item() and err[50] < err[10]


shipped_ddpm = needs_checkpoints("ddpm-mnist")


@shipped_ddpm
@needs_mnist
def test_shipped_ddpm_inverts_mnist_digits_closely():
    from lab.data import load_dataset

    model = load_diffusion("ddpm-mnist")
    x = load_dataset("mnist", "test", limit=8).to_float()
    z = ddim_invert(model.unet, x, model.scheduler, 40, t0=400)
    back = generate(model.unet, model.scheduler, z, 40, 400)
    assert ((back - x) ** 2).mean().item() < 0.02  # images span [-1, 1]: variance ≈ 0.6


def test_one_finetuning_step_raises_the_direction_cosine(tiny_ddpm, tiny_clip):
    model = load_diffusion(tiny_ddpm)
    clip = load_clip(str(tiny_clip))
    torch.manual_seed(1)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    z = ddim_invert(model.unet, x, model.scheduler, 10, t0=300)
    loss = DiffusionClipLoss(clip, "a digit", "a sketch of a digit", lambda_clip=1.0)
    for variant in ("full", "eff"):
        before = directional_cosine(clip, x, generate(model.unet, model.scheduler, z, 3, 300),
                                    loss.text_direction).mean().item()
        tuned, history = finetune(model.unet, model.scheduler, x, z, loss,
                                  FinetuneSettings(t0=300, n_train_step=3, iterations=1, lr=2e-3, batch_size=4,
                                                   variant=variant))
        after = directional_cosine(clip, x, generate(tuned, model.scheduler, z, 3, 300),
                                   loss.text_direction).mean().item()
        assert after > before + 0.01, variant
        # eff: one optimiser step per generative step
        assert len(history) == (1 if variant == "full" else len(ddim_timesteps(model.scheduler, 3, 300)))
    # the original UNet is untouched
    assert all(not p.requires_grad or p.grad is None for p in model.unet.parameters())


def test_inverted_latents_are_cached_per_model_data_t0_and_steps(tiny_ddpm, tmp_path):
    model = load_diffusion(tiny_ddpm)
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    first, hit1 = invert_cached(model.unet, model.scheduler, x, 300, 10, cache_dir=tmp_path)
    second, hit2 = invert_cached(model.unet, model.scheduler, x, 300, 10, cache_dir=tmp_path)
    assert (hit1, hit2) == (False, True) and torch.equal(first, second)
    assert not invert_cached(model.unet, model.scheduler, x, 200, 10, cache_dir=tmp_path)[1]   # other t0
    assert not invert_cached(model.unet, model.scheduler, x, 300, 12, cache_dir=tmp_path)[1]   # other steps
    assert not invert_cached(model.unet, model.scheduler, -x, 300, 10, cache_dir=tmp_path)[1]  # other data
    assert len(list((tmp_path / "latents").glob("*.safetensors"))) == 4


def _config(tiny_ddpm, tiny_clip, **kw) -> EditConfig:
    base = dict(model=str(tiny_ddpm), clip=str(tiny_clip), n_train=4, t0=300, n_inv_step=8, n_train_step=2,
                n_test_step=8, iterations=1, batch_size=4, edit_n=3, identity="none")
    return EditConfig(**{**base, **kw})


@pytest.mark.parametrize("change, message", [
    (dict(target="  "), "target text is empty"),
    (dict(source="a digit " * 30), "characters long"),
    (dict(target="a digit"), "same"),
    (dict(t0=0), "t0 must be"),
    (dict(variant="fast"), "Unknown variant"),
    (dict(lambda_clip=0.0), "λ_clip must be positive"),
    (dict(save_as="../escape"), "not a usable model name"),
])
def test_bad_configs_are_clear_errors(tiny_ddpm, tiny_clip, change, message):
    with pytest.raises(LabError, match=message):
        _config(tiny_ddpm, tiny_clip, **change).validate()


def test_out_of_vocabulary_prompt_is_refused_by_the_shipped_style_clip(tiny_ddpm, tiny_clip):
    with pytest.raises(LabError, match="never saw: watercolor"):
        run_edit(_config(tiny_ddpm, tiny_clip, target="a watercolor digit"))


def test_uploaded_images_of_wrong_size_or_mode_are_refused():
    grey28 = Image.new("L", (28, 28), 0)
    assert check_image(grey28, 28, 1).shape == (1, 28, 28)
    with pytest.raises(LabError, match="64×64 px, but the model takes 28×28"):
        check_image(Image.new("L", (64, 64)), 28, 1)
    with pytest.raises(LabError, match="colour \\(RGB\\), but the model is grey"):
        check_image(Image.new("RGB", (28, 28)), 28, 1)
    with pytest.raises(LabError, match="colour \\(RGB\\), but the model is grey"):  # CMYK is converted to RGB
        check_image(Image.new("CMYK", (28, 28)), 28, 1)
    assert check_image(Image.new("CMYK", (28, 28)), 28, 3).shape == (3, 28, 28)
    assert check_image(Image.new("I;16", (28, 28), 65535), 28, 1).max() == 1.0  # 16-bit grey, scaled to 8 bits
    fitted = check_image(Image.new("RGB", (90, 60), (255, 0, 0)), 28, 1, fit=True)
    assert fitted.shape == (1, 28, 28) and -1 <= fitted.min() and fitted.max() <= 1


@needs_mnist
def test_run_saves_a_model_that_reopens_and_the_second_run_hits_the_cache(tiny_ddpm, tiny_clip, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LAB_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    first = run_edit(_config(tiny_ddpm, tiny_clip, save_as="edited"))
    second = run_edit(_config(tiny_ddpm, tiny_clip))
    assert first.metrics["cache_hit"] is False and second.metrics["cache_hit"] is True
    assert first.edited.shape == (3, 1, 28, 28) and first.grid.width > 3 * 28
    reopened = load_diffusion("edited")
    for a, b in zip(reopened.unet.parameters(), first.tuned.unet.parameters()):
        assert torch.allclose(a, b)
    assert reopened.info["diffusionclip"]["target"] == "a sketch of a digit"
    again = edit_with_saved("edited", first.originals)
    assert torch.allclose(again, first.edited, atol=1e-4)
    with pytest.raises(LabError, match="another model"):
        save_tuned(first, tmp_path / "ckpt" / "other", reopened) if _plant(tmp_path / "ckpt" / "other") else None


def _plant(folder: Path) -> bool:
    folder.mkdir(parents=True)
    (folder / "training.json").write_text('{"kind": "ddpm"}')
    return True


# --- the tab through gradio_client --------------------------------------------------------------

RUN = dict(files=None, fit=False, clip_pretrained="", source="a digit", target="a sketch of a digit", data="mnist",
           n_train=2, t0=300, n_inv_step=4, n_train_step=2, n_test_step=4, lambda_clip=1.0, lambda_l1=0.1,
           lambda_id=0.0, iterations=1, lr=1e-3, batch_size=2, variant="full", edit_n=2, save_as="", seed=0)


@pytest.fixture(scope="module")
def client(tiny_clip, request):
    from conftest import serve_tab

    from lab.ui import edit

    return serve_tab(edit.build, request)


@needs_mnist
def test_tab_edits_and_answers_bad_inputs_with_messages(client, tiny_ddpm, tiny_clip, tmp_path):
    from gradio_client import handle_file

    grid, plot, info, export = client.predict(model=str(tiny_ddpm), clip=str(tiny_clip), **RUN, api_name="/edit_run")
    assert Image.open(grid).width > 3 * 28 and "CLIP direction" in info and "Inversion MSE" in info
    names = {Path(f).name for f in export}
    assert {"edit_grid.png", "losses.csv", "losses.html", "versions.json"} <= names and export[-1].endswith(".zip")
    for change, message in [(dict(target=""), "target text is empty"),
                            (dict(target="a watercolor digit"), "never saw: watercolor"),
                            (dict(source="a digit " * 30), "characters long")]:
        with pytest.raises(Exception, match=message):
            client.predict(model=str(tiny_ddpm), clip=str(tiny_clip), **{**RUN, **change}, api_name="/edit_run")
    big = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(big)
    with pytest.raises(Exception, match="64×64 px, but the model takes 28×28"):
        client.predict(model=str(tiny_ddpm), clip=str(tiny_clip), **{**RUN, "files": [handle_file(str(big))]},
                       api_name="/edit_run")
    note = client.predict(clip=str(tiny_clip), clip_pretrained="", source="a digit", target="a watercolor digit",
                          api_name="/edit_check")
    assert "watercolor" in note
    vocab = client.predict(clip=str(tiny_clip), clip_pretrained="", api_name="/edit_vocabulary")
    assert "sketch" in vocab and "knows only" in vocab


def test_tab_edits_an_uploaded_digit(client, tiny_ddpm, tiny_clip, tmp_path):
    from gradio_client import handle_file

    path = tmp_path / "digit.png"
    Image.new("L", (28, 28), 0).save(path)
    grid, _, info, _ = client.predict(model=str(tiny_ddpm), clip=str(tiny_clip),
                                      **{**RUN, "files": [handle_file(str(path))]}, api_name="/edit_run")
    assert "1 images edited" in info.replace("**", "") or "1 fine-tuning images" in info


@needs_mnist
def test_cli_edit_and_train_clip_kinds(tiny_ddpm, tiny_clip, tmp_path, monkeypatch, capsys):
    import json

    from lab.cli import main
    from lab.commands.train import KINDS

    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    assert "clip" in KINDS  # `python -m lab train clip`, registered by lab/commands/train.py
    code = main(["edit", "--model", str(tiny_ddpm), "--clip", str(tiny_clip), "--n-train", "2", "--t0", "300",
                 "--n-inv-step", "4", "--n-train-step", "2", "--n-test-step", "4", "--iterations", "1",
                 "--batch-size", "2", "--edit-n", "2", "--identity", "none", "--threads", "1"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert Path(out["grid"]).exists() and "clip_direction_after" in out
    assert main(["edit", "--model", str(tiny_ddpm), "--clip", str(tiny_clip), "--target", "a watercolor digit",
                 "--threads", "1"]) == 2
    assert "never saw: watercolor" in capsys.readouterr().err


@needs_mnist
def test_tab_and_cli_edit_with_a_saved_model(client, tiny_ddpm, tiny_clip, tmp_path, monkeypatch, capsys):
    import json

    from lab.cli import main

    monkeypatch.setenv("LAB_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    tuned = run_edit(_config(tiny_ddpm, tiny_clip, save_as="tuned"))
    grid, info, export = client.predict("tuned", None, False, "mnist", "test", 3, api_name="/edit_saved")
    assert Image.open(grid).width > 2 * 28 and "Edited 3 image(s)" in info and "tuned" in info
    assert any(f.endswith("edit_grid.png") for f in export) and export[-1].endswith(".zip")
    for name, message in [("", "Choose a saved"), (str(tiny_ddpm), "not a DiffusionCLIP"), ("nope", "No model folder")]:
        with pytest.raises(Exception, match=message):
            client.predict(name, None, False, "mnist", "test", 3, api_name="/edit_saved")
    assert main(["edit", "--with-saved", "tuned", "--edit-n", "2", "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["edited"] == 2
    assert tuned.saved_to.endswith("tuned")


@pytest.fixture(scope="module")
def tiny_face_ddpm(tmp_path_factory):
    """An untrained 64-px RGB DDPM whose record says it was trained on UTKFace."""
    from lab.diffusion.schedules import make_ddpm_scheduler
    from lab.models.store import save_diffusion
    from lab.models.unet import build_unet

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny") / "tiny-face-ddpm"
    unet = build_unet("rgb64", block_out_channels=(8, 8, 16, 16), attention_head_dim=8)
    save_diffusion(folder, unet, make_ddpm_scheduler(), "ddpm",
                   {"data": {"name": "utkface", "split": "train", "count": 0, "size": 64, "channels": 3}})
    return folder


@needs_utkface
@needs_face_api
def test_tab_suits_a_face_backbone_and_keeps_identity_with_face_api(client, tiny_face_ddpm, tiny_clip):
    from lab.experiments.edit.recipes import FACES, RECIPE_FIELDS

    data, source, target, *recipe = client.predict(model=str(tiny_face_ddpm), api_name="/edit_backbone")
    assert (data, source, target) == ("utkface", "a photo of a face", "a pencil sketch of a face")
    assert dict(zip(RECIPE_FIELDS, recipe)) == FACES  # the face recipe comes with the face backbone
    grid, _, info, _ = client.predict(model=str(tiny_face_ddpm), clip=str(tiny_clip),
                                      **{**RUN, "data": data, "source": source, "target": target, "lambda_id": 0.5},
                                      api_name="/edit_run")
    assert Image.open(grid).mode == "RGB" and "same person (face-api descriptor distance < 0.6)" in info
    with pytest.raises(Exception, match="reads grey digits; this model is RGB"):
        run_edit(EditConfig(model=str(tiny_face_ddpm), clip=str(tiny_clip), data="utkface", identity="digit-classifier",
                            lambda_id=0.5, n_train=1, edit_n=1, n_inv_step=2, n_train_step=1, n_test_step=2,
                            iterations=1))


@needs_utkface
def test_cli_takes_data_and_prompts_from_a_face_backbone(tiny_face_ddpm, tiny_clip, tmp_path, monkeypatch, capsys):
    import json

    from lab.cli import main
    from lab.commands import load_all

    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    load_all()
    code = main(["edit", "--model", str(tiny_face_ddpm), "--clip", str(tiny_clip), "--n-train", "1", "--t0", "300",
                 "--n-inv-step", "2", "--n-train-step", "1", "--n-test-step", "2", "--iterations", "1",
                 "--batch-size", "1", "--edit-n", "1", "--identity", "none", "--threads", "1"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    saved = json.loads((Path(out["run"]) / "result.json").read_text())["config"]
    assert (saved["data"], saved["source"], saved["target"]) == ("utkface", "a photo of a face",
                                                                 "a pencil sketch of a face")
