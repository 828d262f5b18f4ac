"""Class-conditional models, guidance and losses: closed forms, shapes, signs, round trips (no shipped checkpoints)."""
import json

import pytest
import torch
from diffusers import UNet2DModel

from lab.diffusion.guidance import (
    alpha_bar,
    classifier_free,
    classifier_guided,
    conditional,
    log_prob_grad,
    self_guided,
)
from lab.diffusion.samplers import ddim_sample
from lab.diffusion.schedules import make_ddpm_scheduler
from lab.errors import LabError
from lab.models.conditional import (
    ConditionalUNet,
    LabelSpec,
    NoisyClassifier,
    load_conditional,
    load_noisy_classifier,
    save_model,
)
from lab.models.warm_start import warm_start

TINY = dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=[8, 16],
            down_block_types=["DownBlock2D", "DownBlock2D"], up_block_types=["UpBlock2D", "UpBlock2D"],
            layers_per_block=1, norm_num_groups=4, attention_head_dim=4)
DIGITS = LabelSpec("class", tuple(str(i) for i in range(10)))
ATTRS = LabelSpec("attributes", ("Bald", "Male", "Smiling", "Young"))


def tiny(method="label-embed", spec=DIGITS, norm="batch", seed=0, randomize=True):
    torch.manual_seed(seed)
    model = ConditionalUNet(TINY, method=method, norm=norm, **spec.as_config()).eval()
    if randomize:  # the conditioning layers start at zero; give them values so labels matter
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "class_embedding" in name or "delta" in name or "label_mlp.2" in name:
                    p.normal_(0, 0.05)
    return model


# --- labels ------------------------------------------------------------------------------------

def test_label_spec_rows_null_and_parsing():
    assert DIGITS.row_labels().tolist() == list(range(10))
    assert DIGITS.null(3).tolist() == [10, 10, 10]
    assert DIGITS.parse_rows("all") == list(range(10))
    assert DIGITS.parse_rows("3, 0,3") == [3, 0]
    rows = ATTRS.row_labels([1, 3])
    assert rows.tolist() == [[0, 1, 0, 0], [0, 0, 0, 1]]  # one attribute active, the others unspecified
    assert ATTRS.parse_rows("smiling") == [2]
    assert ATTRS.null(2).shape == (2, 4) and ATTRS.null(2).abs().sum() == 0


@pytest.mark.parametrize("text,message", [("11", "Unknown class '11'"), ("seven", "Unknown class 'seven'"),
                                          ("-1", "Unknown class '-1'")])
def test_unknown_class_is_a_clear_error(text, message):
    with pytest.raises(LabError, match=message):
        DIGITS.parse_rows(text)


def test_label_checks():
    with pytest.raises(LabError, match="between 0 and 9"):
        DIGITS.check(torch.tensor([3, 12]))
    with pytest.raises(LabError, match="shape"):
        ATTRS.check(torch.ones(2, 3))
    with pytest.raises(LabError, match=r"\+1 \(present\)"):
        ATTRS.check(torch.tensor([[0.5, 0, 0, 1]]))
    assert ATTRS.check(torch.tensor([[1, -1, 0, 1]])).dtype == torch.float32


def test_label_dropout_rates():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (20_000,))
    dropped = DIGITS.drop(y, 0.1, g)
    null = dropped == 10
    assert abs(null.float().mean().item() - 0.1) < 0.01
    assert torch.equal(dropped[~null], y[~null])
    v = torch.randint(0, 2, (20_000, 4)).float() * 2 - 1
    out = ATTRS.drop(v, 0.1, g, p_attribute=0.3)
    whole = (out.abs().sum(1) == 0).float().mean().item()
    assert whole == pytest.approx(0.1 + 0.9 * 0.3 ** 4, abs=0.01)
    kept = out != 0
    assert torch.equal(out[kept], v[kept])
    assert (out == 0).float().mean().item() == pytest.approx(1 - 0.9 * 0.7, abs=0.01)


def test_attribute_log_prob_loss_and_correct_closed_form():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0]])
    v = torch.tensor([[1.0, -1.0, 0.0, -1.0]])
    sig = torch.sigmoid
    expected = torch.log(sig(torch.tensor(2.0))) + torch.log(1 - sig(torch.tensor(-1.0))) + torch.log(
        1 - sig(torch.tensor(3.0)))
    assert ATTRS.log_prob(logits, v).item() == pytest.approx(expected.item(), rel=1e-5)
    assert ATTRS.loss(logits, v).item() == pytest.approx(-expected.item() / 3, rel=1e-5)
    assert ATTRS.correct(logits, v).tolist() == [False]           # attribute 4 is wrong
    assert ATTRS.correct(logits, torch.tensor([[1.0, -1.0, 0, 0]])).tolist() == [True]
    cls_logits = torch.randn(5, 10)
    y = torch.tensor([0, 3, 9, 2, 2])
    assert torch.allclose(DIGITS.log_prob(cls_logits, y), cls_logits.log_softmax(1)[torch.arange(5), y])


# --- models ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method,norm,spec", [("label-embed", "batch", DIGITS), ("label-embed", "batch", ATTRS),
                                              ("condnorm", "batch", DIGITS), ("condnorm", "group", ATTRS),
                                              ("auxclf", "batch", DIGITS), ("auxclf", "batch", ATTRS)])
def test_shapes_and_label_handling(method, norm, spec):
    model = tiny(method, spec, norm)
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([10, 500, 999])
    labels = spec.row_labels([0, 1, 2]) if spec.kind == "class" else torch.tensor(
        [[1.0, -1, 0, 0], [0, 0, 1, -1], [-1, 1, 1, 1]])
    with torch.no_grad():
        out = model(x, t, labels).sample
        assert out.shape == x.shape
        assert model(x, t, None).sample.shape == x.shape                      # the null label
        if method == "auxclf":
            eps, logits = model(x, t, return_logits=True)
            assert logits.shape == (3, spec.num) and torch.equal(eps, out)     # the denoiser ignores labels
            assert torch.equal(model(x, t, labels).sample, model(x, t, None).sample)
        else:
            other = labels.flip(0)
            assert not torch.allclose(model(x, t, other).sample, out)          # labels change the output


def test_condnorm_replaces_only_resnet_norms():
    for norm in ("batch", "group"):
        model = tiny("condnorm", norm=norm)
        names = [n for n, m in model.named_modules() if type(m).__name__ == "ConditionalNorm"]
        assert names and all(n.endswith(("norm1", "norm2")) and ".resnets." in n for n in names)
        assert isinstance(model.unet.conv_norm_out, torch.nn.GroupNorm)
        assert (model.unet.down_blocks[0].resnets[0].norm1.bn is not None) == (norm == "batch")


@pytest.mark.parametrize("method,norm", [("label-embed", "batch"), ("condnorm", "group"), ("auxclf", "batch")])
def test_warm_start_begins_as_the_unconditional_model(method, norm):
    torch.manual_seed(1)
    base = UNet2DModel(**TINY).eval()
    model = ConditionalUNet(TINY, method=method, norm=norm, **DIGITS.as_config()).eval()
    summary = warm_start(model, base)
    assert summary["copied_tensors"] == len(base.state_dict())
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([3, 300, 600, 900])
    with torch.no_grad():
        want = base(x, t).sample
        for labels in (torch.tensor([0, 1, 2, 3]), torch.tensor([9, 9, 9, 9])):
            assert torch.allclose(model(x, t, labels).sample, want, atol=1e-5)


def test_noisy_classifier_warm_starts_from_the_unet_encoder():
    base = UNet2DModel(**TINY)
    net = NoisyClassifier(TINY, **DIGITS.as_config())
    summary = warm_start(net, base)
    assert torch.equal(net.down_blocks[1].resnets[0].conv1.weight, base.down_blocks[1].resnets[0].conv1.weight)
    assert summary["new_tensors"] == len([k for k in net.state_dict() if k.startswith("head.")])
    assert net(torch.randn(2, 1, 8, 8), 5).shape == (2, 10)


def test_warm_start_rejects_another_layout():
    base = UNet2DModel(**{**TINY, "block_out_channels": [8, 32]})
    with pytest.raises(LabError, match="different UNet layout"):
        warm_start(tiny(), base)


def test_fp16_weights_halve_the_file_and_load_back_as_fp32(tmp_path):
    from safetensors import safe_open

    torch.manual_seed(0)
    net = NoisyClassifier(TINY, **DIGITS.as_config())
    save_model(tmp_path / "full", net, make_ddpm_scheduler(), {"kind": "noisy-classifier"})
    save_model(tmp_path / "half", net, make_ddpm_scheduler(), {"kind": "noisy-classifier"}, fp16=True)
    sizes = [(tmp_path / f / "diffusion_pytorch_model.safetensors").stat().st_size for f in ("full", "half")]
    assert sizes[1] < 0.55 * sizes[0]
    with safe_open(str(tmp_path / "half" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    assert next(net.parameters()).dtype == torch.float32            # the trained model itself is untouched
    back = load_noisy_classifier(tmp_path / "half")
    assert next(back.net.parameters()).dtype == torch.float32
    assert json.loads((tmp_path / "half" / "training.json").read_text())["stored_dtype"] == "float16"
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0, 500, 999])
    with torch.no_grad():
        assert torch.allclose(back.net(x, t), net(x, t), atol=2e-2)


def test_save_load_round_trip_and_bad_folders(tmp_path):
    model = tiny("condnorm", ATTRS, "batch")
    model.unet.down_blocks[0].resnets[0].norm1.bn.running_mean.fill_(0.25)
    save_model(tmp_path / "cn", model, make_ddpm_scheduler(), {"kind": "conditional", "method": "condnorm",
                                                               "p_uncond": 0.0, "labels": {"kind": "attributes"}})
    back = load_conditional(tmp_path / "cn")
    assert back.spec == ATTRS and back.net.config.norm == "batch"
    x, t, v = torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor([[1.0, 0, 0, 0], [0, -1, 0, 1]])
    with torch.no_grad():
        assert torch.equal(back.net(x, t, v).sample, model(x, t, v).sample)
    assert "## Conditioning" in (tmp_path / "cn" / "README.md").read_text()
    net = NoisyClassifier(TINY, **DIGITS.as_config())
    save_model(tmp_path / "nc", net, make_ddpm_scheduler(), {"kind": "noisy-classifier"})
    assert load_noisy_classifier(tmp_path / "nc").spec == DIGITS
    with pytest.raises(LabError, match="is not a ConditionalUNet folder"):
        load_conditional(tmp_path / "nc")                       # a noisy classifier is not a denoiser
    with pytest.raises(LabError, match="is not a NoisyClassifier folder"):
        load_noisy_classifier(tmp_path / "cn")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabError, match="no model"):
        load_conditional(tmp_path / "empty")
    weights = tmp_path / "cn" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])            # truncated
    with pytest.raises(LabError, match="diffusion_pytorch_model.safetensors is damaged.*re-download"):
        load_conditional(tmp_path / "cn")
    (tmp_path / "nc" / "config.json").write_text("{not json")
    with pytest.raises(LabError, match="not readable JSON"):
        load_noisy_classifier(tmp_path / "nc")
    with pytest.raises(LabError, match="No model folder"):
        load_conditional(tmp_path / "nowhere")


# --- guidance: formulas --------------------------------------------------------------------------

def test_classifier_free_guidance_formula_and_w0_is_unconditional():
    model = tiny()
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([100, 400, 700, 999])
    y = torch.tensor([1, 5, 7, 2])
    with torch.no_grad():
        cond, uncond = model(x, t, y).sample, model(x, t, DIGITS.null(4)).sample
        assert torch.equal(classifier_free(model, y, 0.0, DIGITS)(x, t), uncond)
        assert torch.equal(classifier_free(model, y, 1.0, DIGITS)(x, t), cond)
        assert torch.allclose(classifier_free(model, y, 3.0, DIGITS)(x, t), uncond + 3 * (cond - uncond), atol=1e-5)


def test_w0_sampling_reproduces_the_unconditional_path():
    model, scheduler = tiny(), make_ddpm_scheduler()
    noise = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    runs = [ddim_sample(classifier_free(model, torch.full((10,), c), 0.0, DIGITS), noise, scheduler, 10).samples
            for c in (0, 7)]
    plain = ddim_sample(conditional(model, DIGITS.null(10)), noise, scheduler, 10).samples
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], plain)
    guided = ddim_sample(classifier_free(model, torch.full((10,), 7), 2.0, DIGITS), noise, scheduler, 10).samples
    assert (guided - plain).abs().max() > 1e-3


def test_classifier_guidance_formula_and_gradient_sign():
    torch.manual_seed(0)
    scheduler = make_ddpm_scheduler()
    clf = NoisyClassifier(TINY, **DIGITS.as_config()).eval()
    unet = UNet2DModel(**TINY).eval()
    x, t, y = torch.randn(6, 1, 8, 8), torch.tensor([0, 50, 200, 500, 800, 999]), torch.tensor([0, 1, 2, 3, 4, 5])
    s = 4.0
    with torch.no_grad():
        eps = unet(x, t).sample
        guided = classifier_guided(unet, clf, y, s, scheduler, DIGITS)(x, t)
    grad, logp = log_prob_grad(clf, x, t, y, DIGITS)
    ab = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    assert torch.allclose(guided, eps - s * (1 - ab).sqrt() * grad, atol=1e-6)
    # the guided x0-estimate moves along +∇ log p(y | x): a small step that way raises log p(y | x)
    shift = (eps - guided) * (1 - ab).sqrt() / ab.sqrt()
    assert (shift.flatten(1) * grad.flatten(1)).sum(1).min() > 0
    with torch.no_grad():
        higher = DIGITS.log_prob(clf(x + 1e-2 * grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1), t), y)
    assert (higher > logp).all()
    with torch.no_grad():
        assert torch.equal(classifier_guided(unet, clf, y, 0.0, scheduler, DIGITS)(x, t), eps)


def test_self_guidance_uses_the_auxiliary_head():
    torch.manual_seed(0)
    scheduler = make_ddpm_scheduler()
    model = tiny("auxclf")
    x, t, y = torch.randn(3, 1, 8, 8), torch.tensor([10, 400, 900]), torch.tensor([4, 4, 1])

    def head(xx, tt):
        return model(xx, tt, return_logits=True)[1]

    grad, _ = log_prob_grad(head, x, t, y, DIGITS)
    with torch.no_grad():
        eps = model(x, t).sample
        guided = self_guided(model, y, 2.0, scheduler, DIGITS)(x, t)
    assert torch.allclose(guided, eps - 2.0 * (1 - alpha_bar(scheduler, t, x)).sqrt() * grad, atol=1e-6)
    with torch.no_grad():
        assert torch.equal(self_guided(model, y, 0.0, scheduler, DIGITS)(x, t), eps)


@pytest.mark.parametrize("scale", [-1.0, float("nan"), "abc"])
def test_bad_guidance_scales_are_clear_errors(scale):
    with pytest.raises(LabError, match="0 or more|must be a number"):
        classifier_free(tiny(), torch.zeros(2, dtype=torch.long), scale, DIGITS)


def test_label_count_must_match_batch():
    with pytest.raises(LabError, match="one label per image"):
        conditional(tiny(), torch.tensor([1, 2]))(torch.randn(3, 1, 8, 8), 5)


# --- guidance on an exactly known model: a two-component Gaussian mixture ------------------------

MUS, SD = torch.tensor([-0.5, 0.5]), 0.1
MIX = LabelSpec("class", ("low", "high"))


def mixture(scheduler):
    """Exact ε(x_t, t), ε(x_t, t, y) and log p(y | x_t) for data ½N(−0.5, 0.1²) + ½N(0.5, 0.1²) per pixel
    (all pixels of an image belong to the same component)."""
    def parts(x, t):
        ab = scheduler.alphas_cumprod[t.long()].view(-1, 1, 1, 1).to(x)
        var = ab * SD ** 2 + 1 - ab
        means = [ab.sqrt() * m for m in MUS]
        logl = torch.stack([(-(x - m) ** 2 / (2 * var)).flatten(1).sum(1) for m in means], 1)
        eps_y = [(1 - ab).sqrt() * (x - m) / var for m in means]
        return logl, eps_y

    def eps_uncond(x, t):
        logl, eps_y = parts(x, t)
        w = logl.softmax(1).view(-1, 2, 1, 1, 1)
        return (w * torch.stack(eps_y, 1)).sum(1)

    def eps_cond(x, t, y):  # y = 2 is the null label
        _, eps_y = parts(x, t)
        y = y.view(-1, 1, 1, 1)
        return torch.where(y == 0, eps_y[0], torch.where(y == 1, eps_y[1], eps_uncond(x, t)))

    def logits(x, t):
        return parts(x, t)[0]
    return eps_uncond, eps_cond, logits


def test_exact_classifier_guidance_samples_the_requested_component():
    scheduler = make_ddpm_scheduler()
    eps_u, _, logits = mixture(scheduler)
    noise = torch.randn(400, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    y = torch.arange(400) % 2
    for s, low in ((0.0, 0.3), (1.0, 0.97)):
        out = ddim_sample(classifier_guided(eps_u, logits, y, s, scheduler, MIX), noise, scheduler, 50).samples
        hit = ((out.flatten(1).mean(1) > 0).long() == y).float().mean().item()
        assert hit >= low and (s > 0 or hit < 0.7)  # s = 0: the label does nothing (≈ ½)
    assert out[y == 1].mean().item() == pytest.approx(0.5, abs=0.05)


def test_exact_cfg_w1_is_conditional_and_w0_unconditional():
    scheduler = make_ddpm_scheduler()
    _, eps_c, _ = mixture(scheduler)
    noise = torch.randn(400, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    y = torch.arange(400) % 2
    hits = {}
    for w in (0.0, 1.0, 2.0):  # (much larger w overshoots with 50 DDIM steps on components this sharp)
        out = ddim_sample(classifier_free(eps_c, y, w, MIX), noise, scheduler, 50).samples
        hits[w] = ((out.flatten(1).mean(1) > 0).long() == y).float().mean().item()
    assert hits[0.0] < 0.7 and hits[1.0] > 0.97 and hits[2.0] > 0.97


# --- training objectives -------------------------------------------------------------------------

def test_losses_are_finite_and_use_label_dropout():
    from lab.train.conditional import AuxClassifierLoss, ConditionalEpsilonLoss, NoisyClassifierLoss

    scheduler = make_ddpm_scheduler()
    x, y = torch.rand(8, 1, 8, 8) * 2 - 1, torch.randint(0, 10, (8,))
    g = torch.Generator().manual_seed(0)
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, xt, t, labels):
            seen.append(labels.clone())
            return type("O", (), {"sample": torch.zeros_like(xt)})()

    loss = ConditionalEpsilonLoss(scheduler, DIGITS, p_uncond=0.5)(Spy(), x, y, g)
    assert loss.item() == pytest.approx(1.0, abs=0.3)            # ‖ε‖² of a zero prediction
    assert (seen[0] == 10).any() and (seen[0] != 10).any()
    assert torch.isfinite(AuxClassifierLoss(scheduler, DIGITS, 0.1)(tiny("auxclf"), x, y, g))
    assert torch.isfinite(NoisyClassifierLoss(scheduler, DIGITS)(NoisyClassifier(TINY), x, y, g))
    with pytest.raises(LabError, match="dropout"):
        ConditionalEpsilonLoss(scheduler, DIGITS, p_uncond=1.5)


def test_card_says_how_it_was_made(tmp_path):
    save_model(tmp_path / "m", tiny(), make_ddpm_scheduler(), {
        "kind": "conditional", "method": "label-embed", "method_note": "embedding", "p_uncond": 0.1,
        "init_from": "ddpm-mnist", "warm_start": {"copied_tensors": 99}, "steps": 2000,
        "labels": {"kind": "class", "names": list(DIGITS.names)}})
    card = (tmp_path / "m" / "README.md").read_text()
    assert "warm-started from `ddpm-mnist`" in card and "p = 0.1" in card and "load_conditional" in card
    assert json.loads((tmp_path / "m" / "training.json").read_text())["kind"] == "conditional"


def test_per_class_fid_equals_lab_fid_kid():
    """The tab computes FID from the judge's features once; it must equal lab.metrics.fid.fid_kid."""
    from lab.config import get_settings
    from lab.experiments.conditional.measure import judge_outputs
    from lab.metrics.fid import fid_kid
    from lab.metrics.fid_features import fid_from_features
    from lab.models.store import load_classifier

    judge = get_settings().checkpoint_dir / "classifier-mnist"
    if not judge.is_dir():
        pytest.skip("checkpoints/classifier-mnist is not there")
    g = torch.Generator().manual_seed(0)
    a = (torch.rand(40, 1, 28, 28, generator=g) * 2 - 1).clamp(-1, 1)
    b = torch.tanh(torch.randn(50, 1, 28, 28, generator=g))
    net = load_classifier(judge)
    ours = fid_from_features(judge_outputs(net, a)[1], judge_outputs(net, b)[1])
    assert ours == pytest.approx(fid_kid(a, b, "classifier", str(judge), kid=False).fid, rel=1e-3)
    assert fid_from_features(torch.zeros(1, 4), torch.zeros(5, 4)) is None
