"""Exact checks of the latent geometry (slerp, mixing, the filter) and of the diversity/copy measures.

Pure math: no model, no data.
"""
import math

import pytest
import torch

from lab.diffusion import latents as geo
from lab.errors import LabError
from lab.metrics.diversity import (
    copy_fraction,
    copy_report,
    mean_pairwise_distance,
    nearest_neighbour_distances,
    pixels,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_slerp_of_equal_norm_vectors_keeps_the_norm_and_follows_the_great_circle():
    a = torch.randn(50, 1, 28, 28, generator=_gen(0))
    b = torch.randn(50, 1, 28, 28, generator=_gen(1))
    b = b * (geo.norms(a) / geo.norms(b)).view(-1, 1, 1, 1).float()  # equal norms pairwise
    t = torch.linspace(0, 1, 50, dtype=torch.float64)
    z = geo.slerp(a, b, t)
    assert torch.allclose(geo.norms(z), geo.norms(a), rtol=1e-5)
    # the angle to a grows linearly with t: ∠(a, z) = t θ, ∠(z, b) = (1 − t) θ
    theta = torch.diagonal(geo.angles_between(a, b))
    assert torch.allclose(torch.diagonal(geo.angles_between(a, z)), t * theta, atol=1e-3)
    assert torch.allclose(torch.diagonal(geo.angles_between(z, b)), (1 - t) * theta, atol=1e-3)


def test_slerp_norm_is_linear_in_t_for_unequal_norms_and_hits_the_ends():
    a = torch.randn(8, 3, 4, 4, generator=_gen(2), dtype=torch.float64)
    b = 3 * torch.randn(8, 3, 4, 4, generator=_gen(3), dtype=torch.float64)
    for t in (0.0, 0.3, 0.5, 1.0):
        z = geo.slerp(a, b, t)
        assert torch.allclose(geo.norms(z), (1 - t) * geo.norms(a) + t * geo.norms(b), rtol=1e-12)
    assert torch.allclose(geo.slerp(a, b, 0.0), a, atol=1e-12)
    assert torch.allclose(geo.slerp(a, b, 1.0), b, atol=1e-12)


def test_slerp_closed_form_in_the_plane():
    a = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    z = geo.slerp(a, b, 1 / 3)
    assert torch.allclose(z, torch.tensor([[2 * math.cos(math.pi / 6), 2 * math.sin(math.pi / 6)]],
                                          dtype=torch.float64), atol=1e-12)
    parallel = geo.slerp(a, 3 * a, 0.5)  # θ = 0: normalised lerp, norm (1 − t)·2 + t·6
    assert torch.allclose(parallel, torch.tensor([[4.0, 0.0]], dtype=torch.float64))


def test_slerp_rejects_bad_inputs():
    a = torch.tensor([[1.0, 0.0]])
    with pytest.raises(LabError, match="opposite"):
        geo.slerp(a, -a, 0.5)
    with pytest.raises(LabError, match="same shape"):
        geo.slerp(a, torch.ones(1, 3), 0.5)
    with pytest.raises(LabError, match=r"\[0, 1\]"):
        geo.slerp(a, torch.tensor([[0.0, 1.0]]), 1.5)
    with pytest.raises(LabError, match="zero"):
        geo.slerp(torch.zeros(1, 2), a, 0.5)


def test_mix_keeps_the_weighted_norm_and_the_direction_of_the_combination():
    r = torch.randn(5, 1, 6, 6, generator=_gen(4), dtype=torch.float64)
    w = torch.tensor([[1.0, 1.0, 0, 0, 0], [0.2, 0, 0.3, 0.5, 0]], dtype=torch.float64)
    z = geo.mix(r, w)
    wn = w / w.sum(1, keepdim=True)
    assert torch.allclose(geo.norms(z), wn @ geo.norms(r), rtol=1e-12)
    combined = wn @ geo.flat(r)
    assert torch.allclose(geo.angles_between(z, combined.view(2, 1, 6, 6)).diagonal(),
                          torch.zeros(2, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(geo.mix(r, torch.eye(5, dtype=torch.float64)), r)  # one-hot weights: the latents
    with pytest.raises(LabError, match="non-negative"):
        geo.mix(r, -w)
    with pytest.raises(LabError, match="one weight per latent"):
        geo.mix(r, w[:, :3])


def test_proposals_are_seeded_and_of_the_right_shape():
    r = torch.randn(10, 1, 5, 5, generator=_gen(5))
    for method in geo.PROPOSALS:
        z1, names = geo.propose(r, 7, method, _gen(9))
        z2, _ = geo.propose(r, 7, method, _gen(9))
        assert z1.shape == (7, 1, 5, 5) and len(names) == 7
        assert torch.equal(z1, z2)
    z, names = geo.propose(r, 200, "slerp", _gen(1), t_margin=0.25)
    assert all(0.25 <= float(n.split("t=")[1].rstrip(")")) <= 0.75 for n in names)
    with pytest.raises(LabError, match="Unknown proposal"):
        geo.propose(r, 3, "lerp", _gen(0))
    with pytest.raises(LabError, match="at least 2"):
        geo.propose(r[:1], 3, "slerp", _gen(0))


def _orthogonal(m, d, radius):
    """m mutually orthogonal latents of norm ``radius`` (scaled basis vectors e_1 … e_m) in R^d."""
    return radius * torch.eye(d, dtype=torch.float64)[1:m + 1]


def test_angles_of_orthogonal_sets_match_the_closed_forms():
    refs = _orthogonal(6, 10, 2.0)
    z = 2.0 * torch.eye(10, dtype=torch.float64)[:1]  # e_0, orthogonal to all of them, same norm
    assert geo.origin_angle(z, refs).item() == pytest.approx(90.0)
    assert geo.pair_angle(z, refs).item() == pytest.approx(60.0)  # equilateral triangles
    assert torch.allclose(geo.pairwise_angles(refs), torch.full((15,), 90.0, dtype=torch.float64))
    ref = geo.reference_geometry(refs)  # leave one out: the same closed forms for every reference
    assert torch.allclose(ref["origin_angle"], torch.full((6,), 90.0, dtype=torch.float64))
    assert torch.allclose(ref["pair_angle"], torch.full((6,), 60.0, dtype=torch.float64))
    assert torch.allclose(ref["norm"], torch.full((6,), 2.0, dtype=torch.float64))


def test_gaussian_latents_match_the_high_dimensional_closed_forms():
    d = 4096
    z = torch.randn(40, d, generator=_gen(6), dtype=torch.float64)
    assert geo.norms(z).mean().item() == pytest.approx(geo.gaussian_norm(d), rel=0.01)
    assert geo.gaussian_norm(d) == pytest.approx(math.sqrt(d) - 1 / (4 * math.sqrt(d)), rel=1e-6)
    assert geo.pairwise_angles(z).mean().item() == pytest.approx(90.0, abs=0.3)
    assert geo.pair_angle(z[:3], z[3:]).mean().item() == pytest.approx(60.0, abs=0.5)


def test_mean_leave_one_out_pair_angle_is_60_degrees_for_any_set():
    """Every triangle's angles add up to 180°, so the mean over its three corners is 60°."""
    for seed, shape in ((0, (7, 3)), (1, (12, 1, 5, 5))):
        z = torch.randn(*shape, generator=_gen(seed), dtype=torch.float64) + 3 * torch.rand(1, generator=_gen(seed))
        assert geo.reference_geometry(z)["pair_angle"].mean().item() == pytest.approx(60.0, abs=1e-9)


def test_filter_accepts_and_rejects_exactly_at_its_thresholds():
    refs = _orthogonal(4, 8, 1.0)
    # candidates along e_0 with norms 0.9, 0.98, 1.0, 1.02, 1.1: all at 90° from the references
    z = torch.tensor([0.9, 0.98, 1.0, 1.02, 1.1], dtype=torch.float64).view(-1, 1) * torch.eye(8, dtype=torch.float64)[:1]
    t = geo.GeometryThresholds(norm=(0.98, 1.02))
    ok, measures = geo.geometric_filter(z, refs, t)
    assert ok.tolist() == [False, True, True, True, False]  # bounds included
    assert set(measures) == {"norm"}  # only checked measures are computed
    # origin angle: a candidate tilted towards r_1 by φ has mean angle (90 − φ + 3·90)/4 to the four refs
    phis = torch.tensor([0.0, 4.0, 8.0, 12.0], dtype=torch.float64)
    rad = torch.deg2rad(phis)
    tilted = torch.zeros(4, 8, dtype=torch.float64)
    tilted[:, 0], tilted[:, 1] = torch.cos(rad), torch.sin(rad)
    mean_angle = geo.origin_angle(tilted, refs)
    assert torch.allclose(mean_angle, 90 - phis / 4, atol=1e-9)
    ok, _ = geo.geometric_filter(tilted, refs, geo.GeometryThresholds(origin_angle=(88.0, 92.0)))
    assert ok.tolist() == [True, True, True, False]  # 90, 89, 88 (on the bound) in; 87 out
    ok, m = geo.geometric_filter(tilted, refs, geo.GeometryThresholds(norm=(0.99, 1.01), pair_angle=(59.0, 61.0)))
    assert ok.tolist() == [bool(59.0 <= a <= 61.0) for a in m["pair_angle"].tolist()]
    assert ok[0].item() and not ok[-1].item()
    with pytest.raises(LabError, match="empty"):
        geo.geometric_filter(z, refs, geo.GeometryThresholds(norm=(2.0, 1.0)))
    everything, _ = geo.geometric_filter(z, refs, geo.GeometryThresholds())
    assert everything.all()  # no check: everything passes


def test_thresholds_around_the_reference_set():
    refs = _orthogonal(5, 9, 3.0)
    t, targets = geo.thresholds_around(refs, norm_tolerance=0.1, origin_tolerance=1.0, pair_tolerance=None)
    assert targets == pytest.approx({"norm": 3.0, "origin_angle": 90.0, "pair_angle": 60.0})
    assert t.norm == pytest.approx((2.7, 3.3)) and t.origin_angle == pytest.approx((89.0, 91.0))
    assert t.pair_angle is None and "pair angle" not in t.describe()
    with pytest.raises(LabError, match="not be negative"):
        geo.thresholds_around(refs, norm_tolerance=-0.1)
    with pytest.raises(LabError, match="at least 3"):
        geo.reference_geometry(refs[:2])


def test_search_keeps_only_proposals_that_pass_and_stops_at_the_budget():
    refs = torch.randn(12, 1, 6, 6, generator=_gen(3), dtype=torch.float64)
    t, _ = geo.thresholds_around(refs, norm_tolerance=0.05, origin_tolerance=5.0, pair_tolerance=5.0)
    found = geo.search(refs, 10, "slerp", t, _gen(4))
    assert len(found.latents) == len(found.provenance) == 10 and found.proposed >= 256
    assert geo.geometric_filter(found.latents, refs, t)[0].all()
    assert len(found.shown["accepted"]) >= 10 and found.shown["accepted"].shape[1] == len(geo.MEASURES)
    none = geo.search(refs, 5, "slerp", geo.GeometryThresholds(norm=(0.0, 0.0)), _gen(4), max_candidates=300)
    assert len(none.latents) == 0 and none.proposed == 300 and len(none.shown["rejected"]) == 300


def test_diversity_nearest_neighbours_and_copies():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]], dtype=torch.float64)
    assert mean_pairwise_distance(x) == pytest.approx((5 + 10 + 5) / 3)
    d, i = nearest_neighbour_distances(x, x, exclude_self=True)
    assert d.tolist() == [5.0, 5.0, 5.0] and i.tolist() == [1, 0, 1]
    assert copy_fraction(torch.tensor([0.1, 0.2, 0.5, 0.9]), 0.5) == 0.5  # 0.5 itself is not below
    fewshot = torch.rand(6, 1, 4, 4, generator=_gen(7)) * 2 - 1
    assert torch.allclose(torch.cdist(pixels(fewshot[:1]), pixels(fewshot[1:2])),
                          ((fewshot[0] - fewshot[1]).pow(2).mean().sqrt()).view(1, 1), atol=1e-6)
    samples = torch.cat([fewshot[:2], -fewshot[2:4]])  # two exact copies, two far away
    report = copy_report(samples, fewshot, ratio=0.5)
    assert report["nn_copy_fraction"] == 0.5 and report["nearest_index"][:2] == [0, 1]
    with pytest.raises(LabError, match="at least 2"):
        mean_pairwise_distance(x[:1])
