"""The lab's CLIP: one loading path (open_clip), the registered architecture, prompts, vocabulary, zero-shot."""
from __future__ import annotations

import os

import open_clip
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, needs_checkpoints, needs_mnist

from lab.clip import ARCH, load_clip, resolve_clip, vocabulary
from lab.clip.vocab import captions, check_prompt
from lab.errors import LabError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_architecture_is_registered_with_open_clip():
    assert ARCH in open_clip.list_models()


def test_folder_and_name_plus_weights_load_the_same_model(tiny_clip):
    a = load_clip(str(tiny_clip))
    b = load_clip(ARCH, str(tiny_clip / "open_clip_model.safetensors"))
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    assert torch.allclose(a.encode_images(x), b.encode_images(x), atol=1e-6)
    t = ["a sketch of a digit", "a digit"]
    assert torch.allclose(a.encode_text(t), b.encode_text(t), atol=1e-6)
    assert a.vocabulary and b.vocabulary is None  # only folders carry a vocabulary
    feats = a.encode_images(torch.rand(3, 3, 64, 64) * 2 - 1)  # any size and channel count
    assert feats.shape == (3, 64) and torch.allclose(feats.norm(dim=1), torch.ones(3), atol=1e-5)


def test_image_path_is_differentiable(tiny_clip):
    clip = load_clip(str(tiny_clip))
    x = (torch.rand(2, 1, 28, 28) * 2 - 1).requires_grad_(True)
    clip.encode_images(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in clip.model.parameters())  # CLIP stays frozen


def test_clear_errors_for_unknown_or_offline_clips():
    with pytest.raises(LabError, match="Unknown CLIP"):
        resolve_clip("no-such-clip")
    with pytest.raises(LabError, match="offline"):
        resolve_clip("ViT-B-32", "openai")  # the tests run with HF_HUB_OFFLINE=1
    with pytest.raises(LabError, match="offline"):
        resolve_clip("ViT-B-32/openai")
    with pytest.raises(LabError, match="no pretrained tag"):
        resolve_clip("ViT-B-32", "no-such-tag")
    with pytest.raises(LabError, match="No CLIP"):
        resolve_clip("  ")


def test_prompt_checks():
    vocab = vocabulary()
    assert check_prompt("  a pencil sketch of the digit 7 ", vocab) == "a pencil sketch of the digit 7"
    with pytest.raises(LabError, match="empty"):
        check_prompt("   ", vocab)
    with pytest.raises(LabError, match="characters long"):
        check_prompt("a digit " * 40, vocab)
    with pytest.raises(LabError, match="never saw: watercolor"):
        check_prompt("a watercolor digit", vocab)
    assert check_prompt("a watercolor digit", None)  # a general CLIP reads anything


def test_captions_name_content_and_style():
    caps = captions("digit", 7, "sketch")
    assert "a pencil sketch of a digit seven" in caps and "a sketch of a digit" in caps
    assert "a photo of a woman's face" in captions("face", 1, "plain")
    assert all(w in vocabulary() for w in ("sketch", "digit", "man", "woman", "blurry", "negative"))


def test_contrastive_loss_decreases_on_a_tiny_corpus():
    from lab.train.clip import CaptionContrastiveLoss

    torch.manual_seed(0)
    model, _, _ = open_clip.create_model_and_transforms(ARCH)
    tok = open_clip.get_tokenizer(ARCH)
    texts = ["a man", "pencil sketch", "blurry seven", "negative coat"]
    loss_fn = CaptionContrastiveLoss(tok(texts), [[0], [1], [2], [3]])
    # four random images, one caption each (no duplicate captions: the loss can reach 0; chance is ln 4)
    x = (torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    y = torch.arange(4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for step in range(60):
        loss = loss_fn(model, x, y, torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 1.0 and sum(losses[-5:]) / 5 < 0.6 * losses[0]


shipped = needs_checkpoints("clip-lab")


@shipped
@needs_mnist
def test_shipped_clip_reads_style_and_digits_far_above_chance():
    from lab.clip.zeroshot import evaluate_zero_shot
    from lab.train.clip import render

    clip = load_clip(str(ROOT / "checkpoints" / "clip-lab"))
    x, y, s = render("mnist", "test", 40, seed=3)
    result = evaluate_zero_shot(clip, {"mnist": (x.float().div(127.5).sub(1.0), y, s)})
    assert result["style_accuracy"] > 0.5      # chance 1/7
    assert result["content_accuracy"] > 0.3    # chance 1/10
    assert os.path.getsize(ROOT / "checkpoints" / "clip-lab" / "open_clip_model.safetensors") < 10e6


@shipped
@needs_mnist
def test_shipped_clip_ignores_stripe_textures():
    """Trained with texture distractors, the CLIP embeds a digit under a grating almost as the bare digit (the
    first shipped CLIP: cosine 0.77, so DiffusionCLIP fine-tuning learned to paint stripes), while another digit
    stays far away."""
    from lab.train.clip import render, texture_distractors

    clip = load_clip(str(ROOT / "checkpoints" / "clip-lab"))
    x, _, s = render("mnist", "test", 100, seed=4)
    plain = x[s == 0].float().div(127.5).sub(1.0)
    striped = texture_distractors(plain, torch.Generator().manual_seed(0), p=1.0)
    with torch.no_grad():
        bare, textured, other = (clip.encode_images(v) for v in (plain, striped, plain.roll(1, 0)))
    assert F.cosine_similarity(bare, textured).mean() > 0.9
    assert F.cosine_similarity(bare, other).mean() < 0.8


@needs_mnist
def test_train_clip_warm_starts_from_a_saved_clip(tiny_clip, tmp_path):
    """--clip-init-from: a run of one step at a negligible learning rate ends where the saved CLIP it started
    from is (not at a fresh random initialisation), and its record names where it started."""
    import json

    from lab.train.clip import train_clip
    from lab.train.config import TrainConfig

    out = tmp_path / "warm"
    config = TrainConfig(steps=1, batch_size=8, lr=1e-12, warmup=0, ema_decay=None, seed=3, device="cpu")
    train_clip(out, config, limits={"mnist": 10}, eval_limit=2, init_from=str(tiny_clip))
    start = load_clip(str(tiny_clip)).model.state_dict()
    warm = load_clip(str(out)).model.state_dict()
    assert max(float((start[k].float() - warm[k].float()).abs().max()) for k in start) < 1e-5
    assert json.loads((out / "training.json").read_text())["init_from"] == str(tiny_clip)
