"""The batch-adaptation tasks and settings, declared once (``python -m lab ssda``, ``ssda-editor`` and the tab)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from lab.data.registry import dataset_names
from lab.errors import LabError
from lab.params import Params, param


@dataclass(frozen=True)
class Task:
    label: str
    source: str                   # dataset name
    target: str                   # dataset name ('folder': the user's folder)
    target_style: str = "plain"
    source_prompt: str = "a digit"
    target_prompt: str = "a sketch of a digit"
    editor: str = ""              # the shipped/expected DiffusionCLIP model for this task
    base_model: str = "ddpm-mnist"
    size: int = 28
    label_target: str | None = None   # utkface: gender
    n_labelled: int = 1000
    n_test: int = 1000


TASKS = {
    "mnist-sketch": Task("MNIST → MNIST-sketch", "mnist", "mnist", "sketch", "a digit", "a sketch of a digit",
                         "diffusionclip-mnist-sketch"),
    "mnist-colored": Task("MNIST → MNIST-coloured", "mnist", "mnist", "colored", "a digit", "a colored digit",
                          "diffusionclip-mnist-colored"),
    "mnist-usps": Task("MNIST → USPS", "mnist", "usps", "plain", "a digit", "a bold digit",
                       "diffusionclip-mnist-usps"),
    "usps-mnist": Task("USPS → MNIST", "usps", "mnist", "plain", "a digit", "a thin digit",
                       "diffusionclip-usps-mnist"),
    "faces-sketch": Task("UTKFace (gender) → face sketches — the seed's task", "utkface", "utkface", "sketch",
                         "a photo of a face", "a pencil sketch of a face", "diffusionclip-utkface-sketch",
                         "ddpm-utkface64", 64, "gender", 1200, 300),
    "folder": Task("MNIST → your folder of target test images", "mnist", "folder", "plain", "a digit",
                   "a sketch of a digit", "diffusionclip-mnist-sketch"),
}
CONDITIONS = {"original": "(a) original labelled source images",
              "adapted": "(b) source images translated to the target domain",
              "oracle": "(c) labelled target-domain images (oracle)",
              "combined": "(d) original + adapted"}
DEVICE_HELP = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps"


def _editable_tasks() -> tuple[str, ...]:
    return tuple(t for t in TASKS if t != "folder")


@dataclass
class SSDAConfig(Params):
    """Task-dependent settings (the editor, n′, the test images) are empty by default: ``resolved()`` fills in
    the task's."""
    COMMAND: ClassVar[str] = "ssda"
    task: str = param("mnist-sketch", "the source → target task", choices=tuple(TASKS), label="Task (source → target)")
    editor: str = param("", "a saved DiffusionCLIP model (name in checkpoints/ or folder); empty: the task's",
                        label="DiffusionCLIP model (translates source → target)")
    n_labelled: int | None = param(None, "n′, labelled source images (none: the task's)", low=2, high=60_000,
                                   label="n′ (n_labelled)")
    n_test: int | None = param(None, "images per test set (none: the task's)", low=1, high=100_000,
                               label="Test images per domain (n_test)")
    target_path: str | None = param(None, "folder task: target test images, one subfolder per class",
                                    label="Target test images: a folder with one subfolder per class (0 … 9)")
    conditions: list[str] = param(list(CONDITIONS), "training sets of the CNN, separated by commas",
                                  choices=tuple(CONDITIONS), label="training set")
    seeds: list[int] = param([0, 1, 2], "CNN seeds, separated by commas", low=0, high=2**31 - 1,
                             label="Seeds (mean ± std over them)")
    epochs: int = param(10, "CNN training epochs", low=1, high=200, label="The number of epochs")
    batch_size: int = param(64, "CNN batch size", low=1, high=4096, label="The CNN batch size")
    lr: float = param(1e-3, "CNN learning rate (Adam)", low=1e-6, high=0.5, label="The learning rate")
    translate_batch_size: int = param(64, "images translated at once", low=1, high=1024,
                                      label="Translation batch size")
    data_seed: int = param(0, "which n′ images are drawn (fixed across CNN seeds)", low=0, high=2**31 - 1,
                           label="Data seed")
    eval_on: str = param("test", "validation: labelled target training images replace the target test set (to "
                                 "choose models)", choices=("test", "validation"), label="Evaluate on")
    device: str = param("auto", DEVICE_HELP, label="Device")

    @property
    def spec(self) -> Task:
        return TASKS[self.task]

    @property
    def editor_name(self) -> str:
        return self.editor or self.spec.editor

    def resolved(self) -> "SSDAConfig":
        """A copy with the task's defaults filled in (what a saved config records)."""
        spec = self.spec
        return replace(self, editor=self.editor_name, n_labelled=self.n_labelled or spec.n_labelled,
                       n_test=self.n_test or spec.n_test)

    def label(self) -> str:
        return self.spec.label

    def check(self) -> None:
        if self.task == "folder" and not self.target_path:
            raise LabError("The 'folder' task needs the folder of target test images (one subfolder per class).")
        if not self.conditions:
            raise LabError(f"Choose at least one training set: {', '.join(CONDITIONS)}.")
        if not self.seeds or len(self.seeds) > 20:
            raise LabError("Give 1 to 20 non-negative whole-number seeds, e.g. 0,1,2.")
        if self.eval_on == "validation" and self.task == "folder":
            raise LabError("A folder task has only its test images: evaluate on 'test'.")


@dataclass
class EditorSelectionConfig(Params):
    """``python -m lab ssda-editor``: one DiffusionCLIP fine-tuning per seed, the best on validation kept."""
    COMMAND: ClassVar[str] = "ssda-editor"
    task: str = param("mnist-sketch", "the task whose translator is fine-tuned", choices=_editable_tasks,
                      label="Task", always=True)
    seeds: list[int] = param([0, 1, 2], "one fine-tuning per seed; the best on validation is kept", low=0,
                             high=2**31 - 1, label="Seeds", always=True)
    out: str | None = param(None, "model folder to write, e.g. checkpoints/diffusionclip-mnist-sketch",
                            label="Output folder")
    device: str = param("auto", DEVICE_HELP, label="Device")
    fp16_weights: bool = param(False, "store the kept UNet in fp16 (half the file; it loads back as fp32)",
                               label="Store in fp16")

    def check(self) -> None:
        if not self.out:
            raise LabError("Give --out, the model folder to write (e.g. checkpoints/diffusionclip-mnist-sketch).")
        if not self.seeds:
            raise LabError("Give at least one seed, e.g. 0,1,2.")


@dataclass
class TranslateConfig(Params):
    """``python -m lab translate``: a whole split translated by a saved DiffusionCLIP model into a folder of images,
    one subfolder per class (``load_dataset("folder", path=out)`` reads it back with its labels)."""
    COMMAND: ClassVar[str] = "translate"
    editor: str = param("diffusionclip-mnist-sketch", "the saved DiffusionCLIP model that translates",
                        label="DiffusionCLIP model", always=True)
    data: str = param("mnist", "the labelled dataset to translate", choices=lambda: dataset_names(folder=False),
                      label="Dataset", always=True)
    split: str = param("train", "the split to translate", choices=("train", "test"), label="Split", always=True)
    out: str | None = param(None, "the folder to write (resumed when it holds part of the translation)",
                            label="Output folder", always=True)
    limit: int | None = param(None, "a seeded class-balanced subset of this many images (none: the whole split)",
                              low=1, high=10_000_000, label="Images")
    batch_size: int = param(64, "images translated at once (per process)", low=1, high=4096, label="Batch size")
    device: str = param("auto", DEVICE_HELP, label="Device")

    def check(self) -> None:
        if not self.out:
            raise LabError("Give --out, the folder to write the translated images into.")
