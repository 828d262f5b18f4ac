"""The diagnostics of issue 14 on cases where the answer is known: the pixel diagnostic on a linear "CLIP", the
oracle fine-tune, the adversarial CLIP training step, and the judges' off-target changes."""
from __future__ import annotations

import pytest
import torch

from conftest import needs_mnist
from lab.experiments.edit.diagnose import OracleLoss, clip_pixel_edit, path_cosines


class LinearClip(torch.nn.Module):
    """E_I(x) = x flattened (no normalisation), E_T("target") − E_T("source") = a fixed image direction d."""

    def __init__(self, direction: torch.Tensor):
        super().__init__()
        self.register_buffer("d", direction.flatten())
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # a parameter, so the CLIP has a device

    def encode_images(self, x):
        return x.flatten(1)

    def encode_text(self, texts):
        return torch.stack([torch.zeros_like(self.d) if t == "source" else self.d for t in texts])


def test_pixel_diagnostic_moves_the_pixels_along_the_text_direction():
    g = torch.Generator().manual_seed(0)
    d = torch.zeros(1, 8, 8)
    d[:, 2:6, 2:6] = 1.0  # "brighten the centre"
    x0 = torch.rand(6, 1, 8, 8, generator=g) * 0.5 - 0.5
    clip = LinearClip(d)
    edited, history = clip_pixel_edit(clip, x0, "source", "target", views=0, lambda_l1=0.05, steps=200, lr=0.02)
    delta = (edited - x0).flatten(1)
    cos = torch.nn.functional.cosine_similarity(delta, d.flatten().expand_as(delta), dim=1)
    assert cos.min() > 0.9, cos
    assert history[-1]["cos"] > history[0]["cos"] and history[-1]["cos"] > 0.9
    assert edited.min() >= -1 and edited.max() <= 1
    outside = (edited - x0)[:, :, 0, :].abs().max()
    assert outside < 0.1  # the L1 leash keeps pixels off the direction where they were


def test_pixel_diagnostic_views_keep_the_direction():
    d = torch.zeros(1, 16, 16)
    d[:, 4:12, 4:12] = 1.0
    x0 = torch.full((4, 1, 16, 16), -0.5)
    edited, history = clip_pixel_edit(LinearClip(d), x0, "source", "target", views=4, lambda_l1=0.0, steps=120,
                                      lr=0.02)
    # the cosine does not grow with the size of the change, only with its direction: the centre brightens,
    # the corners (outside the direction even after the views' shifts) stay
    centre, corner = (edited - x0)[:, :, 6:10, 6:10].mean(), (edited - x0)[:, :, :2, :2].abs().mean()
    assert centre > 0.05 and centre > 3 * corner and history[-1]["cos"] > 0.5, (centre, corner, history[-1])


def test_path_cosines_of_a_linear_clip_are_the_cosine_of_the_move_at_every_alpha():
    """With E_I linear, ΔI = α J (target − x): its direction, so the cosine, is the same for every α > 0, and equals
    cos(target − x, d) computed by hand; a CLIP that is not linear changes with α."""
    g = torch.Generator().manual_seed(1)
    d = torch.randn(1, 6, 6, generator=g)
    x = torch.rand(3, 1, 6, 6, generator=g) * 2 - 1
    target = torch.rand(3, 1, 6, 6, generator=g) * 2 - 1
    clip = LinearClip(d)
    cos = path_cosines(clip, x, target, d.flatten(), alphas=(0.01, 0.5, 1.0))
    by_hand = torch.nn.functional.cosine_similarity((target - x).flatten(1), d.flatten().expand(3, -1), dim=1).mean()
    for value in cos.values():
        assert value == pytest.approx(float(by_hand), abs=1e-5)

    class Squashed(LinearClip):
        def encode_images(self, x):
            return torch.tanh(3 * x.flatten(1))

    bent = path_cosines(Squashed(d), x, target, d.flatten(), alphas=(0.01, 1.0))
    assert abs(bent[0.01] - bent[1.0]) > 1e-3


def test_oracle_loss_is_zero_at_the_target_and_positive_elsewhere():
    render = lambda x: -x  # noqa: E731 — the "style" of an image is its negative
    loss = OracleLoss(render)
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    assert loss(x, -x)[0].item() == 0.0 and loss(x, x)[0].item() > 0.1


@needs_mnist
def test_oracle_fine_tune_lowers_its_loss(tiny_ddpm):
    from lab.data import load_dataset
    from lab.experiments.edit.diagnose import oracle_finetune
    from lab.models.store import load_diffusion
    from lab.train.diffusionclip import FinetuneSettings

    model = load_diffusion(tiny_ddpm, "cpu")
    x = load_dataset("mnist", "train", limit=8).to_float()
    settings = FinetuneSettings(t0=300, n_train_step=2, iterations=12, lr=2e-3, batch_size=8)
    _, history = oracle_finetune(model, x, "sketch", settings, n_inv_step=4)
    first, last = history[0]["oracle_l2"], history[-1]["oracle_l2"]
    assert last < 0.8 * first, (first, last)


def _tiny_clip_batch():
    import open_clip

    from lab.clip.model import ARCH

    torch.manual_seed(0)
    model, _, _ = open_clip.create_model_and_transforms(ARCH)
    tok = open_clip.get_tokenizer(ARCH)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(32, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    x[:16, :, 8:24, 8:24] = 255  # two visually different groups with two captions
    y = torch.tensor([0] * 16 + [1] * 16)
    return model, tok(["a bright square", "noise only"]), [[0], [1]], x, y


def test_adversarial_training_raises_the_loss_on_its_own_perturbations_less():
    """Trained the same number of steps from the same start, the adversarially trained CLIP's loss grows less
    under PGD perturbations than the plainly trained one's."""
    import copy

    from lab.train.clip import Adversarial, CaptionContrastiveLoss

    base, tokens, table, x, y = _tiny_clip_batch()
    attack = Adversarial(eps=0.1, steps=3)
    gaps = {}
    for name, adversarial in (("plain", None), ("adversarial", attack)):
        model = copy.deepcopy(base).train()
        loss_fn = CaptionContrastiveLoss(tokens, table, adversarial=adversarial)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
        for step in range(40):
            g = torch.Generator().manual_seed(step)
            loss = loss_fn(model, x, y, g)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        g = torch.Generator().manual_seed(999)
        images = x.float().div(127.5).sub(1)
        text = tokens[torch.tensor([t[0] for t in table])[y]]
        img_f, txt_f, scale = model(images, text)[:3]
        clean = loss_fn.loss(img_f, txt_f, scale)
        adv = attack.perturb(model, images, txt_f.detach(), scale.detach(), loss_fn.loss, g)
        attacked = loss_fn.loss(torch.nn.functional.normalize(model.encode_image(adv), dim=-1), txt_f, scale)
        gaps[name] = float((attacked - clean).detach())
    assert gaps["adversarial"] < gaps["plain"], gaps


def test_l2_pgd_stays_in_its_ball_and_raises_the_loss():
    """The L2 attack: every image's perturbation has norm ≤ ε (reached: PGD ends on the sphere for a smooth
    loss), and the contrastive loss on the perturbed batch is above the clean one; the L∞ attack stays in its box."""
    from lab.train.clip import Adversarial, CaptionContrastiveLoss

    model, tokens, table, x, y = _tiny_clip_batch()
    model.eval()
    loss_fn = CaptionContrastiveLoss(tokens, table)
    images = x.float().div(127.5).sub(1) * 0.5          # away from the clamp at ±1
    text = tokens[torch.tensor([t[0] for t in table])[y]]
    img_f, txt_f, scale = model(images, text)[:3]
    clean = loss_fn.loss(img_f, txt_f, scale).item()
    for norm, eps in (("l2", 2.0), ("linf", 0.05)):
        attack = Adversarial(eps=eps, steps=4, norm=norm)
        adv = attack.perturb(model, images, txt_f.detach(), scale.detach(), loss_fn.loss,
                             torch.Generator().manual_seed(0))
        delta = (adv - images).flatten(1)
        size = delta.norm(dim=1) if norm == "l2" else delta.abs().amax(dim=1)
        assert float(size.max()) <= eps * (1 + 1e-4), (norm, size.max())
        assert float(size.min()) > 0.9 * eps, (norm, size.min())
        attacked = loss_fn.loss(torch.nn.functional.normalize(model.encode_image(adv), dim=-1), txt_f, scale).item()
        assert attacked > clean, (norm, attacked, clean)
    with pytest.raises(ValueError):
        Adversarial(norm="l1")


class _ByPixel(torch.nn.Module):
    """A 'judge' that reads its answer off pixel (0, 0) of channel 0: > 0 → class ``hi``, else class ``lo``."""

    def __init__(self, classes: int, hi: int, lo: int):
        super().__init__()
        self.classes, self.hi, self.lo = classes, hi, lo
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros(len(x), self.classes) + self.anchor
        pick = torch.where(x[:, 0, 0, 0] > 0, self.hi, self.lo)
        out[torch.arange(len(x)), pick] = 5.0
        return out


def test_landed_counts_only_edits_both_in_style_and_keeping_their_label():
    """style judge: pixel (0, 0) > 0 → sketch; label judge: pixel (0, 1) > 0 → class 1. Of four images with true
    labels [1, 0, 0, 0]: image 0 is sketch + label kept, 1 is sketch but read as 1, 2 kept but plain, 3 sketch + kept."""
    from lab.data.registry import STYLES
    from lab.metrics.judges import Judges

    style = _ByPixel(len(STYLES), STYLES.index("sketch"), STYLES.index("plain"))
    label = _ByPixel(2, 1, 0)
    label.forward = lambda x, f=label.forward: f(x[:, :, :, 1:])  # reads pixel (0, 1)
    x = -torch.ones(4, 1, 4, 4)
    x[[0, 1, 3], 0, 0, 0] = 1.0          # sketch for 0, 1, 3
    x[[0, 1], 0, 0, 1] = 1.0             # label 1 for 0 and 1
    labels = torch.tensor([1, 0, 0, 0])  # image 1's true label is 0: relabelled
    judges = Judges(style, label, 1.0, 1.0, 1.0, 1.0, {"tint": 0.0}, "sketch")
    assert judges.style_fraction(x) == 0.75
    assert judges.label_kept(x, labels) == 0.75
    assert judges.landed(x, labels) == 0.5


def test_off_target_changes_and_the_judge_corpus():
    from lab.data.registry import STYLES
    from lab.metrics.judges import OFF_TARGET, off_target, render_styles

    g = torch.Generator().manual_seed(0)
    faces = (torch.rand(4, 3, 16, 16, generator=g) * 200 + 20).to(torch.uint8)
    for change in OFF_TARGET:
        out = off_target(faces, change)
        assert out.shape == faces.shape and out.dtype == torch.uint8 and not torch.equal(out, faces), change
    x, labels = render_styles(faces)
    assert len(x) == len(labels) == 4 * (len(STYLES) + len(OFF_TARGET))
    negatives = labels[4 * len(STYLES):]
    assert set(negatives.tolist()) == {STYLES.index("plain"), STYLES.index("blur")}
    washed = off_target(faces, "washed out").float()
    assert washed.mean() > faces.float().mean() and washed.std() < faces.float().std()
    # lines over colour: darker than the washed-out photo where the sketch has outlines, and still coloured
    # (a pencil sketch is grey); grey digits do not get it (on them it would be a sketch)
    lined = off_target(faces, "lines over colour").float()
    assert lined.std(1).mean() > 1.0
    digits = faces[:, :1]
    xd, _ = render_styles(digits)
    assert len(xd) == 4 * (len(STYLES) + len(OFF_TARGET) - 1)


@needs_mnist
def test_tradeoff_sweep_points_are_single_edits_and_the_figure_is_written(tiny_ddpm, tiny_clip, tmp_path):
    from dataclasses import asdict, replace

    from lab.experiments.edit.config import EditConfig, TradeoffConfig
    from lab.experiments.edit.run import run_edit
    from lab.experiments.edit.tradeoff import run_tradeoff
    from lab.metrics.judges import train_judges
    from lab.runs import recorded

    judges = train_judges("mnist", "sketch", limit=40, steps=5, cache=False)
    config = TradeoffConfig(model=str(tiny_ddpm), clip=str(tiny_clip), n_train=2, t0=300, n_inv_step=3,
                            n_train_step=1, n_test_step=3, iterations=1, batch_size=2, clip_views=0, edit_n=6,
                            identity="none", sweep_param="lambda_l1", sweep_values=[0.0, 1.0])
    result = run_tradeoff(config, judges=judges)
    assert [r["value"] for r in result.rows] == [0.0, 1.0]
    for row in result.rows:
        single = replace(EditConfig(**{k: v for k, v in asdict(config).items()
                                       if k not in ("sweep_param", "sweep_values")}), lambda_l1=row["value"])
        out = run_edit(single)
        assert row["style_fraction"] == round(judges.style_fraction(out.edited), 4)
        assert row["label_kept"] == round(judges.label_kept(out.edited, out.labels), 4)
        assert row["command"] == single.to_command()
    with recorded("edit-tradeoff", config.__dict__, root=tmp_path) as run:
        result.save(run)
    assert (run.dir / "tradeoff.csv").exists() and (run.dir / "tradeoff.html").exists()
    fig = result.figure()
    assert len(fig.data[0].x) == 2 and "λ_L1 = 0" in fig.data[0].text[0]
    assert "Best λ_L1 here" in result.verdict() and "Fewer than 30 images" in result.verdict()
