"""A fine-tuned DiffusionCLIP model as a diffusers folder with a card (``save_tuned``), reopened with its base
model (``load_saved_edit``), and editing with it without fine-tuning (``edit_saved``, ``edit_with_saved``)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image

from lab.config import get_settings
from lab.data import load_dataset
from lab.device import resolve_device
from lab.diffusion.editing import edit_batched
from lab.errors import LabError
from lab.experiments.edit.config import SavedEditConfig
from lab.models.loaded import LoadedModel
from lab.models.store import list_models, load_diffusion, read_info, save_diffusion
from lab.progress import ProgressFn
from lab.viz.grids import label_columns, trajectory_grid

if TYPE_CHECKING:
    from lab.experiments.edit.run import EditResult

EditorPair = tuple[LoadedModel, LoadedModel, dict]   # (fine-tuned model, its base model, its settings)


def save_tuned(result: "EditResult", folder, base: LoadedModel) -> Path:
    """Write the fine-tuned UNet (``save_pretrained``) + scheduler as a diffusers pipeline folder with a card. Under
    ``accelerate launch`` the main process writes it (the copies are equal) and the others wait for it."""
    from lab.train.shard import is_main, wait_for_everyone

    folder = Path(folder)
    if is_main():
        _write_tuned(result, folder, base)
    wait_for_everyone()
    return folder


def _write_tuned(result: "EditResult", folder: Path, base: LoadedModel) -> None:
    from lab.train.shard import share

    if folder.exists() and (folder / "training.json").exists() and "diffusionclip" not in read_info(folder):
        raise LabError(f"{folder} holds another model; choose a new name for the fine-tuned one.")
    c = result.config
    save_diffusion(folder, result.tuned.unet, base.scheduler, "ddpm", {
        "description": f"{c.model} fine-tuned by DiffusionCLIP from \"{c.source}\" to \"{c.target}\" with CLIP "
                       f"{c.clip} (t0 = {c.t0}, {c.n_train_step} training steps, {c.iterations} iterations over "
                       f"{result.metrics.get('n_train')} images, variant {c.variant}). Edit with the same t0: invert "
                       f"with {c.model}, generate with this model.",
        "data": {**base.info.get("data", {}), "finetuned_on": c.data, "count": result.metrics.get("n_train")},
        "command": c.to_command(), "diffusionclip": asdict(c), "base_model": c.model,
        "metrics": {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))},
        "losses": [(h["step"], h["total"]) for h in result.history],
        "train_config": {"batch_size": c.batch_size, "lr": c.lr, "seed": c.seed, "ema_decay": None},
        "steps": len(result.history), "wall_seconds": result.metrics.get("finetune_seconds", 0),
        "device": str(base.device), "threads": torch.get_num_threads(), "processes": share()[1],
        "parameters": sum(p.numel() for p in result.tuned.unet.parameters()),
        "final_loss": result.history[-1]["total"] if result.history else float("nan")})


def saved_edit_models() -> list[str]:
    """DiffusionCLIP fine-tuned models in the checkpoint directory (saved by ``run_edit(save_as=...)``)."""
    return [name for name in list_models() if "diffusionclip" in read_info(get_settings().checkpoint_dir / name)]


def load_saved_edit(name: str, device=None) -> EditorPair:
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


def edit_with_pair(pair: EditorPair, images: torch.Tensor, batch_size: int = 64,
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


@dataclass
class SavedEditResult:
    config: SavedEditConfig
    originals: torch.Tensor
    edited: torch.Tensor
    model: LoadedModel = field(repr=False)
    seconds: float
    grid: Image.Image = field(repr=False)

    @property
    def settings(self) -> dict:
        """The saved model's DiffusionCLIP settings (prompts, t0, ...)."""
        return self.model.info["diffusionclip"]

    def save(self, run) -> None:
        self.grid.save(run.add("edit_grid.png"))
        torch.save({"originals": self.originals, "edited": self.edited}, run.add("images.pt"))


def edit_saved(config: SavedEditConfig, uploads: torch.Tensor | None = None,
               progress: ProgressFn | None = None) -> SavedEditResult:
    """Edit ``uploads`` (or ``edit_n`` images of a dataset split) with a saved fine-tuned model, no fine-tuning."""
    config.validate()
    pair = load_saved_edit(config.with_saved, resolve_device(config.device))
    tuned = pair[0]
    if uploads is None:
        uploads = load_dataset(config.data, config.edit_split, size=tuned.size, channels=tuned.channels,
                               limit=config.edit_n, seed=config.seed).to_float()
    started = time.perf_counter()
    edited = edit_with_pair(pair, uploads, config.edit_batch_size, progress)
    shown = min(len(uploads), 16)
    grid = label_columns(trajectory_grid([uploads[:shown], edited[:shown]], scale=2), ["original", "edited"],
                         cell=tuned.size * 2)
    return SavedEditResult(config, uploads, edited, tuned, time.perf_counter() - started, grid)
