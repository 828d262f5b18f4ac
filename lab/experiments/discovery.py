"""Domain discovery: reconstruct and expand an unseen domain with a frozen DDPM (after Zhu et al.,
"Discovery and Expansion of New Domains within Diffusion Models").

* ``run_reconstruct``: deterministic DDIM inversion (η = 0) of unseen-domain and in-domain images to
  x_{t0}, generation back, MSE / PSNR per t0.
* ``run_stats``: norms and pairwise angles of the inverted latents against N(0, I) noise of the same
  size, and whether unseen and in-domain latents are linearly separable.
* ``run_discover``: new latents from the inverted few-shot set (slerp, mixing, a Gaussian fit), kept
  when they pass the geometric filter (``lab.diffusion.latents``), generated with the frozen model.
* ``run_finetune``: the tuning baseline — plain ε-loss fine-tuning of a copy on the few-shot set.
* ``evaluate``: FID (classifier features suited to the domain) against held-out target images with n
  and the real-vs-real floor, diversity, and the nearest-neighbour copy check.
"""
from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lab.config import get_settings

from lab.device import resolve_device
from lab.data import DATASETS, STYLES, load_dataset
from lab.data.sources import IMAGE_SUFFIXES, image_to_tensor, open_image
from lab.diffusion import latents as geo
from lab.diffusion.samplers import ddim_invert, ddim_sample, ddim_timesteps
from lab.errors import LabError
from lab.models.store import DiffusionModel, load_diffusion
from lab.progress import ProgressFn
from lab.seeding import randn
from lab.viz.grids import image_grid
from lab.viz.plots import line_figure, scatter_figure

log = logging.getLogger(__name__)
TARGETS = [d for d in DATASETS if d != "folder"] + ["folder", "upload"]
# classifiers whose features suit a target domain (FID, diversity); styled variants have none
FEATURE_CLASSIFIERS = {"fashion": "classifier-fashion", "mnist": "classifier-mnist", "usps": "classifier-mnist",
                       "digits": "classifier-mnist"}
MAX_SHOTS = 5000


@dataclass
class DiscoveryConfig:
    model: str = "ddpm-mnist"
    target: str = "fashion"          # a dataset (TARGETS), "folder" (target_path) or "upload" (files)
    target_style: str = "plain"      # a style applied to the target dataset (e.g. mnist + negative)
    target_path: str | None = None
    shots: int = 100                 # few-shot target images the method sees
    in_domain: str = "auto"          # contrast set: 'auto' = the model's own data, a dataset, or 'none'
    t0: int = 900                    # inversion depth (timestep of the latent)
    steps: int = 50                  # DDIM steps between 0 and t0 (the paper's n_inv_step)
    classifier: str = "auto"         # FID / diversity features: 'auto', 'none', or a classifier name/folder
    seed: int = 0
    device: str = "auto"
    batch_size: int = 250

    def validate(self) -> None:
        if self.target not in TARGETS:
            raise LabError(f"Unknown target domain {self.target!r}: choose one of {', '.join(TARGETS)}.")
        if self.target_style not in STYLES:
            raise LabError(f"Unknown style {self.target_style!r}: choose one of {', '.join(STYLES)}.")
        if self.target == "folder" and not (self.target_path or "").strip():
            raise LabError("A folder target needs the path of a folder of images on the server.")
        if not 2 <= self.shots <= MAX_SHOTS:
            raise LabError(f"The few-shot set must have between 2 and {MAX_SHOTS} images, not {self.shots}.")
        if not 1 <= self.t0 <= 999:
            raise LabError(f"t0 must be between 1 and 999, not {self.t0}.")
        if not 1 <= self.steps <= self.t0:
            raise LabError(f"Inversion steps must be between 1 and t0 = {self.t0}, not {self.steps}.")
        if self.batch_size < 1:
            raise LabError("Batch size must be at least 1.")


# --- data ---------------------------------------------------------------------------------------

@dataclass
class TargetData:
    name: str
    fewshot: torch.Tensor                # [-1, 1] images the method sees
    heldout: torch.Tensor | None         # real target images it never sees (FID reference, copy scale)
    notes: list[str] = field(default_factory=list)


MAX_UPLOADS = 2000  # uploaded files per request


def images_from_files(files, size: int, channels: int) -> tuple[torch.Tensor, list[str]]:
    """Uploaded files (paths or objects with ``.name``) as uint8 ``[N, C, size, size]`` plus notices."""
    paths = [Path(f) if isinstance(f, (str, os.PathLike)) else Path(f.name) for f in (files or []) if f is not None]
    if not paths:
        raise LabError("No images were uploaded: add image files (PNG, JPEG, ...) of the unseen domain.")
    if len(paths) > MAX_UPLOADS:
        raise LabError(f"{len(paths)} files were uploaded; give at most {MAX_UPLOADS} (or put them in a folder "
                       "under the data folder and choose 'folder').")
    images, sizes, bad, first = [], set(), [], ""
    for path in paths:
        try:
            image = open_image(path)
        except LabError as err:
            bad.append(path.name)
            first = first or str(err)
            continue
        sizes.add(image.size)
        images.append(image_to_tensor(image, size, "L" if channels == 1 else "RGB"))
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise LabError(f"{len(bad)} of {len(paths)} uploaded files cannot be used ({shown}). {first} Upload "
                       f"only image files ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    return torch.stack(images), _size_notes(sizes, size, channels)


def _size_notes(sizes: set, size: int, channels: int) -> list[str]:
    other = sorted(s for s in sizes if s != (size, size))
    if not other:
        return []
    shown = ", ".join(f"{w}×{h}" for w, h in other[:4]) + (" ..." if len(other) > 4 else "")
    return [f"Images of size {shown} were center-cropped and resized to the model's {size}×{size} "
            f"({'grey' if channels == 1 else 'RGB'})."]


def _folder_sizes(path: str) -> set:
    sizes = set()
    for file in sorted(Path(path).expanduser().rglob("*"))[:2000]:
        if file.suffix.lower() in IMAGE_SUFFIXES:
            try:
                with Image.open(file) as im:
                    sizes.add(im.size)
            except Exception:  # noqa: BLE001 — load_dataset reports unreadable files itself
                pass
    return sizes


def _split(images: torch.Tensor, shots: int, seed: int, name: str) -> TargetData:
    """A user's own images: a seeded few-shot set, the rest held out (when there are enough)."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    x = images[order].float().div(127.5).sub(1)
    notes = []
    if len(x) < 2:
        raise LabError(f"{name} has {len(x)} image(s): give at least 2 images of the unseen domain.")
    if shots >= len(x):
        notes.append(f"{name} has {len(x)} images: all of them form the few-shot set, none is held out "
                     "(FID and the held-out copy scale need more images).")
        return TargetData(name, x, None, notes)
    held = x[shots:]
    return TargetData(name, x[:shots], held if len(held) >= 2 else None, notes)


def load_target(config: DiscoveryConfig, model: DiffusionModel, files=None, heldout: int = 0) -> TargetData:
    """The few-shot set and (up to ``heldout``) held-out images of the unseen domain, at the model's
    size and channels. A dataset's few-shot set is a seeded class-balanced subset of its training
    split and its held-out images come from the test split; a folder or upload is split at random."""
    size, channels = model.size, model.channels
    if config.target == "upload":
        images, notes = images_from_files(files, size, channels)
        data = _split(images, config.shots, config.seed, "The upload")
        data.notes = notes + data.notes
        return data
    if config.target == "folder":
        path = str(config.target_path).strip()
        notes = _size_notes(_folder_sizes(path), size, channels)
        ds = load_dataset("folder", path=path, size=size, channels=channels)
        data = _split(ds.images, config.shots, config.seed, f"The folder {path}")
        data.notes = notes + data.notes
        return data
    from lab.data import dataset

    train = load_dataset(config.target, "train", size=size, channels=channels, limit=config.shots, seed=config.seed,
                         style=config.target_style)
    notes = list(train.notes)
    native, native_c = dataset(config.target).size, dataset(config.target).channels
    if native != size or native_c != channels:
        notes.append(f"{config.target} images are {native} px {'grey' if native_c == 1 else 'RGB'}: resized to the "
                     f"model's {size} px {'grey' if channels == 1 else 'RGB'}.")
    if config.shots > len(train):
        raise LabError(f"The training split of {config.target} has {len(train)} images, fewer than {config.shots} shots.")
    held = None
    if heldout > 0:
        test = load_dataset(config.target, "test", size=size, channels=channels, limit=heldout, seed=config.seed,
                            style=config.target_style)
        held = test.take(len(test), seed=config.seed, stratified=False).to_float()  # class-balanced, shuffled
    return TargetData(train.name, train.to_float(), held, notes)


def in_domain_name(config: DiscoveryConfig, model: DiffusionModel) -> tuple[str, str] | None:
    """(dataset, style) of the model's own training data, or the one asked for; None to skip."""
    if config.in_domain == "none":
        return None
    if config.in_domain != "auto":
        if config.in_domain not in DATASETS or config.in_domain == "folder":
            raise LabError(f"Unknown in-domain dataset {config.in_domain!r}: use auto, none or one of "
                           f"{', '.join(d for d in DATASETS if d != 'folder')}.")
        return config.in_domain, "plain"
    name = str(model.info.get("data", {}).get("name", ""))
    base, _, style = name.partition("-")
    if base not in DATASETS or base == "folder":
        return None
    return base, style if style in STYLES else "plain"


def load_in_domain(config: DiscoveryConfig, model: DiffusionModel, n: int) -> tuple[torch.Tensor | None, str]:
    which = in_domain_name(config, model)
    if which is None:
        return None, ""
    ds = load_dataset(which[0], "test", size=model.size, channels=model.channels, limit=n, seed=config.seed,
                      style=which[1])
    return ds.to_float(), ds.name


# --- inversion and generation --------------------------------------------------------------------

def _batched(fn, x: torch.Tensor, batch_size: int, progress: ProgressFn | None, desc: str) -> torch.Tensor:
    out, batches = [], max(1, math.ceil(len(x) / batch_size))
    for b in range(batches):
        def sub(i, total, _desc, b=b):
            if progress is not None:
                progress(b * total + i, batches * total, desc)
        out.append(fn(x[b * batch_size:(b + 1) * batch_size], sub).float().cpu())
    return torch.cat(out)


def _fingerprint(model: DiffusionModel) -> str:
    h = hashlib.sha1()
    for name, p in model.unet.state_dict().items():
        h.update(name.encode())
        h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def unclipped(scheduler):
    """The same schedule without x̂0-clipping (``clip_sample``). Clipping the predicted x̂0 to [-1, 1]
    acts differently on the way up (inversion) and down (generation), so the round trip no longer
    closes: with the MNIST DDPM, MNIST digits came back at 14 dB PSNR with clipping and 32.6 dB
    without (t0 = 900, 50 steps). Inversion and generation from latents both use this schedule."""
    return scheduler.__class__.from_config(scheduler.config, clip_sample=False)


def invert(model: DiffusionModel, images: torch.Tensor, t0: int, steps: int, batch_size: int = 250,
           progress: ProgressFn | None = None, cache: bool = True) -> torch.Tensor:
    """x_0 → x_{t0} by deterministic DDIM inversion, in batches; cached in LAB_CACHE_DIR by content."""
    device = model.device
    scheduler = unclipped(model.scheduler)
    path = None
    if cache:
        h = hashlib.sha1(f"{_fingerprint(model)}|{t0}|{steps}|{device.type}|noclip".encode())
        h.update(images.float().cpu().numpy().tobytes())
        path = get_settings().cache_dir / "discovery-latents" / f"{h.hexdigest()}.pt"
        if path.exists():
            try:
                return torch.load(path, weights_only=True)
            except Exception:  # noqa: BLE001 — a broken cache file is recomputed
                path.unlink(missing_ok=True)
    z = _batched(lambda x, p: ddim_invert(model.unet, x.to(device), scheduler, steps, t0=t0, progress=p),
                 images, batch_size, progress, "DDIM inversion")
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(z, path)
        except OSError:
            pass
    return z


def generate(model: DiffusionModel, latents: torch.Tensor, t0: int | None, steps: int, batch_size: int = 250,
             progress: ProgressFn | None = None, unet=None) -> torch.Tensor:
    """x_{t0} → x_0 with DDIM, η = 0. From a latent (``t0``) without x̂0-clipping, to mirror ``invert``;
    from pure noise x_T (``t0`` None, the whole chain) with the model's own schedule, as it is usually sampled."""
    net, device = unet or model.unet, model.device if unet is None else next(unet.parameters()).device
    scheduler = model.scheduler if t0 is None else unclipped(model.scheduler)
    return _batched(lambda x, p: ddim_sample(net, x.to(device).float(), scheduler, steps, eta=0.0, t0=t0,
                                             snapshots=1, progress=p).samples,
                    latents, batch_size, progress, "DDIM generation")


def t0_used(model: DiffusionModel, t0: int, steps: int) -> int:
    return int(ddim_timesteps(model.scheduler, steps, t0=t0)[0])


def psnr_mse(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image (PSNR in dB, MSE) on the [0, 1] scale: MSE = mean((x − y)/2)², PSNR = 10 log10(1 / MSE)
    (capped at 100 dB for identical images)."""
    mse = ((x.float() - y.float()) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10)), mse


def load_model(config: DiscoveryConfig) -> DiffusionModel:
    config.validate()
    model = load_diffusion(config.model, device=resolve_device(config.device))
    if model.kind != "ddpm":
        raise LabError(f"{config.model} is a {model.kind} model: DDIM inversion needs a DDPM (ε-prediction) model "
                       "such as ddpm-mnist.")
    return model


def _scale(model: DiffusionModel, columns: int) -> int:
    return max(1, 320 // (model.size * max(columns, 1)) + 1) if model.size < 64 else 1


# --- reconstruction --------------------------------------------------------------------------------

@dataclass
class ReconstructionResult:
    rows: list[dict]
    grids: list[tuple[Image.Image, str]] = field(repr=False)
    figure: object = field(repr=False)
    t0s: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def psnr(self, domain: str, t0: int | None = None) -> float | None:
        for row in self.rows:
            if row["domain"] == domain and (t0 is None or row["t0"] == t0):
                return row["psnr_mean"]
        return None

    def save(self, run) -> None:
        from lab.viz.export import save_figure, write_csv

        for (grid, _), t0 in zip(self.grids, self.t0s):
            grid.save(run.add(f"reconstruction_t0_{t0}.png"))
        write_csv(run.add("reconstruction.csv"), self.rows)
        for path in save_figure(self.figure, run.path("psnr_vs_t0"), formats=("html", "png", "svg", "pdf")):
            run.add(path.name)
        run.save_json("reconstruction.json", {"rows": self.rows, "notes": self.notes})


def parse_t0s(text) -> list[int]:
    try:
        values = [int(float(v)) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise LabError(f"t0 values must be whole numbers separated by commas, e.g. 300, 600, 900 (got {text!r}).")
    if not values or len(values) > 8:
        raise LabError("Give 1 to 8 values of t0, e.g. 300, 600, 900.")
    for v in values:
        if not 1 <= v <= 999:
            raise LabError(f"t0 must be between 1 and 999, not {v}.")
    return sorted(set(values))


def run_reconstruct(config: DiscoveryConfig, t0s: list[int] | None = None, n_images: int = 16, files=None,
                    progress: ProgressFn | None = None, model: DiffusionModel | None = None) -> ReconstructionResult:
    """Invert ``n_images`` unseen (and in-domain) images at each t0 and generate them back."""
    config.validate()
    model = model or load_model(config)
    t0s = t0s or [config.t0]
    if not 1 <= n_images <= 1000:
        raise LabError(f"Images to reconstruct must be between 1 and 1000, not {n_images}.")
    for t0 in t0s:
        if config.steps > t0:
            raise LabError(f"{config.steps} inversion steps do not fit below t0 = {t0}: use fewer steps or a larger t0.")
    target = load_target(replace(config, shots=max(config.shots, n_images)), model, files)
    sets = [(f"unseen ({target.name})", target.fewshot[:n_images])]
    in_dom, in_name = load_in_domain(config, model, n_images)
    notes = list(target.notes)
    if in_dom is not None:
        sets.append((f"in-domain ({in_name})", in_dom))
    else:
        notes.append("No in-domain contrast: the model's card does not name a dataset the lab can load "
                     "(choose one under 'In-domain data').")
    rows, grids, total = [], [], len(t0s) * len(sets)
    for k, t0 in enumerate(t0s):
        shown = []
        for s, (domain, x) in enumerate(sets):
            def sub(i, n, desc, k=k, s=s, t0=t0):
                if progress is not None:
                    progress((k * len(sets) + s) * 1000 + int(1000 * i / max(n, 1)), total * 1000,
                             f"t0 = {t0}, {domain}: {desc}")
            start = time.perf_counter()
            z = invert(model, x, t0, config.steps, config.batch_size, progress=lambda i, n, d: sub(i, 2 * n, d))
            back = generate(model, z, t0, config.steps, config.batch_size,
                            progress=lambda i, n, d: sub(n + i, 2 * n, d))
            psnr, mse = psnr_mse(back, x)
            rows.append({"domain": domain.split(" ")[0], "data": domain, "t0": t0,
                         "t0_used": t0_used(model, t0, config.steps), "steps": config.steps, "n": len(x),
                         "mse_mean": float(mse.mean()), "psnr_mean": float(psnr.mean()),
                         "psnr_std": float(psnr.std()) if len(x) > 1 else 0.0,
                         "seconds": round(time.perf_counter() - start, 2)})
            shown += [x[:10], back[:10]]
        columns = min(10, n_images)
        label = f"t0 = {t0} (rows: " + ", ".join(f"{d} / reconstruction" for d, _ in sets) + ")"
        grids.append((image_grid(torch.cat(shown), nrow=columns, scale=_scale(model, columns)), label))
    series = {}
    for domain, _ in sets:
        key = domain.split(" ")[0]
        series[domain] = [r["psnr_mean"] for r in rows if r["domain"] == key]
    errors = {domain: [r["psnr_std"] for r in rows if r["domain"] == domain.split(" ")[0]] for domain, _ in sets}
    fig = line_figure(t0s, series, f"DDIM reconstruction (η = 0, {config.steps} steps) by inversion depth",
                      "t0", "PSNR (dB, mean ± std)", errors=errors)
    return ReconstructionResult(rows, grids, fig, t0s, notes)


# --- inversion statistics ------------------------------------------------------------------------

@dataclass
class StatsResult:
    rows: list[dict]
    norm_figure: object = field(repr=False)
    angle_figure: object = field(repr=False)
    separability: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def save(self, run) -> None:
        from lab.viz.export import save_figure, write_csv

        write_csv(run.add("latent_stats.csv"), self.rows)
        for fig, stem in ((self.norm_figure, "latent_norms"), (self.angle_figure, "latent_angles")):
            for path in save_figure(fig, run.path(stem)):
                run.add(path.name)
        run.save_json("latent_stats.json", {"rows": self.rows, "separability": self.separability,
                                            "notes": self.notes})


def _density(values: dict[str, np.ndarray], title: str, xlabel: str, bins: int = 40):
    lo = min(float(v.min()) for v in values.values())
    hi = max(float(v.max()) for v in values.values())
    if hi <= lo:
        hi = lo + 1e-6
    edges = np.linspace(lo, hi, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    series = {k: np.histogram(v, bins=edges, density=True)[0].tolist() for k, v in values.items()}
    return line_figure(centres.tolist(), series, title, xlabel, "density", markers=False)


def _separability(a: torch.Tensor, b: torch.Tensor, seed: int) -> dict:
    """5-fold cross-validated accuracy of a linear SVM telling two latent sets apart (0.5 = chance)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    n = min(len(a), len(b))
    if n < 5:
        return {}
    x = torch.cat([geo.flat(a[:n]), geo.flat(b[:n])]).numpy()
    y = np.r_[np.zeros(n), np.ones(n)]
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    scores = cross_val_score(make_pipeline(StandardScaler(), LinearSVC(C=0.01, max_iter=5000)), x, y, cv=folds)
    return {"accuracy": float(scores.mean()), "std": float(scores.std()), "n_per_set": n, "folds": 5}


def latent_summary(name: str, z: torch.Tensor) -> dict:
    d = z[0].numel()
    n = geo.norms(z)
    a = geo.pairwise_angles(z) if len(z) > 1 else torch.zeros(1, dtype=torch.float64)
    f = geo.flat(z)
    return {"set": name, "n": len(z), "d": d, "norm_mean": float(n.mean()), "norm_std": float(n.std()),
            "sqrt_d": math.sqrt(d), "angle_mean": float(a.mean()), "angle_std": float(a.std()),
            "angle_min": float(a.min()), "entry_mean": float(f.mean()), "entry_std": float(f.std()),
            "mean_latent_norm": float(f.mean(0).norm())}


def run_stats(config: DiscoveryConfig, files=None, progress: ProgressFn | None = None,
              model: DiffusionModel | None = None) -> StatsResult:
    """Norms and pairwise angles of the inverted few-shot set (and in-domain images) vs N(0, I)."""
    config.validate()
    model = model or load_model(config)
    target = load_target(config, model, files)
    x = target.fewshot
    sets = {f"unseen inverted ({target.name})": invert(model, x, config.t0, config.steps, config.batch_size,
                                                       progress=progress)}
    in_dom, in_name = load_in_domain(config, model, len(x))
    if in_dom is not None:
        sets[f"in-domain inverted ({in_name})"] = invert(model, in_dom, config.t0, config.steps, config.batch_size,
                                                         progress=progress)
    sets["Gaussian N(0, I)"] = randn(tuple(sets[next(iter(sets))].shape), config.seed + 12345)
    rows = [latent_summary(k, v) for k, v in sets.items()]
    d = rows[0]["d"]
    t = t0_used(model, config.t0, config.steps)
    norm_fig = _density({k: geo.norms(v).numpy() for k, v in sets.items()},
                        f"Latent norms at t0 = {t} (√d = {math.sqrt(d):.1f})", "‖x_t0‖")
    angle_fig = _density({k: geo.pairwise_angles(v).numpy() for k, v in sets.items()},
                         f"Pairwise angles between latents at t0 = {t}", "angle (degrees)")
    names = list(sets)
    separability = {}
    if in_dom is not None:
        separability["unseen vs in-domain"] = _separability(sets[names[0]], sets[names[1]], config.seed)
    separability["unseen vs Gaussian"] = _separability(sets[names[0]], sets[names[-1]], config.seed)
    return StatsResult(rows, norm_fig, angle_fig, separability, target.notes)


# --- evaluation -----------------------------------------------------------------------------------

def feature_classifier(config: DiscoveryConfig) -> tuple[str | None, str]:
    """(classifier for FID/diversity, a note when there is none)."""
    if config.classifier not in ("", "auto"):
        return (None, "No feature classifier chosen: FID and feature diversity are skipped.") \
            if config.classifier == "none" else (config.classifier, "")
    name = FEATURE_CLASSIFIERS.get(config.target) if config.target_style == "plain" else None
    if name is None:
        return None, (f"No classifier suited to {config.target}{'-' + config.target_style if config.target_style != 'plain' else ''} "
                      "is shipped: FID and feature diversity are skipped (name one under 'Feature classifier').")
    if not (get_settings().checkpoint_dir / name).is_dir():
        return None, (f"The feature classifier {name} is not in {get_settings().checkpoint_dir}: FID is skipped "
                      f"(train it: python -m lab train classifier --data {config.target} --out checkpoints/{name}).")
    return name, ""


def evaluate(samples: torch.Tensor, target: TargetData, classifier: str | None, fid_n: int | None = None,
             copy_ratio: float = 0.5, with_floor: bool = True, progress: ProgressFn | None = None) -> dict:
    """FID/KID of ``samples`` against held-out target images (same n), the floor, diversity, copies."""
    from lab.metrics.diversity import copy_report, diversity_report
    from lab.metrics.fid import fid_kid

    out: dict = {"n_samples": len(samples)}
    copies = copy_report(samples, target.fewshot, target.heldout, ratio=copy_ratio)
    out["copies"] = {k: v for k, v in copies.items() if k != "nearest_index"}
    out["nearest_index"] = copies["nearest_index"]
    out["diversity"] = diversity_report(samples, classifier)
    out["diversity_fewshot"] = diversity_report(target.fewshot, classifier)
    if classifier is None or target.heldout is None:
        out["fid"] = None
        return out
    n = min(fid_n or len(samples), len(samples), len(target.heldout))
    if n < 2:
        out["fid"] = None
        return out
    if progress is not None:
        progress(0, 2, "Computing FID")
    reference = target.heldout[:n]
    out["fid"] = fid_kid(samples[:n], reference, "classifier", classifier).as_dict()
    out["diversity_real"] = diversity_report(reference, classifier)
    out["floor"] = None
    if with_floor and len(target.heldout) >= 2 * n:
        out["floor"] = fid_kid(target.heldout[n:2 * n], reference, "classifier", classifier).as_dict()
    if progress is not None:
        progress(2, 2, "Computing FID")
    return out


def _heldout_needed(settings) -> int:
    """Held-out images to load: 2n for FID and its floor, at least 1000 for the copy scale."""
    return max(1000, 2 * (settings.fid_n or settings.count))


def metric_rows(label: str, metrics: dict) -> dict:
    fid, floor = metrics.get("fid"), metrics.get("floor")
    div = metrics["diversity"]
    return {"samples": label, "n": metrics["n_samples"],
            "FID (classifier features)": None if fid is None else round(fid["fid"], 3),
            "KID": None if fid is None or fid["kid"] is None else round(fid["kid"], 4),
            "FID n": None if fid is None else fid["n"],
            "real-vs-real floor": None if floor is None else round(floor["fid"], 3),
            "diversity (features)": round(div["diversity_features"], 3) if "diversity_features" in div else None,
            "diversity (pixels RMS)": round(div["diversity_pixels"], 4),
            "NN distance to few-shot (median)": round(metrics["copies"]["nn_distance_median"], 4),
            "copy fraction": round(metrics["copies"]["nn_copy_fraction"], 4)}


def real_rows(metrics: dict) -> list[dict]:
    """Reference rows: the held-out real images and the few-shot set themselves."""
    rows = []
    if metrics.get("diversity_real"):
        d = metrics["diversity_real"]
        rows.append({"samples": "real held-out (reference)", "n": d["n"],
                     "diversity (features)": round(d.get("diversity_features", float("nan")), 3),
                     "diversity (pixels RMS)": round(d["diversity_pixels"], 4),
                     "NN distance to few-shot (median)": round(metrics["copies"]["real_nn_distance_median"], 4)})
    d = metrics["diversity_fewshot"]
    rows.append({"samples": "few-shot set", "n": d["n"],
                 "diversity (features)": round(d["diversity_features"], 3) if "diversity_features" in d else None,
                 "diversity (pixels RMS)": round(d["diversity_pixels"], 4)})
    return rows


# --- latent discovery ----------------------------------------------------------------------------

@dataclass
class DiscoverySettings:
    method: str = "slerp"            # slerp | mix | gaussian (lab.diffusion.latents.PROPOSALS)
    count: int = 64                  # accepted latents to generate
    norm_tolerance: float | None = 0.02     # relative; None: no norm check
    origin_tolerance: float | None = 2.0    # degrees; None: no check
    pair_tolerance: float | None = 2.0      # degrees; None: no check
    t_margin: float = 0.2            # slerp t ∈ [margin, 1 − margin]
    mix_count: int = 3               # latents per mix
    max_candidates: int = 20_000     # stop proposing after this many
    metrics: bool = True
    fid_n: int | None = None         # FID sample count (default: all samples)
    copy_ratio: float = 0.5

    def validate(self) -> None:
        if self.method not in geo.PROPOSALS:
            raise LabError(f"Unknown proposal {self.method!r}: choose one of {', '.join(geo.PROPOSALS)}.")
        if not 1 <= self.count <= 10_000:
            raise LabError(f"The number of new samples must be between 1 and 10000, not {self.count}.")
        if self.max_candidates < self.count:
            raise LabError("The candidate budget must be at least the number of samples asked for.")


@dataclass
class DiscoveryResult:
    samples: torch.Tensor = field(repr=False)
    accepted: int
    proposed: int
    thresholds: geo.GeometryThresholds
    targets: dict
    provenance: list[str]
    metrics: dict
    grid: Image.Image = field(repr=False)
    pairs_grid: Image.Image = field(repr=False)
    figure: object = field(repr=False)
    seconds: dict
    t0_used: int
    notes: list[str] = field(default_factory=list)

    @property
    def acceptance(self) -> float:
        return self.accepted / max(self.proposed, 1)

    def rows(self) -> list[dict]:
        if not self.metrics:
            return []
        return [metric_rows("discovered", self.metrics), *real_rows(self.metrics)]

    def summary(self) -> dict:
        return {"accepted": self.accepted, "proposed": self.proposed, "acceptance": self.acceptance,
                "thresholds": asdict(self.thresholds), "targets": self.targets, "t0_used": self.t0_used,
                "seconds": self.seconds, "metrics": {k: v for k, v in self.metrics.items() if k != "nearest_index"},
                "notes": self.notes}

    def save(self, run) -> None:
        from lab.viz.export import save_figure, write_csv

        self.grid.save(run.add("discovered.png"))
        self.pairs_grid.save(run.add("nearest_fewshot.png"))
        torch.save(self.samples, run.add("discovered.pt"))
        if self.rows():
            write_csv(run.add("metrics.csv"), self.rows())
        write_csv(run.add("provenance.csv"), [{"sample": i, "made_by": p} for i, p in enumerate(self.provenance)])
        for path in save_figure(self.figure, run.path("geometry")):
            run.add(path.name)
        run.save_json("discovery.json", self.summary())
        m = self.metrics
        run.log_metrics(acceptance=self.acceptance, accepted=self.accepted,
                        fid=m.get("fid", {}).get("fid") if m.get("fid") else None,
                        nn_copy_fraction=m.get("copies", {}).get("nn_copy_fraction"))


def _pairs_grid(model, samples, fewshot, nearest, columns: int = 8) -> Image.Image:
    """Row pairs: samples, and under each its nearest few-shot image (the copy check, by eye)."""
    k = min(len(samples), 4 * columns)
    rows = []
    for start in range(0, k, columns):
        idx = torch.arange(start, min(start + columns, k))
        rows += [samples[idx], fewshot[torch.as_tensor(nearest)[idx]]]
    return image_grid(torch.cat(rows), nrow=columns, scale=_scale(model, columns))


def _prepare(config: DiscoveryConfig, settings, files, model: DiffusionModel | None):
    """Check the settings, load the frozen model (unless given) and the target images."""
    settings.validate()
    config.validate()
    model = model or load_model(config)
    return model, load_target(config, model, files, heldout=_heldout_needed(settings) if settings.metrics else 0)


def run_discover(config: DiscoveryConfig, settings: DiscoverySettings, files=None,
                 progress: ProgressFn | None = None, model: DiffusionModel | None = None) -> DiscoveryResult:
    """Invert the few-shot set, propose and filter new latents, generate them with the frozen model."""
    from lab.metrics.diversity import copy_report

    model, target = _prepare(config, settings, files, model)
    notes, seconds = list(target.notes), {}
    start = time.perf_counter()
    refs = invert(model, target.fewshot, config.t0, config.steps, config.batch_size, progress=progress)
    seconds["inversion"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    ref_measures = geo.reference_geometry(refs)
    targets = {k: float(v.mean()) for k, v in ref_measures.items()}
    thresholds, _ = geo.thresholds_around(refs, settings.norm_tolerance, settings.origin_tolerance,
                                          settings.pair_tolerance, targets=targets)
    g = torch.Generator().manual_seed(config.seed)
    kept, provenance, proposed, have = [], [], 0, 0
    shown = {"accepted": [], "rejected": []}
    while have < settings.count and proposed < settings.max_candidates:
        need = settings.count - have
        batch = min(max(4 * need, 256), settings.max_candidates - proposed)
        z, names = geo.propose(refs, batch, settings.method, g, t_margin=settings.t_margin,
                               mix_count=settings.mix_count)
        measures = geo.geometry(z, refs)
        ok = geo.passes(measures, thresholds)
        proposed += batch
        idx = ok.nonzero().squeeze(1)[:need]
        kept.append(z[idx])
        provenance += [names[i] for i in idx.tolist()]
        have += len(idx)
        for key, mask in (("accepted", ok), ("rejected", ~ok)):
            shown[key].append(torch.stack([measures[m][mask] for m in geo.MEASURES], 1)[:1000])
        if progress is not None:
            progress(have, settings.count, f"Geometric filter ({proposed} proposed)")
    seconds["proposals"] = round(time.perf_counter() - start, 2)
    z = torch.cat(kept)
    if len(z) == 0:
        raise LabError(f"None of {proposed} {settings.method} proposals passed the geometric checks "
                       f"({thresholds.describe()}): widen the tolerances or switch a check off.")
    if len(z) < settings.count:
        notes.append(f"Only {len(z)} of {proposed} proposals passed the checks (budget {settings.max_candidates}): "
                     "widen the tolerances for more samples.")
    start = time.perf_counter()
    samples = generate(model, z, config.t0, config.steps, config.batch_size, progress=progress)
    seconds["generation"] = round(time.perf_counter() - start, 2)
    metrics = {}
    if settings.metrics:
        classifier, note = feature_classifier(config)
        notes += [note] if note else []
        metrics = evaluate(samples, target, classifier, settings.fid_n, settings.copy_ratio, progress=progress)
        nearest = metrics["nearest_index"]
    else:
        nearest = copy_report(samples, target.fewshot, target.heldout, settings.copy_ratio)["nearest_index"]
    columns = min(10, len(samples))
    grid = image_grid(samples[:100], nrow=columns, scale=_scale(model, columns))
    figure = _geometry_figure(shown, ref_measures, thresholds)
    return DiscoveryResult(samples, len(z), proposed, thresholds, targets, provenance, metrics, grid,
                           _pairs_grid(model, samples, target.fewshot, nearest), figure, seconds,
                           t0_used(model, config.t0, config.steps), notes)


def _geometry_figure(shown: dict, ref_measures: dict, thresholds: geo.GeometryThresholds):
    """Angle at the origin against pair angle: proposals (accepted, rejected) and the inverted few-shot
    latents themselves (leave one out), with the accepted box when both angles are checked."""
    columns = list(geo.MEASURES)
    points, groups, hover = [], [], []
    for key in ("rejected", "accepted"):
        m = torch.cat(shown[key]) if shown[key] else torch.zeros(0, len(columns))
        points.append(m)
        groups += [f"proposal {key}"] * len(m)
    refs = torch.stack([ref_measures[c] for c in columns], 1)
    points.append(refs)
    groups += ["inverted few-shot (leave-one-out)"] * len(refs)
    allm = torch.cat(points)
    hover = [f"‖z‖ = {row[0]:.2f}" for row in allm.tolist()]
    xi, yi = columns.index("origin_angle"), columns.index("pair_angle")
    fig = scatter_figure(allm[:, [xi, yi]].numpy(), groups, "Geometric filter: proposals against the inverted set",
                         hover=hover)
    if thresholds.origin_angle and thresholds.pair_angle:
        (x0, x1), (y0, y1) = thresholds.origin_angle, thresholds.pair_angle
        fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, line=dict(color="green", dash="dash"))
    fig.update_layout(xaxis=dict(showticklabels=True, title="mean angle at the origin to the inverted set (°)"),
                      yaxis=dict(showticklabels=True, title="mean pair angle ∠ r_i z r_j (°)"))
    return fig


# --- tuning baseline ------------------------------------------------------------------------------

@dataclass
class FinetuneSettings:
    train_steps: int = 300
    lr: float = 1e-4
    batch_size: int = 32
    ema_decay: float | None = 0.999
    count: int = 64
    metrics: bool = True
    fid_n: int | None = None
    copy_ratio: float = 0.5
    save: bool = False

    def validate(self) -> None:
        if not 1 <= self.train_steps <= 100_000:
            raise LabError(f"Fine-tuning steps must be between 1 and 100000, not {self.train_steps}.")
        if not 1 <= self.count <= 10_000:
            raise LabError(f"The number of samples must be between 1 and 10000, not {self.count}.")


@dataclass
class FinetuneResult:
    samples: torch.Tensor = field(repr=False)
    unet: object = field(repr=False)
    losses: list
    train_seconds: float
    sample_seconds: float
    metrics: dict
    grid: Image.Image = field(repr=False)
    pairs_grid: Image.Image = field(repr=False)
    loss_figure: object = field(repr=False)
    scheduler: object = field(repr=False, default=None)
    info: dict = field(default_factory=dict)   # the model card's training record, when kept
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[dict]:
        return [metric_rows("fine-tuned", self.metrics), *real_rows(self.metrics)] if self.metrics else []

    def save(self, run, keep_model: bool = False) -> None:
        from lab.viz.export import save_figure, write_csv

        self.grid.save(run.add("finetuned_samples.png"))
        self.pairs_grid.save(run.add("nearest_fewshot.png"))
        torch.save(self.samples, run.add("finetuned_samples.pt"))
        if self.rows():
            write_csv(run.add("metrics.csv"), self.rows())
        for path in save_figure(self.loss_figure, run.path("finetune_loss"), formats=("html", "png", "svg")):
            run.add(path.name)
        run.save_json("finetune.json", {"losses": self.losses, "train_seconds": self.train_seconds,
                                        "sample_seconds": self.sample_seconds, "notes": self.notes,
                                        "metrics": {k: v for k, v in self.metrics.items() if k != "nearest_index"}})
        if keep_model:
            from lab.models.store import save_diffusion

            save_diffusion(run.path("model"), self.unet, self.scheduler, "ddpm", self.info)
            run.add("model")


def run_finetune(config: DiscoveryConfig, settings: FinetuneSettings, files=None,
                 progress: ProgressFn | None = None, model: DiffusionModel | None = None) -> FinetuneResult:
    """Fine-tune a copy of the model on the few-shot set with the ε-loss, then sample with DDIM."""
    from lab.metrics.diversity import copy_report
    from lab.train.loop import TrainConfig, fit
    from lab.train.losses import EpsilonLoss
    from lab.viz.plots import loss_figure

    model, target = _prepare(config, settings, files, model)
    notes = list(target.notes)
    unet = copy.deepcopy(model.unet)
    train = TrainConfig(steps=settings.train_steps, batch_size=min(settings.batch_size, len(target.fewshot)),
                        lr=settings.lr, warmup=min(50, settings.train_steps // 10), ema_decay=settings.ema_decay,
                        checkpoint_every=settings.train_steps + 1, log_every=max(1, settings.train_steps // 50),
                        seed=config.seed, device=str(model.device))
    fitted = fit(unet, EpsilonLoss(model.scheduler), target.fewshot,
                 torch.zeros(len(target.fewshot), dtype=torch.long), train, progress=progress)
    unet.eval()
    noise = randn((settings.count, model.channels, model.size, model.size), config.seed * 7919 + 1)
    start = time.perf_counter()
    samples = generate(model, noise, None, config.steps, config.batch_size, progress=progress, unet=unet)
    sample_seconds = time.perf_counter() - start
    metrics = {}
    if settings.metrics:
        classifier, note = feature_classifier(config)
        if note:
            notes.append(note)
        metrics = evaluate(samples, target, classifier, settings.fid_n, settings.copy_ratio, progress=progress)
        nearest = metrics["nearest_index"]
    else:
        nearest = copy_report(samples, target.fewshot, target.heldout, settings.copy_ratio)["nearest_index"]
    columns = min(10, len(samples))
    grid = image_grid(samples[:100], nrow=columns, scale=_scale(model, columns))
    steps, losses = zip(*fitted.losses) if fitted.losses else ((), ())
    info = {"description": f"{config.model} fine-tuned on {len(target.fewshot)} images of {target.name} with the "
                           f"ε-loss: the tuning baseline of the Domain-discovery experiment.",
            "data": {"name": target.name, "split": "train", "count": len(target.fewshot), "size": model.size,
                     "channels": model.channels},
            "base_model": config.model, "train_config": asdict(train), "steps": fitted.steps,
            "wall_seconds": round(fitted.wall_seconds, 1), "device": fitted.device,
            "threads": torch.get_num_threads(), "parameters": sum(p.numel() for p in unet.parameters()),
            "final_loss": fitted.losses[-1][1] if fitted.losses else float("nan"), "losses": fitted.losses}
    return FinetuneResult(samples, unet, list(fitted.losses), fitted.wall_seconds, sample_seconds, metrics, grid,
                          _pairs_grid(model, samples, target.fewshot, nearest),
                          loss_figure(list(steps), list(losses), "Fine-tuning loss (ε-MSE)"), model.scheduler, info,
                          notes)
