"""``run_edit``: fine-tune a copy of the backbone's UNet on ``n_train`` images (or the uploads) with the
directional CLIP loss, edit ``edit_n`` images of ``edit_split`` (or the uploads) in batches, measure, and save the
fine-tuned model when ``save_as`` names one."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch
from PIL import Image

from lab.clip import load_clip
from lab.config import get_settings
from lab.data import load_dataset
from lab.device import resolve_device
from lab.diffusion.cache import invert_cached
from lab.diffusion.editing import edit_batched
from lab.diffusion.samplers import ddim_generate
from lab.errors import LabError
from lab.experiments.edit.config import EditConfig
from lab.experiments.edit.measure import measure
from lab.experiments.edit.saved import save_tuned
from lab.models.faceid import face_api_folder, load_face_api
from lab.models.loaded import LoadedModel
from lab.models.store import list_models, load_classifier, load_diffusion
from lab.progress import ProgressFn
from lab.seeding import seed_everything
from lab.train.diffusionclip import DiffusionClipLoss, DigitIdentity, FaceIdentity, FinetuneSettings, finetune
from lab.viz.grids import label_columns, trajectory_grid


@dataclass
class EditResult:
    config: EditConfig
    originals: torch.Tensor
    reconstructions: torch.Tensor
    edited: torch.Tensor
    history: list[dict]
    metrics: dict
    grid: Image.Image = field(repr=False)
    tuned: LoadedModel | None = field(default=None, repr=False)
    saved_to: str | None = None
    notes: list[str] = field(default_factory=list)
    labels: torch.Tensor | None = field(default=None, repr=False)   # of the edited dataset images (None: uploads)

    def save(self, run) -> None:
        from lab.viz.export import write_csv

        self.grid.save(run.add("edit_grid.png"))
        torch.save({"originals": self.originals, "reconstructions": self.reconstructions, "edited": self.edited},
                   run.add("images.pt"))
        write_csv(run.add("losses.csv"), self.history)
        run.save_json("result.json", {"config": asdict(self.config), "metrics": self.metrics,
                                      "saved_to": self.saved_to, "notes": self.notes})
        run.log_metrics(**{k: v for k, v in self.metrics.items() if isinstance(v, (int, float))})


# --- the identity networks of λ_id, by name ---------------------------------------------------------------------

def _face_identity(model: LoadedModel, device, notes: list[str], required: bool):
    if not required:
        try:
            face_api_folder()
        except LabError as err:
            notes.append(f"No face identity network, so the identity loss is off: {err}")
            return None
    if model.channels != 3:
        raise LabError("The face-api identity network reads RGB faces; this model is grey: use "
                       "'digit-classifier' or 'none'.")
    return FaceIdentity(load_face_api(device=device))


def _digit_identity(model: LoadedModel, device, notes: list[str], required: bool):
    if model.channels != 1:
        raise LabError("The digit classifier reads grey digits; this model is RGB: use 'face-api' or 'none'.")
    if "classifier-mnist" not in list_models("classifier"):
        if required:
            raise LabError("The identity loss needs checkpoints/classifier-mnist, which is missing.")
        notes.append("No identity network (checkpoints/classifier-mnist is missing): the identity loss is off.")
        return None
    return DigitIdentity(load_classifier("classifier-mnist", device))


IDENTITY_NETWORKS = {"face-api": _face_identity, "digit-classifier": _digit_identity}


def identity_network(config: EditConfig, model: LoadedModel, device, notes: list[str]):
    """The identity network of ``config.identity`` (``auto``: face-api for RGB, the digit classifier for grey,
    off with a note when it is missing), or None."""
    if config.identity == "none" or config.lambda_id == 0:
        return None
    if config.identity == "auto":
        name = "face-api" if model.channels == 3 else "digit-classifier"
        return IDENTITY_NETWORKS[name](model, device, notes, required=False)
    return IDENTITY_NETWORKS[config.identity](model, device, notes, required=True)


# --- the run -----------------------------------------------------------------------------------------------------

def _dataset(config: EditConfig, model: LoadedModel, split: str, n: int, seed: int):
    return load_dataset(config.data, split, size=model.size, channels=model.channels, limit=n, seed=seed,
                        style=config.style)


def edit_images(model: LoadedModel, tuned_unet, images: torch.Tensor, config: EditConfig,
                progress: ProgressFn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstructions by the original model, edits by the fine-tuned one) of [-1, 1] images, batched."""
    edited, latents = edit_batched(model.unet, tuned_unet, model.scheduler, images, config.t0, config.n_inv_step,
                                   config.n_test_step, config.edit_batch_size, progress=progress)
    recon = ddim_generate(model.unet, latents, model.scheduler, config.n_test_step, config.t0,
                          config.edit_batch_size)
    return recon, edited


def run_edit(config: EditConfig, uploads: torch.Tensor | None = None, progress: ProgressFn | None = None,
             on_step=None) -> EditResult:
    """Fine-tune and edit. ``uploads`` ([N, C, H, W] in [-1, 1]) replaces both the training and edited images."""
    config.validate()
    seed_everything(config.seed)
    device = resolve_device(config.device)
    notes: list[str] = []
    model = load_diffusion(config.model, device)
    if model.kind != "ddpm":
        raise LabError(f"{config.model} is a score model; DiffusionCLIP needs a DDPM (ε-prediction) backbone.")
    clip = load_clip(config.clip, config.clip_pretrained, device)
    config.source = clip.check_prompt(config.source, "source text")
    config.target = clip.check_prompt(config.target, "target text")
    identity = identity_network(config, model, device, notes)
    loss = DiffusionClipLoss(clip, config.source, config.target, config.lambda_clip, config.lambda_l1,
                             config.lambda_id, identity, views=config.clip_views,
                             lambda_struct=config.lambda_struct).to(device)
    started = time.perf_counter()
    train = uploads if uploads is not None else _dataset(config, model, config.split, config.n_train,
                                                         config.seed).to_float()
    train = train.to(device)
    latents, hit = invert_cached(model.unet, model.scheduler, train, config.t0, config.n_inv_step,
                                 progress=progress)
    settings = FinetuneSettings(t0=config.t0, n_train_step=config.n_train_step, iterations=config.iterations,
                                lr=config.lr, batch_size=config.batch_size, variant=config.variant, seed=config.seed)
    tuned, history = finetune(model.unet, model.scheduler, train, latents, loss, settings, progress=progress,
                              on_step=on_step)
    finetune_seconds = time.perf_counter() - started
    labels = None
    if uploads is not None:
        targets = uploads
    elif config.edit_n > 0:
        edit_set = _dataset(config, model, config.edit_split, config.edit_n, config.seed + 1)
        targets, labels = edit_set.to_float(), edit_set.labels
    else:
        targets = train.cpu()[:8]
    started = time.perf_counter()
    recon, edited = edit_images(model, tuned, targets, config, progress)
    metrics = {**measure(clip, loss, targets, recon, edited, identity), "cache_hit": hit,
               "finetune_seconds": round(finetune_seconds, 2), "edit_seconds": round(time.perf_counter() - started, 2),
               "n_train": len(train), "n_edited": len(targets), "optimizer_steps": len(history)}
    shown = min(len(targets), 16)
    grid = label_columns(trajectory_grid([targets[:shown], recon[:shown], edited[:shown]], scale=2),
                         ["original", "reconstruction", "edited"], cell=model.size * 2)
    tuned_model = LoadedModel(tuned, model.scheduler, "ddpm", f"{model.source} + DiffusionCLIP",
                                 {"diffusionclip": asdict(config)})
    result = EditResult(config, targets.cpu(), recon, edited, history, metrics, grid, tuned_model, notes=notes,
                        labels=labels)
    if config.save_as:
        result.saved_to = str(save_tuned(result, get_settings().checkpoint_dir / config.save_as, model))
    return result
