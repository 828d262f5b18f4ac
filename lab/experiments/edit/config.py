"""The DiffusionCLIP-editing settings, declared once (``python -m lab edit`` and the editing tab derive from them)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from lab.data.registry import STYLES, dataset_names
from lab.errors import LabError
from lab.experiments.edit.recipes import DIGITS
from lab.params import Params, param

IDENTITIES = ("auto", "digit-classifier", "none", "face-api")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SPLITS = ("train", "test")


def _datasets() -> tuple[str, ...]:
    return dataset_names(folder=False)


def check_name(name: str | None) -> None:
    """A model name the fine-tuned model can be saved under (inside the checkpoints folder)."""
    if name and not NAME.match(name):
        raise LabError(f"{name!r} is not a usable model name: letters, digits, '-', '_' and '.', up to 64 "
                       "characters.")


@dataclass
class EditConfig(Params):
    COMMAND: ClassVar[str] = "edit"
    model: str = param("ddpm-mnist", "DDPM backbone: shipped name, folder or (online) hub id",
                       label="Diffusion backbone (DDPM)")
    clip: str = param("clip-lab", "CLIP: clip-lab, a folder, or an open_clip name like ViT-B-32", label="CLIP")
    clip_pretrained: str | None = param(None, "open_clip pretrained tag (e.g. openai) or weights file",
                                        label="Pretrained tag or weights file")
    source: str = param("a digit", "source text", label="Source text", always=True)
    target: str = param("a sketch of a digit", "target text", label="Target text", always=True)
    data: str = param("mnist", "fine-tuning (and editing) images", choices=_datasets, label="Data (train split)",
                      always=True)
    split: str = param("train", "split of the fine-tuning images", choices=SPLITS, label="Split")
    style: str = param("plain", "style domain of the fine-tuning and edited images", choices=STYLES, label="Style")
    n_train: int = param(DIGITS["n_train"], "images to fine-tune on", low=1, high=1000, ui_high=200,
                         label="Fine-tuning images", always=True)
    t0: int = param(DIGITS["t0"], "how far to invert (timestep of the latent x_t0)", low=1, high=999, label="t0",
                     always=True)
    n_inv_step: int = param(20, "DDIM inversion steps", low=1, high=1000, ui_high=200,
                            label="Inversion steps (n_inv_step)")
    n_train_step: int = param(6, "DDIM generation steps while fine-tuning", low=1, high=200, ui_high=40,
                              label="Generation steps while fine-tuning")
    n_test_step: int = param(20, "DDIM generation steps when editing", low=1, high=1000, ui_high=200,
                             label="Generation steps when editing")
    lambda_clip: float = param(DIGITS["lambda_clip"], "weight of the directional CLIP loss", low=0, high=100,
                               label="λ_clip (directional CLIP loss)", always=True)
    lambda_l1: float = param(DIGITS["lambda_l1"], "weight of the L1 loss to the original", low=0, high=100,
                             label="λ_L1 (to the original)", always=True)
    lambda_id: float = param(DIGITS["lambda_id"], "weight of the identity loss", low=0, high=100,
                             label="λ_id (identity: digit-classifier features; face-api descriptor for RGB faces)",
                             always=True)
    lambda_struct: float = param(DIGITS["lambda_struct"], "structure loss: L1 between edge maps; keeps shapes, lets "
                                 "brightness/polarity change", low=0, high=100,
                                 label="λ_struct (edge maps: keeps shapes, lets brightness change)", always=True)
    identity: str = param("auto", "identity network of λ_id (auto: face-api for RGB faces, the digit classifier "
                                  "for grey digits)", choices=IDENTITIES, label="Identity loss", always=True)
    clip_views: int = param(DIGITS["clip_views"], "average the CLIP direction over this many randomly shifted, "
                                                  "scaled, noisy views of each pair (0: the reference loss)",
                            low=0, high=64, label="CLIP views", always=True)
    iterations: int = param(DIGITS["iterations"], "passes over the fine-tuning images", low=1, high=1000, ui_high=100,
                            label="Iterations (passes over the images)", always=True)
    lr: float = param(DIGITS["lr"], "learning rate (Adam)", low=1e-8, high=0.5, label="Learning rate", always=True)
    batch_size: int = param(8, "fine-tuning batch", low=1, high=256, ui_high=64, label="Fine-tuning batch size")
    variant: str = param("full", "full: gradient through all generative steps; eff: one step at a time (memory "
                                 "saving)", choices=("full", "eff"), label="Variant")
    edit_split: str = param("test", "split of the images edited after fine-tuning", choices=SPLITS,
                            label="Split to edit")
    edit_n: int = param(8, "images of --edit-split to edit after fine-tuning (ignored with --image; with "
                           "--with-saved 16 unless given)", low=0, high=10_000, ui_high=200,
                        label="Test images to edit afterwards")
    edit_batch_size: int = param(64, "images edited at once", low=1, high=1024, label="Editing batch size")
    save_as: str | None = param(None, "save the fine-tuned model as LAB_CHECKPOINT_DIR/<name>",
                                label="Save the fine-tuned model as (optional name)")
    seed: int = param(0, "random seed", low=0, high=2**31 - 1, label="Seed")
    device: str = param("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps", label="Device")

    def check(self) -> None:
        from lab.clip.vocab import check_prompt

        self.source = check_prompt(self.source, None, "source text")
        self.target = check_prompt(self.target, None, "target text")
        if self.source == self.target:
            raise LabError("Source and target texts are the same: the edit direction would be zero.")
        if self.lambda_clip <= 0:
            raise LabError("λ_clip must be positive: without the CLIP loss nothing is edited.")
        check_name(self.save_as)


@dataclass
class SavedEditConfig(Params):
    """Editing with a saved fine-tuned model, no fine-tuning (``python -m lab edit --with-saved NAME``)."""
    COMMAND: ClassVar[str] = "edit"
    with_saved: str = param("diffusionclip-mnist-sketch", "no fine-tuning: edit --image files (or --edit-n images "
                            "of --data/--edit-split) with this saved fine-tuned model",
                            label="Saved DiffusionCLIP model", always=True)
    data: str = param("mnist", "images to edit", choices=_datasets, label="Dataset", always=True)
    edit_split: str = param("test", "split of the images to edit", choices=("test", "train"), label="Split")
    edit_n: int = param(16, "images to edit", low=1, high=10_000, ui_high=256, label="Images")
    edit_batch_size: int = param(64, "images edited at once", low=1, high=1024, label="Editing batch size")
    seed: int = param(0, "random seed (which dataset images)", low=0, high=2**31 - 1, label="Seed")
    device: str = param("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps", label="Device")


SWEEPABLE = ("lambda_l1", "lambda_id", "lambda_struct", "lambda_clip")


@dataclass
class TradeoffConfig(EditConfig):
    """An edit repeated for a few values of one loss weight (``python -m lab edit --sweep-param ...``)."""
    sweep_param: str = param("lambda_l1", "the loss weight to sweep", choices=SWEEPABLE, label="Weight to sweep")
    sweep_values: list[float] = param([0.0, 0.1, 0.3, 1.0], "its values, separated by commas", low=0, high=100,
                                      label="Values", always=True)

    def check(self) -> None:
        super().check()
        if not 2 <= len(self.sweep_values) <= 6:
            raise LabError("Give 2 to 6 values to sweep, e.g. 0, 0.1, 0.3, 1.")
        if self.sweep_param == "lambda_clip" and min(self.sweep_values) <= 0:
            raise LabError("λ_clip must stay positive: without the CLIP loss nothing is edited.")
