"""The inputs of every action: the frozen DDPM, the unseen domain's few-shot and held-out images at the model's
size and channels, and the in-domain contrast set."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lab.data import DATASETS, STYLES, dataset, load_dataset
from lab.data.uploads import folder_sizes, images_from_files, size_notes
from lab.device import resolve_device
from lab.diffusion.cache import invert_cached
from lab.diffusion.samplers import ddim_timesteps
from lab.errors import LabError
from lab.experiments.discovery.config import DiscoveryConfig
from lab.models.loaded import LoadedModel
from lab.models.store import load_diffusion
from lab.progress import ProgressFn


@dataclass
class TargetData:
    name: str
    fewshot: torch.Tensor                # [-1, 1] images the method sees
    heldout: torch.Tensor | None         # real target images it never sees (FID reference, copy scale)
    notes: list[str] = field(default_factory=list)


def load_model(config: DiscoveryConfig) -> LoadedModel:
    """The frozen DDPM of ``config`` (validated first); LabError for a model DDIM cannot invert."""
    config.validate()
    model = load_diffusion(config.model, device=resolve_device(config.device))
    if model.kind != "ddpm":
        raise LabError(f"{config.model} is a {model.kind} model: DDIM inversion needs a DDPM (ε-prediction) model "
                       "such as ddpm-mnist.")
    return model


def t0_used(model: LoadedModel, t0: int, steps: int) -> int:
    """The timestep the DDIM grid of ``steps`` steps actually reaches for ``t0``."""
    return int(ddim_timesteps(model.scheduler, steps, t0=t0)[0])


def split_own(images: torch.Tensor, shots: int, seed: int, name: str) -> TargetData:
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


def load_target(config: DiscoveryConfig, model: LoadedModel, files=None, heldout: int = 0) -> TargetData:
    """The few-shot set and (up to ``heldout``) held-out images of the unseen domain, at the model's
    size and channels. A dataset's few-shot set is a seeded class-balanced subset of its training
    split and its held-out images come from the test split; a folder or upload is split at random."""
    size, channels = model.size, model.channels
    if config.target == "upload":
        images, notes = images_from_files(files, size, channels)
        data = split_own(images, config.shots, config.seed, "The upload")
        data.notes = notes + data.notes
        return data
    if config.target == "folder":
        path = str(config.target_path).strip()
        notes = size_notes(folder_sizes(path), size, channels)
        ds = load_dataset("folder", path=path, size=size, channels=channels)
        data = split_own(ds.images, config.shots, config.seed, f"The folder {path}")
        data.notes = notes + data.notes
        return data
    train = load_dataset(config.target, "train", size=size, channels=channels, limit=config.shots, seed=config.seed,
                         style=config.target_style)
    notes = list(train.notes)
    native, native_c = dataset(config.target).size, dataset(config.target).channels
    if native != size or native_c != channels:
        notes.append(f"{config.target} images are {native} px {'grey' if native_c == 1 else 'RGB'}: resized to the "
                     f"model's {size} px {'grey' if channels == 1 else 'RGB'}.")
    if config.shots > len(train):
        raise LabError(f"The training split of {config.target} has {len(train)} images, fewer than {config.shots} "
                       "shots.")
    held = None
    if heldout > 0:
        test = load_dataset(config.target, "test", size=size, channels=channels, limit=heldout, seed=config.seed,
                            style=config.target_style)
        held = test.take(len(test), seed=config.seed, stratified=False).to_float()  # class-balanced, shuffled
    return TargetData(train.name, train.to_float(), held, notes)


def in_domain_name(config: DiscoveryConfig, model: LoadedModel) -> tuple[str, str] | None:
    """(dataset, style) of the model's own training data, or the one asked for; None to skip."""
    if config.in_domain == "none":
        return None
    if config.in_domain != "auto":
        return config.in_domain, "plain"
    name = str(model.info.get("data", {}).get("name", ""))
    base, _, style = name.partition("-")
    if base not in DATASETS or base == "folder":
        return None
    return base, style if style in STYLES else "plain"


def load_in_domain(config: DiscoveryConfig, model: LoadedModel, n: int) -> tuple[torch.Tensor | None, str]:
    """Up to ``n`` in-domain test images (seeded) and their name; (None, "") without a contrast set."""
    which = in_domain_name(config, model)
    if which is None:
        return None, ""
    ds = load_dataset(which[0], "test", size=model.size, channels=model.channels, limit=n, seed=config.seed,
                      style=which[1])
    return ds.to_float(), ds.name


def inverted(model: LoadedModel, images: torch.Tensor, config: DiscoveryConfig, t0: int | None = None,
             progress: ProgressFn | None = None) -> torch.Tensor:
    """x_{t0} of ``images`` (t0: ``config.t0`` unless given) by deterministic DDIM inversion in ``config.steps``
    steps, through the one latent cache; on the CPU."""
    z, _ = invert_cached(model.unet, model.scheduler, images, config.t0 if t0 is None else t0, config.steps,
                         config.batch_size, progress)
    return z.float().cpu()
