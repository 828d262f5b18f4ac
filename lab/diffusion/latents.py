"""Geometry of inverted DDIM latents, and new latents made from them (Zhu et al., "Discovery and
Expansion of New Domains within Diffusion Models").

Every latent is treated as one vector in R^d (d = C·H·W); batches are ``[N, ...]``. Angles are in
degrees. For z ~ N(0, I_d) in high dimension the closed forms this module is checked against are:
‖z‖ ≈ √d, the angle at the origin between two independent latents ≈ 90°, and the angle at a
latent subtended by two others ≈ 60° (the three points form an almost equilateral triangle,
every side ≈ √(2d)).

Proposals (new latents from an inverted set R = {r_1 … r_M}):
  * ``slerp(a, b, t)``  spherical interpolation of the directions, linear interpolation of the norms;
  * ``mix(R, w)``       a convex combination Σ w_m r_m rescaled to the weighted norm Σ w_m ‖r_m‖;
  * ``gaussian_fit``    N(μ, σ² I) with μ the mean latent and σ² the variance of all entries of R.
The geometric filter keeps a proposal z when ‖z‖, its mean angle at the origin to R and its mean
angle between pairs of R lie inside given ranges; ``search`` proposes in batches until enough pass.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from lab.errors import LabError
from lab.progress import ProgressFn

MAX_PAIR_REFERENCES = 256  # above this, pair angles use a seeded subset (the cost is M² per latent)
MEASURES = ("norm", "origin_angle", "pair_angle")


def flat(z: torch.Tensor) -> torch.Tensor:
    """``[N, ...]`` → ``[N, d]`` in float64 (the angle formulas lose accuracy in float32 for d ≳ 10⁴)."""
    return z.detach().reshape(len(z), -1).double()


def norms(z: torch.Tensor) -> torch.Tensor:
    """‖z_n‖₂ for each latent of the batch: ``[N]``."""
    return flat(z).norm(dim=1)


def _angle(cos: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


def angles_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """∠(a_i, b_j) = arccos(⟨a_i, b_j⟩ / (‖a_i‖ ‖b_j‖)) in degrees: ``[N, M]``."""
    fa, fb = flat(a), flat(b)
    cos = (fa @ fb.T) / (fa.norm(dim=1, keepdim=True) * fb.norm(dim=1)).clamp_min(1e-300)
    return _angle(cos)


def pairwise_angles(z: torch.Tensor) -> torch.Tensor:
    """The angles at the origin between all pairs i < j of one set: ``[N(N−1)/2]``."""
    n = len(z)
    i, j = torch.triu_indices(n, n, offset=1)
    return angles_between(z, z)[i, j]


def gaussian_norm(d: int) -> float:
    """E‖z‖ for z ~ N(0, I_d): √2 Γ((d+1)/2) / Γ(d/2) (≈ √d − 1/(4√d))."""
    return math.exp(0.5 * math.log(2) + math.lgamma((d + 1) / 2) - math.lgamma(d / 2))


# --- proposals -----------------------------------------------------------------------------------

def slerp(a: torch.Tensor, b: torch.Tensor, t) -> torch.Tensor:
    """Spherical interpolation between the latents a and b (batches of the same shape) at t ∈ [0, 1].

    With θ = ∠(a, b), â = a/‖a‖, b̂ = b/‖b‖:
        slerp(a, b, t) = ((1 − t)‖a‖ + t‖b‖) · (sin((1 − t)θ) â + sin(tθ) b̂) / sin θ.
    The direction stays on the unit sphere, so ‖slerp(a, b, t)‖ = (1 − t)‖a‖ + t‖b‖ exactly; for
    ‖a‖ = ‖b‖ this is the classic slerp and keeps that norm. t = 0 gives a, t = 1 gives b. Nearly
    parallel latents fall back to normalised linear interpolation; opposite latents (θ = 180°) have
    no unique great circle and are an error. ``t`` is a number or one value per pair ``[N]``.
    """
    if a.shape != b.shape:
        raise LabError(f"slerp needs two latents of the same shape, not {tuple(a.shape)} and {tuple(b.shape)}.")
    fa, fb = flat(a), flat(b)
    t = torch.as_tensor(t, dtype=torch.float64).reshape(-1, 1).expand(len(fa), 1)
    if ((t < 0) | (t > 1)).any():
        raise LabError("slerp's t must lie in [0, 1].")
    na, nb = fa.norm(dim=1, keepdim=True), fb.norm(dim=1, keepdim=True)
    if (na == 0).any() or (nb == 0).any():
        raise LabError("slerp is undefined for a zero latent.")
    ua, ub = fa / na, fb / nb
    theta = torch.arccos((ua * ub).sum(1, keepdim=True).clamp(-1.0, 1.0))
    if (theta > math.pi - 1e-7).any():
        raise LabError("slerp between opposite latents (180° apart) is undefined: choose another pair.")
    sin = torch.sin(theta)
    small = sin < 1e-7
    safe = torch.where(small, torch.ones_like(sin), sin)
    direction = torch.where(small, (1 - t) * ua + t * ub, (torch.sin((1 - t) * theta) * ua
                                                           + torch.sin(t * theta) * ub) / safe)
    direction = direction / direction.norm(dim=1, keepdim=True)
    out = ((1 - t) * na + t * nb) * direction
    return out.to(a.dtype).reshape(a.shape)


def mix(latents: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """New latents z_n = s_n Σ_m w_nm r_m from M latents r_m and non-negative weights ``[N, M]``.

    The weights of each row are normalised to sum to 1, and s_n = Σ_m w_nm ‖r_m‖ / ‖Σ_m w_nm r_m‖, so
    ‖z_n‖ = Σ_m w_nm ‖r_m‖: a plain average of nearly orthogonal latents would shrink the norm by
    about √(Σ w²), far inside the shell where the model's latents live.
    """
    w = torch.as_tensor(weights, dtype=torch.float64)
    if w.ndim != 2 or w.shape[1] != len(latents):
        raise LabError(f"mix needs one weight per latent: weights of shape [N, {len(latents)}], not {tuple(w.shape)}.")
    if (w < 0).any() or (w.sum(1) <= 0).any():
        raise LabError("mix weights must be non-negative with a positive sum in every row.")
    w = w / w.sum(1, keepdim=True)
    r = flat(latents)
    combined = w @ r
    target = w @ r.norm(dim=1)
    size = combined.norm(dim=1)
    if (size < 1e-12).any():
        raise LabError("These mixing weights cancel the latents out: choose other weights.")
    out = combined * (target / size).unsqueeze(1)
    return out.to(latents.dtype).reshape(len(w), *latents.shape[1:])


def gaussian_fit(latents: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """n draws of N(μ, σ² I): μ the mean latent, σ² the variance of all entries of latents − μ."""
    r = flat(latents)
    mu = r.mean(0)
    sigma = (r - mu).pow(2).mean().sqrt()
    z = mu + sigma * torch.randn(n, r.shape[1], generator=generator, dtype=torch.float64)
    return z.to(latents.dtype).reshape(n, *latents.shape[1:])


PROPOSALS = ("slerp", "mix", "gaussian")


def propose(latents: torch.Tensor, n: int, method: str, generator: torch.Generator,
            t_margin: float = 0.2, mix_count: int = 3, dirichlet: float = 1.0) -> tuple[torch.Tensor, list[str]]:
    """n new latents from the set ``latents`` and, for each, how it was made.

    slerp: a random pair (i ≠ j) at t ~ U[t_margin, 1 − t_margin]; mix: ``mix_count`` random latents
    with Dirichlet(``dirichlet``) weights; gaussian: ``gaussian_fit``.
    """
    m = len(latents)
    if method not in PROPOSALS:
        raise LabError(f"Unknown proposal {method!r}: choose one of {', '.join(PROPOSALS)}.")
    if method != "gaussian" and m < 2:
        raise LabError(f"{method} needs at least 2 inverted latents, not {m}.")
    if method == "gaussian":
        if m < 2:
            raise LabError("A Gaussian fit needs at least 2 inverted latents.")
        return gaussian_fit(latents, n, generator), ["gaussian fit"] * n
    if method == "slerp":
        if not 0 <= t_margin < 0.5:
            raise LabError(f"The slerp margin must be in [0, 0.5), not {t_margin}.")
        i = torch.randint(0, m, (n,), generator=generator)
        j = (i + torch.randint(1, m, (n,), generator=generator)) % m  # j ≠ i
        t = t_margin + (1 - 2 * t_margin) * torch.rand(n, generator=generator, dtype=torch.float64)
        return slerp(latents[i], latents[j], t), [f"slerp({a}, {b}, t={c:.2f})" for a, b, c in
                                                  zip(i.tolist(), j.tolist(), t.tolist())]
    k = min(mix_count, m)
    if k < 2:
        raise LabError(f"Mixing needs at least 2 latents per mix, not {mix_count}.")
    if dirichlet <= 0:
        raise LabError(f"The Dirichlet concentration must be positive, not {dirichlet}.")
    chosen = torch.stack([torch.randperm(m, generator=generator)[:k] for _ in range(n)])
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    w_k = torch.from_numpy(rng.dirichlet([float(dirichlet)] * k, size=n))
    weights = torch.zeros(n, m, dtype=torch.float64).scatter_(1, chosen, w_k)
    names = [f"mix({', '.join(str(c) for c in row)})" for row in chosen.tolist()]
    return mix(latents, weights), names


# --- geometric measures and the filter ---------------------------------------------------------

def origin_angle(z: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Mean over the references r_m of the angle at the origin ∠(z, r_m): ``[N]``."""
    return angles_between(z, references).mean(1)


def pair_angle(z: torch.Tensor, references: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean over all pairs m < k of the angle at z between r_m and r_k, ∠ r_m z r_k: ``[N]``.

    With u_m = r_m − z: cos ∠ = ⟨u_m, u_k⟩ / (‖u_m‖ ‖u_k‖), where
    ⟨u_m, u_k⟩ = ⟨r_m, r_k⟩ − ⟨r_m, z⟩ − ⟨r_k, z⟩ + ‖z‖² (one Gram matrix for all pairs).
    Pairs with a reference equal to z are left out. More than ``MAX_PAIR_REFERENCES`` references are
    subsampled (seeded by ``generator``).
    """
    r = flat(references)
    if len(r) < 2:
        raise LabError("The pair angle needs at least 2 reference latents.")
    if len(r) > MAX_PAIR_REFERENCES:
        g = generator or torch.Generator().manual_seed(0)
        r = r[torch.randperm(len(r), generator=g)[:MAX_PAIR_REFERENCES]]
    gram = r @ r.T
    m = len(r)
    i, j = torch.triu_indices(m, m, offset=1)
    out = []
    for zn in flat(z):
        c = r @ zn
        inner = gram - c[:, None] - c[None, :] + zn @ zn      # ⟨u_m, u_k⟩
        length = inner.diagonal().clamp_min(0).sqrt()          # ‖u_m‖
        valid = length > 1e-9 * max(1.0, float(zn.norm()))
        cos = inner[i, j] / (length[i] * length[j]).clamp_min(1e-300)
        keep = valid[i] & valid[j]
        out.append(_angle(cos[keep]).mean() if keep.any() else torch.tensor(float("nan"), dtype=torch.float64))
    return torch.stack(out)


def geometry(z: torch.Tensor, references: torch.Tensor) -> dict[str, torch.Tensor]:
    """The three filter measures of each latent of z against the references."""
    return {"norm": norms(z), "origin_angle": origin_angle(z, references), "pair_angle": pair_angle(z, references)}


def reference_geometry(references: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same measures for each reference against all the others (leave one out): the targets.

    The mean of the leave-one-out pair angles is exactly 60° for any set (≤ 256 latents): every
    triangle r_k r_m r_l is counted once at each of its corners, and its angles add up to 180°. So the
    pair-angle target is always 60° (the paper's hard-coded value); what differs is each latent's own
    pair angle, which grows for latents near the set's centre (the others are seen in all directions)
    and drops for latents far outside it (the others are seen in a narrow cone).
    """
    m = len(references)
    if m < 3:
        raise LabError(f"Target geometry needs at least 3 inverted latents, not {m}.")
    out = {"norm": norms(references), "origin_angle": [], "pair_angle": []}
    for k in range(m):
        others = torch.cat([references[:k], references[k + 1:]])
        out["origin_angle"].append(origin_angle(references[k:k + 1], others)[0])
        out["pair_angle"].append(pair_angle(references[k:k + 1], others)[0])
    out["origin_angle"] = torch.stack(out["origin_angle"])
    out["pair_angle"] = torch.stack(out["pair_angle"])
    return out


Range = tuple[float, float]


@dataclass
class GeometryThresholds:
    """Accepted closed ranges [low, high]; a measure whose range is None is not checked."""
    norm: Range | None = None
    origin_angle: Range | None = None   # degrees
    pair_angle: Range | None = None     # degrees

    def checks(self) -> dict[str, Range]:
        return {k: v for k, v in (("norm", self.norm), ("origin_angle", self.origin_angle),
                                  ("pair_angle", self.pair_angle)) if v is not None}

    def describe(self) -> str:
        names = {"norm": "‖z‖", "origin_angle": "angle at the origin", "pair_angle": "pair angle"}
        parts = [f"{names[k]} ∈ [{lo:.4g}, {hi:.4g}]" for k, (lo, hi) in self.checks().items()]
        return "; ".join(parts) or "no check"


def thresholds_around(references: torch.Tensor, norm_tolerance: float | None = 0.02,
                      origin_tolerance: float | None = 2.0, pair_tolerance: float | None = 2.0,
                      targets: dict[str, float] | None = None) -> tuple[GeometryThresholds, dict[str, float]]:
    """Ranges centred on the references' own leave-one-out means (or on given ``targets``).

    norm: target · (1 ± norm_tolerance) (a relative tolerance); the angles: target ± tolerance
    degrees. A tolerance of None switches that check off. Returns (thresholds, targets).
    """
    if targets is None:
        measured = reference_geometry(references)
        targets = {k: float(v.mean()) for k, v in measured.items()}
    for name, tol in (("norm", norm_tolerance), ("origin angle", origin_tolerance), ("pair angle", pair_tolerance)):
        if tol is not None and tol < 0:
            raise LabError(f"The {name} tolerance must not be negative, not {tol}.")
    t = GeometryThresholds(
        norm=None if norm_tolerance is None else (targets["norm"] * (1 - norm_tolerance),
                                                  targets["norm"] * (1 + norm_tolerance)),
        origin_angle=None if origin_tolerance is None else (targets["origin_angle"] - origin_tolerance,
                                                            targets["origin_angle"] + origin_tolerance),
        pair_angle=None if pair_tolerance is None else (targets["pair_angle"] - pair_tolerance,
                                                        targets["pair_angle"] + pair_tolerance))
    return t, targets


def geometric_filter(z: torch.Tensor, references: torch.Tensor, thresholds: GeometryThresholds
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(accepted ``[N]`` bool, measures): z_n is accepted when every checked measure lies in its range
    (bounds included). Only the checked measures are computed."""
    checks = thresholds.checks()
    measures: dict[str, torch.Tensor] = {}
    if "norm" in checks:
        measures["norm"] = norms(z)
    if "origin_angle" in checks:
        measures["origin_angle"] = origin_angle(z, references)
    if "pair_angle" in checks:
        measures["pair_angle"] = pair_angle(z, references)
    return passes(measures, thresholds, len(z)), measures


def passes(measures: dict[str, torch.Tensor], thresholds: GeometryThresholds, n: int | None = None) -> torch.Tensor:
    """The accept mask for measures already computed (``geometry``): every checked one in its range."""
    checks = thresholds.checks()
    if n is None:
        n = len(next(iter(measures.values())))
    accepted = torch.ones(n, dtype=torch.bool)
    for name, (lo, hi) in checks.items():
        if lo > hi:
            raise LabError(f"The accepted range for {name.replace('_', ' ')} is empty ([{lo}, {hi}]).")
        if name not in measures:
            raise LabError(f"The measure {name} was not computed.")
        accepted &= (measures[name] >= lo) & (measures[name] <= hi)
    return accepted


# --- the search: propose, filter, repeat ---------------------------------------------------------

@dataclass
class Search:
    latents: torch.Tensor            # the accepted proposals, in the order found
    provenance: list[str]            # how each was made
    proposed: int                    # proposals drawn in all
    shown: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)
    # "accepted" / "rejected": the measures (columns ``MEASURES``) of up to ``shown_per_batch`` of each batch


def search(references: torch.Tensor, count: int, method: str, thresholds: GeometryThresholds,
           generator: torch.Generator, max_candidates: int = 20_000, t_margin: float = 0.2, mix_count: int = 3,
           shown_per_batch: int = 1000, progress: ProgressFn | None = None) -> Search:
    """Up to ``count`` proposals (``propose``) that pass the geometric filter, drawn in batches of
    max(4 × still needed, 256) until ``count`` passed or ``max_candidates`` were proposed."""
    kept, provenance, proposed, have = [], [], 0, 0
    shown: dict[str, list] = {"accepted": [], "rejected": []}
    while have < count and proposed < max_candidates:
        need = count - have
        batch = min(max(4 * need, 256), max_candidates - proposed)
        z, names = propose(references, batch, method, generator, t_margin=t_margin, mix_count=mix_count)
        measures = geometry(z, references)
        ok = passes(measures, thresholds)
        proposed += batch
        idx = ok.nonzero().squeeze(1)[:need]
        kept.append(z[idx])
        provenance += [names[i] for i in idx.tolist()]
        have += len(idx)
        for key, mask in (("accepted", ok), ("rejected", ~ok)):
            shown[key].append(torch.stack([measures[m][mask] for m in MEASURES], 1)[:shown_per_batch])
        if progress is not None:
            progress(have, count, f"Geometric filter ({proposed} proposed)")
    empty = references.new_zeros((0, *references.shape[1:]))
    return Search(torch.cat(kept) if kept else empty, provenance, proposed,
                  {k: torch.cat(v) if v else torch.zeros(0, len(MEASURES), dtype=torch.float64)
                   for k, v in shown.items()})
