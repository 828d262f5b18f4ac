"""The DiffusionCLIP editing experiment: invert → fine-tune a UNet copy with a directional CLIP loss → edit.

``run_edit(EditConfig(...))`` fine-tunes on ``n_train`` images of a dataset (or on uploaded images), then
edits the uploaded images or ``edit_n`` images of ``edit_split`` in batches, measures the CLIP direction
before/after and identity preservation, and saves the fine-tuned UNet as a diffusers model folder
(``load_diffusion`` reopens it; so does the batch-adaptation tab).
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from PIL import Image

from lab.clip import load_clip
from lab.clip.vocab import check_prompt
from lab.config import get_settings
from lab.device import resolve_device
from lab.data import load_dataset
from lab.data.sources import image_to_tensor, to_standard_mode
from lab.errors import LabError
from lab.models.faceid import face_api_folder, load_face_api
from lab.models.store import (DiffusionModel, list_models, load_classifier, load_diffusion, read_info,
                             resolve_model_path, save_diffusion)
from lab.progress import ProgressFn
from lab.seeding import seed_everything
from lab.train.diffusionclip import (DiffusionClipLoss, DigitIdentity, FaceIdentity, FinetuneSettings,
                                     directional_cosine, edit_batched, finetune, generate, invert_cached)
from lab.viz.grids import label_columns, trajectory_grid

IDENTITIES = ("auto", "digit-classifier", "none", "face-api")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class EditConfig:
    model: str = "ddpm-mnist"
    clip: str = "clip-lab"
    clip_pretrained: str | None = None
    source: str = "a digit"
    target: str = "a sketch of a digit"
    data: str = "mnist"
    split: str = "train"
    style: str = "plain"
    n_train: int = 16            # images the UNet is fine-tuned on
    t0: int = 400
    n_inv_step: int = 40
    n_train_step: int = 6
    n_test_step: int = 40
    lambda_clip: float = 1.0
    lambda_l1: float = 0.1
    lambda_id: float = 0.5
    lambda_struct: float = 0.0   # structure loss: keeps shapes, lets brightness/polarity change (photo → sketch)
    identity: str = "auto"
    clip_views: int = 0          # >0: average the CLIP direction over this many shifted, noisy views
    iterations: int = 4
    lr: float = 2e-4
    batch_size: int = 8          # fine-tuning batch
    variant: str = "full"        # full | eff
    edit_split: str = "test"
    edit_n: int = 8              # images edited after fine-tuning (ignored when images are uploaded)
    edit_batch_size: int = 64
    save_as: str | None = None   # a name: the fine-tuned model goes to LAB_CHECKPOINT_DIR/<name>
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        self.source = check_prompt(self.source, None, "source text")
        self.target = check_prompt(self.target, None, "target text")
        if self.source == self.target:
            raise LabError("Source and target texts are the same: the edit direction would be zero.")
        for name, low, high in (("t0", 1, 999), ("n_inv_step", 1, 1000), ("n_train_step", 1, 200),
                                ("n_test_step", 1, 1000), ("iterations", 1, 1000), ("batch_size", 1, 256),
                                ("n_train", 1, 1000), ("edit_n", 0, 10000), ("edit_batch_size", 1, 1024),
                                ("clip_views", 0, 64)):
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise LabError(f"{name} must be a whole number between {low} and {high}, not {value!r}.")
        for name in ("lambda_clip", "lambda_l1", "lambda_id", "lambda_struct"):
            if not 0 <= getattr(self, name) <= 100:
                raise LabError(f"{name} must be between 0 and 100, not {getattr(self, name)}.")
        if self.lambda_clip <= 0:
            raise LabError("λ_clip must be positive: without the CLIP loss nothing is edited.")
        if not 0 < self.lr < 1:
            raise LabError(f"The learning rate must be in (0, 1), not {self.lr}.")
        if self.variant not in ("full", "eff"):
            raise LabError(f"Unknown variant {self.variant!r}: 'full' (gradient through all steps) or 'eff' "
                           "(memory saving, one step at a time).")
        if self.identity not in IDENTITIES:
            raise LabError(f"Unknown identity loss {self.identity!r}: choose one of {', '.join(IDENTITIES)}.")
        if self.save_as is not None and self.save_as != "" and not NAME.match(self.save_as):
            raise LabError(f"{self.save_as!r} is not a usable model name: letters, digits, '-', '_' and '.', "
                           "up to 64 characters.")


@dataclass
class EditResult:
    config: EditConfig
    originals: torch.Tensor
    reconstructions: torch.Tensor
    edited: torch.Tensor
    history: list[dict]
    metrics: dict
    grid: Image.Image = field(repr=False)
    tuned: DiffusionModel | None = field(default=None, repr=False)
    saved_to: str | None = None
    notes: list[str] = field(default_factory=list)

    def save(self, run) -> None:
        from lab.viz.export import write_csv

        self.grid.save(run.add("edit_grid.png"))
        torch.save({"originals": self.originals, "reconstructions": self.reconstructions, "edited": self.edited},
                   run.add("images.pt"))
        write_csv(run.add("losses.csv"), self.history)
        run.save_json("result.json", {"config": asdict(self.config), "metrics": self.metrics,
                                      "saved_to": self.saved_to, "notes": self.notes})
        run.log_metrics(**{k: v for k, v in self.metrics.items() if isinstance(v, (int, float))})


# Prompts the shipped CLIP can read, by the data a backbone was trained on
PROMPTS = {"mnist": ("a digit", "a sketch of a digit"), "usps": ("a digit", "a sketch of a digit"),
           "digits": ("a digit", "a sketch of a digit"), "fashion": ("a garment", "a sketch of a garment"),
           "utkface": ("a photo of a face", "a pencil sketch of a face"),
           "celeba": ("a photo of a face", "a pencil sketch of a face")}


def backbone_defaults(model: str) -> dict:
    """The data and source/target prompts that suit a backbone, read from its training record without loading
    it: {"data", "source", "target"}; empty when the record does not say (e.g. a Hub model)."""
    try:
        where = resolve_model_path(model)
    except LabError:
        return {}
    data = read_info(where).get("data", {}).get("name") if isinstance(where, Path) else None
    if data not in PROMPTS:
        return {}
    return {"data": data, "source": PROMPTS[data][0], "target": PROMPTS[data][1]}


def check_image(image: Image.Image, size: int, channels: int, fit: bool = False) -> torch.Tensor:
    """An uploaded image as [C, H, W] in [-1, 1] for a model of ``size`` px and ``channels``; LabError
    when its size or mode does not match (unless ``fit``: centre-crop, resize, convert)."""
    if image is None:
        raise LabError("No image was given: upload one, or edit dataset images instead.")
    image = to_standard_mode(image)  # palette, alpha, CMYK, 16-bit → 8-bit L or RGB
    want = "L" if channels == 1 else "RGB"
    if not fit:
        if image.size != (size, size):
            raise LabError(f"The image is {image.size[0]}×{image.size[1]} px, but the model takes {size}×{size}: "
                           "resize it, or tick 'Fit uploads to the model' to centre-crop and resize.")
        have = image.mode
        if have != want:
            raise LabError(f"The image is {'grey' if have == 'L' else 'colour (RGB)'}, but the model is "
                           f"{'grey (1 channel)' if channels == 1 else 'RGB (3 channels)'}: convert it, or tick "
                           "'Fit uploads to the model'.")
    return image_to_tensor(image, size, want).float().div(127.5).sub(1.0)


def _identity(config: EditConfig, model: DiffusionModel, device, notes: list[str]):
    kind = config.identity
    if kind == "none" or config.lambda_id == 0:
        return None
    if kind == "face-api" or (kind == "auto" and model.channels == 3):
        if kind == "auto":
            try:
                face_api_folder()
            except LabError as err:
                notes.append(f"No face identity network, so the identity loss is off: {err}")
                return None
        if model.channels != 3:
            raise LabError("The face-api identity network reads RGB faces; this model is grey: use "
                           "'digit-classifier' or 'none'.")
        return FaceIdentity(load_face_api(device=device))
    if model.channels != 1:
        raise LabError("The digit classifier reads grey digits; this model is RGB: use 'face-api' or 'none'.")
    if "classifier-mnist" not in list_models("classifier"):
        if kind == "digit-classifier":
            raise LabError("The identity loss needs checkpoints/classifier-mnist, which is missing.")
        notes.append("No identity network (checkpoints/classifier-mnist is missing): the identity loss is off.")
        return None
    return DigitIdentity(load_classifier("classifier-mnist", device))


def _training_images(config: EditConfig, model: DiffusionModel, uploads: torch.Tensor | None) -> torch.Tensor:
    if uploads is not None:
        return uploads
    ds = load_dataset(config.data, config.split, size=model.size, channels=model.channels, limit=config.n_train,
                      seed=config.seed, style=config.style)
    return ds.to_float()


def edit_images(model: DiffusionModel, tuned_unet, images: torch.Tensor, config: EditConfig,
                progress: ProgressFn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstructions by the original model, edits by the fine-tuned one) of [-1, 1] images, batched."""
    edited, latents = edit_batched(model.unet, tuned_unet, model.scheduler, images, config.t0, config.n_inv_step,
                                   config.n_test_step, config.edit_batch_size, progress=progress)
    recon = torch.cat([generate(model.unet, model.scheduler, latents[i:i + config.edit_batch_size].to(model.device),
                                config.n_test_step, config.t0).clamp(-1, 1).cpu()
                       for i in range(0, len(latents), config.edit_batch_size)])
    return recon, edited


@torch.no_grad()
def measure(clip, loss: DiffusionClipLoss, originals, reconstructions, edited, identity=None) -> dict:
    device = loss.text_direction.device
    o, r, e = originals.to(device), reconstructions.to(device), edited.to(device)
    metrics = {
        "clip_direction_before": round(float(directional_cosine(clip, o, r, loss.text_direction).mean()), 4),
        "clip_direction_after": round(float(directional_cosine(clip, o, e, loss.text_direction).mean()), 4),
        "inversion_mse": round(float(((r - o) ** 2).mean()), 5),
        "l1_to_original": round(float((e - o).abs().mean()), 4),
    }
    if identity is not None:
        fo, fe = identity.features(o), identity.features(e)
        metrics[identity.kept_metric] = round(float(identity.kept(fo, fe).float().mean()), 4)
        cos = torch.nn.functional.cosine_similarity(fo, fe, dim=1)
        metrics["identity_feature_cos"] = round(float(cos.mean()), 4)
    return metrics


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
    identity = _identity(config, model, device, notes)
    loss = DiffusionClipLoss(clip, config.source, config.target, config.lambda_clip, config.lambda_l1,
                             config.lambda_id, identity, views=config.clip_views,
                             lambda_struct=config.lambda_struct).to(device)
    started = time.perf_counter()
    train = _training_images(config, model, uploads).to(device)
    latents, hit = invert_cached(model.unet, model.scheduler, train, config.t0, config.n_inv_step,
                                 progress=progress)
    settings = FinetuneSettings(t0=config.t0, n_train_step=config.n_train_step, iterations=config.iterations,
                                lr=config.lr, batch_size=config.batch_size, variant=config.variant, seed=config.seed)
    tuned, history = finetune(model.unet, model.scheduler, train, latents, loss, settings, progress=progress,
                              on_step=on_step)
    finetune_seconds = time.perf_counter() - started
    if uploads is not None:
        targets = uploads
    elif config.edit_n > 0:
        targets = load_dataset(config.data, config.edit_split, size=model.size, channels=model.channels,
                               limit=config.edit_n, seed=config.seed + 1, style=config.style).to_float()
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
    tuned_model = DiffusionModel(tuned, model.scheduler, "ddpm", f"{model.source} + DiffusionCLIP",
                                 {"diffusionclip": asdict(config)})
    result = EditResult(config, targets.cpu(), recon, edited, history, metrics, grid, tuned_model, notes=notes)
    if config.save_as:
        result.saved_to = str(save_tuned(result, get_settings().checkpoint_dir / config.save_as, model))
    return result


def save_tuned(result: EditResult, folder, base: DiffusionModel):
    """Write the fine-tuned UNet (``save_pretrained``) + scheduler as a diffusers pipeline folder with a card."""
    from pathlib import Path

    folder = Path(folder)
    if folder.exists() and (folder / "training.json").exists() and "diffusionclip" not in read_info(folder):
        raise LabError(f"{folder} holds another model; choose a new name for the fine-tuned one.")
    c = result.config
    save_diffusion(folder, result.tuned.unet, base.scheduler, "ddpm", {
        "description": f"{c.model} fine-tuned by DiffusionCLIP from \"{c.source}\" to \"{c.target}\" with CLIP "
                       f"{c.clip} (t0 = {c.t0}, {c.n_train_step} training steps, {c.iterations} iterations over "
                       f"{result.metrics.get('n_train')} images, variant {c.variant}). Edit with the same t0: invert "
                       f"with {c.model}, generate with this model.",
        "data": {**base.info.get("data", {}), "finetuned_on": c.data, "count": result.metrics.get("n_train")},
        "command": edit_command(c), "diffusionclip": asdict(c), "base_model": c.model,
        "metrics": {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))},
        "losses": [(h["step"], h["total"]) for h in result.history],
        "train_config": {"batch_size": c.batch_size, "lr": c.lr, "seed": c.seed, "ema_decay": None},
        "steps": len(result.history), "wall_seconds": result.metrics.get("finetune_seconds", 0),
        "device": str(base.device), "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in result.tuned.unet.parameters()),
        "final_loss": result.history[-1]["total"] if result.history else float("nan")})
    return folder


def saved_edit_models() -> list[str]:
    """DiffusionCLIP fine-tuned models in the checkpoint directory (saved by ``run_edit(save_as=...)``)."""
    return [name for name in list_models() if "diffusionclip" in read_info(get_settings().checkpoint_dir / name)]


def load_saved_edit(name: str, device=None) -> tuple[DiffusionModel, DiffusionModel, dict]:
    """(fine-tuned model, its base model, its DiffusionCLIP settings) of a model saved by ``run_edit``."""
    try:
        tuned = load_diffusion(name, device)
    except LabError as err:
        raise LabError(f"{err} Fine-tune a DiffusionCLIP model in the 'DiffusionCLIP editing' tab with 'Save the "
                       "fine-tuned model as' set, or with python -m lab edit ... --save-as NAME.") from None
    cfg = tuned.info.get("diffusionclip")
    if not cfg:
        raise LabError(f"{name} is not a DiffusionCLIP fine-tuned model (its training.json has no 'diffusionclip' "
                       f"entry): choose one saved with 'Save the fine-tuned model as' (saved here: "
                       f"{', '.join(saved_edit_models()) or 'none yet'}).")
    base_name = tuned.info.get("base_model") or cfg["model"]
    try:
        base = load_diffusion(base_name, tuned.device)
    except LabError as err:
        raise LabError(f"{name} edits by inverting with its base model {base_name}, which is missing ({err}).") from None
    return tuned, base, cfg


def edit_with_pair(pair: tuple[DiffusionModel, DiffusionModel, dict], images: torch.Tensor, batch_size: int = 64,
                   progress: ProgressFn | None = None) -> torch.Tensor:
    """Edit [-1, 1] images with ``load_saved_edit``'s models: invert with the base model, generate with the tuned one."""
    tuned, base, cfg = pair
    edited, _ = edit_batched(base.unet, tuned.unet, base.scheduler, images, cfg["t0"], cfg["n_inv_step"],
                             cfg["n_test_step"], batch_size, progress=progress)
    return edited


def edit_with_saved(folder: str, images: torch.Tensor, device=None, batch_size: int = 64,
                    progress: ProgressFn | None = None) -> torch.Tensor:
    """Edit [-1, 1] images with a saved fine-tuned model: invert with its base model, generate with it."""
    return edit_with_pair(load_saved_edit(folder, device), images, batch_size, progress)


def edit_saved(name: str, data: str = "mnist", split: str = "test", n: int = 16, uploads: torch.Tensor | None = None,
               seed: int = 0, batch_size: int = 64, device=None, progress: ProgressFn | None = None) -> dict:
    """Edit ``uploads`` (or ``n`` images of a dataset split) with a saved fine-tuned model, no fine-tuning:
    {"originals", "edited", "grid", "model", "seconds"}."""
    pair = load_saved_edit(name, device)
    tuned = pair[0]
    if uploads is None:
        if not 1 <= n <= 10000:
            raise LabError(f"Edit between 1 and 10000 dataset images, not {n}.")
        uploads = load_dataset(data, split, size=tuned.size, channels=tuned.channels, limit=n, seed=seed).to_float()
    started = time.perf_counter()
    edited = edit_with_pair(pair, uploads, batch_size, progress)
    shown = min(len(uploads), 16)
    grid = label_columns(trajectory_grid([uploads[:shown], edited[:shown]], scale=2), ["original", "edited"],
                         cell=tuned.size * 2)
    return {"originals": uploads, "edited": edited, "grid": grid, "model": tuned,
            "seconds": time.perf_counter() - started}


def edit_command(c: EditConfig) -> str:
    parts = [f"python -m lab edit --model {c.model} --clip {c.clip}", f"--source {c.source!r} --target {c.target!r}",
             f"--data {c.data} --n-train {c.n_train} --t0 {c.t0} --n-inv-step {c.n_inv_step}",
             f"--n-train-step {c.n_train_step} --n-test-step {c.n_test_step} --lambda-clip {c.lambda_clip}",
             f"--lambda-l1 {c.lambda_l1} --lambda-id {c.lambda_id} --lambda-struct {c.lambda_struct}",
             f"--clip-views {c.clip_views} --iterations {c.iterations}",
             f"--lr {c.lr} --batch-size {c.batch_size}",
             f"--variant {c.variant} --edit-split {c.edit_split} --edit-n {c.edit_n} --seed {c.seed}"]
    if c.save_as:
        parts.append(f"--save-as {c.save_as}")
    return " ".join(parts)
