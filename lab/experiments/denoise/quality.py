"""Quality of a model's samples: FID/KID against real test images (with the real-vs-real floor at the same n)
and the lab classifier's confident fraction and class entropy."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from lab.errors import LabError
from lab.experiments.denoise.config import DenoiseConfig
from lab.experiments.denoise.sample import load_for, sample_many
from lab.metrics import DOMAIN_CLASSIFIERS
from lab.progress import ProgressFn


@dataclass
class QualityResult:
    n: int
    fid: dict                  # FIDResult.as_dict(): fid, kid, n, feature network, label
    floor: dict | None         # the same between two disjoint real sets of size n
    quality: dict              # confident fraction, class entropy, histogram (grey models); else only n
    sampling_seconds: float

    def rows(self) -> list[dict]:
        row = {"n": self.n, self.fid["label"]: round(self.fid["fid"], 2),
               "KID": None if self.fid["kid"] is None else round(self.fid["kid"], 3),
               "real-vs-real floor": None if self.floor is None else round(self.floor["fid"], 2),
               "feature network": self.fid["feature_network"],
               "confident fraction": _rounded(self.quality.get("confident_fraction")),
               "class entropy": _rounded(self.quality.get("class_entropy")),
               "sampling seconds": round(self.sampling_seconds, 1)}
        return [row]

    def save(self, run) -> None:
        run.save_json("quality.json", asdict(self))
        run.log_metrics(fid=self.fid["fid"], fid_floor=None if self.floor is None else self.floor["fid"],
                        confident_fraction=self.quality.get("confident_fraction"),
                        class_entropy=self.quality.get("class_entropy"), n=self.n)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def reference_images(dataset: str, n: int, size: int, channels: int, split: str = "test",
                     seed: int = 0) -> torch.Tensor:
    from lab.data import load_dataset

    ds = load_dataset(dataset, split, size=size, channels=channels)
    if n > len(ds):
        raise LabError(f"The {split} split of {dataset} has {len(ds)} images; FID with n = {n} needs more.")
    return ds.take(n, seed=seed, stratified=False).to_float()


def trained_on(model) -> str | None:
    """The dataset a model's record names ("mnist-sketch" → mnist), or None (a loaded model, or its info dict)."""
    info = model if isinstance(model, dict) else model.info
    name = info.get("data", {}).get("name")
    return name.split("-")[0] if name else None


@dataclass
class Generated:
    """Samples of any generative model of the lab (DDPM, score model, GAN) with what FID needs to know."""
    samples: torch.Tensor
    size: int
    channels: int
    info: dict
    seconds: float


def generate_for_quality(config: DenoiseConfig, n: int, progress: ProgressFn | None = None) -> Generated:
    """``n`` samples of ``config.model``: a diffusion model with the configured sampler, a GAN with z ~ N(0, I)
    (seeded by ``config.seed``)."""
    from lab.models.store import read_info, resolve_model_path

    where = resolve_model_path(config.model)
    info = read_info(where) if not isinstance(where, str) else {}
    start = time.perf_counter()
    if info.get("kind") == "gan":
        from lab.device import resolve_device
        from lab.models.gan import gan_samples, load_generator

        g = load_generator(where, resolve_device(config.device))
        samples = gan_samples(g, n, seed=config.seed, batch_size=config.batch_size)
        if progress is not None:
            progress(1, 1, f"Sampling {n} images")
        return Generated(samples, g.config.image_size, g.config.channels, info, time.perf_counter() - start)
    model = load_for(config)
    samples = sample_many(model, config, n, progress=progress)
    return Generated(samples, model.size, model.channels, model.info, time.perf_counter() - start)


def run_quality(config: DenoiseConfig, n: int = 1000, reference: str | None = None,
                feature_network: str = "classifier", classifier: str | None = None,
                with_floor: bool = True, progress: ProgressFn | None = None,
                samples: torch.Tensor | None = None) -> QualityResult:
    """Sample ``n`` images and measure FID/KID against ``n`` real test images, plus the real-vs-real floor.
    ``classifier`` (default: the lab's classifier of the reference domain, ``DOMAIN_CLASSIFIERS``) gives the
    "classifier" FID features and the confident fraction / class entropy; faces have none (use face-api)."""
    from lab.metrics.fid import fid_kid
    from lab.metrics.quality import sample_quality

    if n < 2:
        raise LabError(f"FID needs at least 2 samples, not {n}.")
    if samples is None:
        generated = generate_for_quality(config, n, progress)
    else:
        model = load_for(config)
        generated = Generated(samples, model.size, model.channels, model.info, 0.0)
    samples, seconds = generated.samples, generated.seconds
    reference = (reference or "").split("-")[0] or trained_on(generated.info)
    if not reference:
        raise LabError("This model does not say what data it was trained on: choose a reference dataset.")
    classifier = classifier or DOMAIN_CLASSIFIERS.get(reference)
    if feature_network == "classifier" and classifier is None:
        raise LabError(f"No lab classifier judges {reference} images: choose the face-api features (faces) or "
                       "inception.")
    real = reference_images(reference, n, generated.size, generated.channels)
    if progress is not None:
        progress(0, 1, "Computing FID")
    fid = fid_kid(samples, real, feature_network, classifier if feature_network == "classifier" else None)
    floor = None
    if with_floor:
        other = reference_images(reference, n, generated.size, generated.channels, split="train", seed=1)
        floor = fid_kid(other, real, feature_network,
                        classifier if feature_network == "classifier" else None).as_dict()
    quality = sample_quality(samples, classifier) if classifier else {"n": len(samples)}
    if progress is not None:
        progress(1, 1, "Computing FID")
    return QualityResult(n, fid.as_dict(), floor, quality, seconds)
