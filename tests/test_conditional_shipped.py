"""The shipped MNIST conditional checkpoints really condition (skipped where a checkpoint is not shipped).

Every column of a grid starts from the same noise, so rows differ only by the requested digit;
``checkpoints/classifier-mnist`` (never used by a method) judges the samples. Chance is 0.1.
"""
import torch
from conftest import needs_checkpoints

from lab.experiments.conditional.config import ConditionalConfig
from lab.experiments.conditional.sample import paired_batch, run_grid

shipped = needs_checkpoints


def quick(method, model, scale, per_class=4, **kw) -> ConditionalConfig:
    return ConditionalConfig(method=method, model=model, scale=scale, steps=20, per_class=per_class, fid=False,
                             tsne=False, judge="classifier-mnist", **kw)


def rows_identical(result) -> bool:
    x = result.samples.view(10, -1, *result.samples.shape[1:])
    return bool((x - x[:1]).abs().max() < 1e-5)


@shipped("cfg-mnist", "classifier-mnist")
def test_cfg_same_noise_different_labels_gives_the_requested_digits():
    guided = run_grid(quick("cfg", "cfg-mnist", 3.0))
    assert guided.metrics.accuracy >= 0.8                       # chance: 0.1
    assert len(set(guided.metrics.predicted.view(10, -1)[:, 0].tolist())) >= 8  # one noise, ≥ 8 different digits
    plain = run_grid(quick("label-embed", "cfg-mnist", 1.0))
    assert plain.metrics.accuracy >= 0.5


@shipped("cfg-mnist")
def test_cfg_w0_is_the_unconditional_path():
    result = run_grid(quick("cfg", "cfg-mnist", 0.0, per_class=2), measure_it=False)
    assert rows_identical(result)                               # the label has no effect at w = 0


@shipped("ddpm-mnist", "noisy-classifier-mnist", "classifier-mnist")
def test_classifier_guidance_conditions_an_unconditional_ddpm():
    result = run_grid(quick("classifier-guidance", "ddpm-mnist", 5.0, classifier="noisy-classifier-mnist"))
    assert result.metrics.accuracy >= 0.6
    off = run_grid(quick("classifier-guidance", "ddpm-mnist", 0.0, per_class=2), measure_it=False)
    assert rows_identical(off)


@shipped("ddpm-mnist", "noisy-classifier-mnist")
def test_guidance_gradient_raises_the_shipped_classifiers_log_probability():
    from lab.data import load_dataset
    from lab.diffusion.guidance import log_prob_grad
    from lab.diffusion.schedules import q_sample
    from lab.models.conditional import load_noisy_classifier

    clf = load_noisy_classifier("noisy-classifier-mnist")
    test = load_dataset("mnist", "test").take(64, seed=0)
    t = torch.full((64,), 400)
    xt = q_sample(clf.scheduler, test.to_float(), torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)), t)
    wrong = (test.labels + 3) % 10                               # steer towards another digit
    grad, logp = log_prob_grad(clf.net, xt, t, wrong, clf.spec)
    step = 0.05 * grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    with torch.no_grad():
        after = clf.spec.log_prob(clf.net(xt + step, t), wrong)
    assert (after > logp).float().mean() >= 0.95


@shipped("noisy-classifier-mnist")
def test_noisy_classifier_reads_noisy_digits():
    from lab.models.conditional import load_noisy_classifier

    info = load_noisy_classifier("noisy-classifier-mnist").info
    assert info["metrics"]["accuracy_t0"] >= 0.95 and info["metrics"]["accuracy_t500"] >= 0.5


@shipped("condnorm-mnist", "classifier-mnist")
def test_condnorm_labels_change_the_samples():
    result = run_grid(quick("condnorm", "condnorm-mnist", 1.0))
    x = result.samples.view(10, -1, *result.samples.shape[1:])
    assert (x - x[:1]).abs().amax(dim=(1, 2, 3, 4))[1:].min() > 0.1   # every other label changes the image
    assert result.metrics.accuracy > 0.2


@shipped("auxclf-mnist", "classifier-mnist")
def test_auxclf_cannot_condition_without_its_head_but_can_with_it():
    off = run_grid(quick("auxclf", "auxclf-mnist", 0.0, per_class=2))
    assert rows_identical(off)                                  # the seed's setting: the label changes nothing
    on = run_grid(quick("auxclf", "auxclf-mnist", 10.0))
    assert on.metrics.accuracy > off.metrics.accuracy


def test_paired_batch_shares_noise_across_rows():
    from lab.models.conditional import LabelSpec

    spec = LabelSpec("class", tuple("abc"))
    labels, noise = paired_batch(spec, [2, 0], 3, 4, 1, seed=5)
    assert labels.tolist() == [2, 2, 2, 0, 0, 0]
    assert torch.equal(noise[:3], noise[3:]) and not torch.equal(noise[0], noise[1])


@shipped("ddpm-utkface64", "noisy-classifier-utkface64", "judge-utkface64-gender-age")
def test_face_preset_steers_the_face_ddpm_one_row_per_gender_and_age():
    """The face grid: the preset's pair fits, its guidance gradient raises log p(gender × age | x_t), and a
    two-row grid comes out with the rows named and judged by the shipped face judge (found automatically)."""
    from dataclasses import replace

    from lab.data.sources import UTK_TARGETS
    from lab.diffusion.guidance import log_prob_grad
    from lab.experiments.conditional.presets import preset
    from lab.models.conditional import load_noisy_classifier

    clf = load_noisy_classifier("noisy-classifier-utkface64")
    assert clf.spec.names == tuple(UTK_TARGETS["gender-age"])
    g = torch.Generator().manual_seed(0)
    xt = torch.randn(8, 3, 64, 64, generator=g)
    t = torch.full((8,), 600)
    wanted = torch.arange(8) % 10
    grad, logp = log_prob_grad(clf.net, xt, t, wanted, clf.spec)
    with torch.no_grad():
        after = clf.spec.log_prob(clf.net(xt + 0.05 * grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1), t),
                                  wanted)
    assert (after > logp).float().mean() >= 0.9
    config = ConditionalConfig(**{**preset("faces").values, "classes": "male 0-14, female 60+", "per_class": 1,
                                  "steps": 4, "fid": False, "tsne": False})
    result = run_grid(config)
    assert result.rows == ["male 0-14", "female 60+"] and result.samples.shape == (2, 3, 64, 64)
    assert result.metrics.judge.endswith("judge-utkface64-gender-age") and 0 <= result.metrics.accuracy <= 1
    assert result.grid.height >= 2 * 64
    off = run_grid(replace(config, scale=0.0), measure_it=False)
    assert torch.allclose(off.samples[0], off.samples[1], atol=1e-5)   # s = 0: the label has no effect
