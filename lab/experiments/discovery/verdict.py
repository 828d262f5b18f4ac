"""The Domain-discovery results in plain words: was the unseen domain found (FID against the real-vs-real floor
at the same n), better or worse than the other method (discovery against the fine-tuning baseline, the latest
comparable run in the runs folder), by how much, with n; how much worse the unseen domain is reconstructed than
the model's own; whether the inverted latents are told apart from Gaussian noise."""
from __future__ import annotations

import json
from pathlib import Path

from lab.metrics.intervals import FID_STABLE_N

# what a run of each action saved its metrics in, and what the method is called in a sentence
RESULT_FILES = {"discovery": ("discovery.json", "latent discovery"),
                "discovery-finetune": ("finetune.json", "the fine-tuning baseline")}
SAME = ("model", "target", "target_style", "target_path", "shots", "seed")


def reading(ratio: float) -> str:
    """FID / floor in words."""
    if ratio <= 2:
        return "close to real images of the unseen domain"
    if ratio <= 5:
        return "only partly like the unseen domain"
    return "not of the unseen domain"


def latest_comparable(kind: str, config: dict, n: int, root: Path | None = None) -> dict | None:
    """The newest finished ``kind`` run with the same model, domain, few-shot set and FID n: its id, FID and n."""
    from lab.runs import list_runs

    name = RESULT_FILES[kind][0]
    for record in list_runs(root, kind):
        if record.get("status") != "finished":
            continue
        other = record.get("config") or {}
        if any(other.get(k) != config.get(k) for k in SAME):
            continue
        try:
            fid = json.loads((Path(record["dir"]) / name).read_text()).get("metrics", {}).get("fid")
        except (OSError, json.JSONDecodeError):
            continue
        if fid and fid.get("n") == n:
            return {"id": record["id"], "fid": fid["fid"], "n": n}
    return None


def sampling_verdict(kind: str, metrics: dict, config: dict, root: Path | None = None) -> str:
    """One sentence on the samples of ``kind`` (discovery, discovery-finetune), and one against the other method."""
    fid, floor = (metrics or {}).get("fid"), (metrics or {}).get("floor")
    if not fid:
        return ""
    method = RESULT_FILES[kind][1]
    n = fid["n"]
    text = f"**Verdict:** {method[0].upper() + method[1:]} gives FID {fid['fid']:.1f} at n = {n}"
    if floor:
        ratio = fid["fid"] / floor["fid"]
        text += (f", {ratio:.1f}× the real-vs-real floor ({floor['fid']:.1f}): the samples are "
                 f"**{reading(ratio)}**")
        if ratio > 5 and kind == "discovery":
            text += " — discovery did not find the domain with these settings"
    text += "."
    other_kind = next(k for k in RESULT_FILES if k != kind)
    other = latest_comparable(other_kind, config, n, root)
    other_name = RESULT_FILES[other_kind][1]
    if other:
        delta = fid["fid"] - other["fid"]
        word = "better" if delta < 0 else "worse"
        text += (f" That is **{word} than {other_name}** (FID {other['fid']:.1f}, same n, run {other['id']}) by "
                 f"{abs(delta):.1f} ({fid['fid'] / other['fid']:.2f}×).")
    else:
        action = "4 · Tuning baseline" if kind == "discovery" else "3 · Latent discovery"
        text += f" Nothing to compare with yet: run '{action}' with these settings and n = {n}."
    if n < FID_STABLE_N:
        text += (f" ⚠️ n = {n} is small: FID is biased upwards at small n, so compare only at equal n and read "
                 "differences of a few points as noise.")
    return text


def reconstruction_verdict(rows: list[dict]) -> str:
    """How much worse the unseen domain comes back than the in-domain data, at the deepest t0 measured."""
    if not rows:
        return ""
    t0 = max(r["t0"] for r in rows)
    by = {r["domain"]: r for r in rows if r["t0"] == t0}
    unseen, own = by.get("unseen"), by.get("in-domain")
    if not unseen:
        return ""
    n = unseen.get("n", "?")
    if not own:
        return f"**Verdict:** at t0 = {t0} the unseen domain comes back at {unseen['psnr_mean']:.1f} dB (n = {n})."
    gap = own["psnr_mean"] - unseen["psnr_mean"]
    words = ("about as faithfully as" if abs(gap) < 1 else
             "less faithfully than" if gap > 0 else "more faithfully than")
    return (f"**Verdict:** at t0 = {t0} the frozen model reconstructs the unseen domain {words} its own data "
            f"({unseen['psnr_mean']:.1f} dB against {own['psnr_mean']:.1f} dB, {abs(gap):.1f} dB apart; n = {n} "
            "images each).")


def separability_verdict(separability: dict) -> str:
    """Whether the inverted unseen latents are told apart from Gaussian noise (and from the in-domain ones)."""
    gauss = separability.get("unseen vs Gaussian")
    if not gauss:
        return ""
    acc, std, n = gauss["accuracy"], gauss["std"], gauss["n_per_set"]
    if acc - 2 * std <= 0.6:
        words = "look like Gaussian noise to a linear classifier, as discovery assumes"
    else:
        words = "are told apart from Gaussian noise: they do not look like noise the model was trained on"
    return (f"**Verdict:** the inverted latents of the unseen domain {words} ({acc:.0%} ± {std:.0%} accuracy; 50 % = "
            f"chance; n = {n} per set).")
