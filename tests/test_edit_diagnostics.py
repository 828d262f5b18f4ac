"""The diagnostics of issue 14 on cases where the answer is known: the pixel diagnostic on a linear "CLIP", the
oracle fine-tune, the adversarial CLIP training step, and the judges' off-target changes."""
from __future__ import annotations

import torch

from conftest import needs_mnist
from test_clip import tiny_clip  # noqa: F401 — shared fixture
from lab.experiments.edit.diagnose import OracleLoss, clip_pixel_edit


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
