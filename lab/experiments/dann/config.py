"""The DANN-stages settings, declared once (``python -m lab dann`` and the DANN tab derive from them), and the tasks.

The training settings every run shares are declared in ``lab.train.dann_config.DANNTraining``; ``DANNConfig`` puts
``DANNSetup`` before them: the task, the backbone, the GRL placements (``lab.models.dann_registry``) and the seeds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lab.data.officehome import OFFICE_HOME_DOMAINS
from lab.errors import LabError
from lab.models.dann_registry import (
    BACKBONES,
    METHODS,
    PLACEMENTS,
    WEIGHTS,
    check_method,
    check_placement,
)
from lab.params import Params, param, spec, specs
from lab.train.dann_config import DANNTrainConfig, DANNTraining


@dataclass(frozen=True)
class Task:
    label: str
    source: str = ""             # dataset names (lab.data.registry)
    target: str = ""
    style: str | None = None     # the target is the other half of the source's training set in this style
    folder: bool = False         # both domains come from the user's Office-Home folder
    size: int = 32               # the image size when none is given
    flip: bool = False           # random horizontal flips too (objects, not digits)


TASKS = {
    "usps-mnist": Task("USPS → MNIST (the seed's task)", "usps", "mnist"),
    "mnist-usps": Task("MNIST → USPS", "mnist", "usps"),
    "digits-mnist": Task("digits (scikit-learn, 8×8) → MNIST", "digits", "mnist"),
    "mnist-sketch": Task("MNIST → MNIST-sketch", "mnist", "mnist", style="sketch"),
    "mnist-colored": Task("MNIST → MNIST-coloured (MNIST-M-like)", "mnist", "mnist", style="colored"),
    "officehome": Task("Office-Home (source → target domain, from your folder)", folder=True, size=224, flip=True),
}
SEED_PLACEMENTS = ["none", "stage1", "stage2", "stage3"]
LIMITS = ("source_limit", "target_limit", "test_limit", "eval_limit")   # 0: all (older configs said None)


@dataclass
class DANNSetup(Params):
    """What is compared: the task, the backbone, the placements and the seeds (listed before the training)."""
    task: str = param("usps-mnist", "source → target task", choices=tuple(TASKS), label="Task (source → target)")
    backbone: str = param("lenet", "the label network's backbone", choices=tuple(BACKBONES), label="Backbone")
    placements: list[str] = param(SEED_PLACEMENTS, f"GRL placements, separated by commas, from "
                                                   f"{', '.join(PLACEMENTS)}", label="GRL placements")
    methods: list[str] = param(["dann"], "adaptation methods at each placement but 'none', separated by commas "
                                         "(each is a row of the table; 'none' is the source-only row)",
                               choices=tuple(METHODS), label="Adaptation methods")
    seeds: list[int] = param([0], "seeds, separated by commas (the table shows mean ± std over them)", low=0,
                             high=2**31 - 1, label="Seeds")
    weights: str = param("auto", "ResNet start: ImageNet weights when they can be had (auto), required (imagenet), "
                                 "or from scratch; LeNet always starts from scratch", choices=WEIGHTS,
                         label="ResNet start")
    size: int | None = param(None, "image size (none: 32 for digits, 224 for Office-Home)", low=16, high=512,
                             label="Image size")
    source_limit: int = param(0, "a class-balanced subset of the source training set (0: all)", low=0,
                              high=1_000_000, label="Source images (0 = all)")
    target_limit: int = param(0, "a subset of the unlabelled target training set (0: all)", low=0, high=1_000_000,
                              label="Target images (0 = all)")
    test_limit: int = param(0, "a subset of each test set (0: all, as reported numbers need)", low=0,
                            high=1_000_000, label="Test images (0 = all)")
    officehome_path: str | None = param(None, "the Office-Home folder holding Art/, Clipart/, Product/, Real_World/",
                                        flag="--officehome",
                                        label="Folder holding Art/, Clipart/, Product/, Real_World/")
    officehome_source: str = param("Clipart", "the Office-Home source domain", choices=OFFICE_HOME_DOMAINS,
                                   label="Source domain")
    officehome_target: str = param("Real_World", "the Office-Home target domain", choices=OFFICE_HOME_DOMAINS,
                                   label="Target domain")


@dataclass
class DANNConfig(DANNTraining, DANNSetup):
    """A comparison: ``DANNSetup``'s settings, then the training settings every run shares."""
    COMMAND: ClassVar[str] = "dann"

    def check(self) -> None:
        if not self.placements:
            raise LabError("Choose at least one GRL placement.")
        if len(set(self.placements)) != len(self.placements):
            raise LabError(f"A placement is listed twice: {', '.join(self.placements)}.")
        for placement in self.placements:
            check_placement(placement, self.backbone)
        if not self.methods:
            raise LabError("Choose at least one adaptation method (dann, cdan, cdan+e).")
        if len(set(self.methods)) != len(self.methods):
            raise LabError(f"A method is listed twice: {', '.join(self.methods)}.")
        for method in self.methods:
            check_method(method)
        if not 1 <= len(self.seeds) <= 10:
            raise LabError("Give 1 to 10 seeds, e.g. 0, 1, 2.")
        if len(set(self.seeds)) != len(self.seeds):
            raise LabError(f"Give different seeds, e.g. 0, 1, 2 (not {', '.join(map(str, self.seeds))}).")
        if TASKS[self.task].folder and self.officehome_source == self.officehome_target:
            raise LabError("Office-Home source and target must be different domains.")
        for name in LIMITS:
            if 0 < getattr(self, name) < 10:
                raise LabError(f"{spec(type(self), name).label} must be at least 10 (or 0 for all), not "
                               f"{getattr(self, name)}.")

    @classmethod
    def from_dict(cls, values: dict) -> "DANNConfig":
        unknown = sorted(set(values) - {s.name for s in specs(cls)})
        if unknown:
            raise LabError(f"Unknown DANN setting(s): {', '.join(unknown)}.")
        return cls(**{k: 0 if k in LIMITS and v is None else v for k, v in values.items()})

    def jobs(self) -> list[tuple[str, str]]:
        """The (placement, method) of each table row, in order: 'none' (or the 'none' method) is the one source-only
        row; every other placement gets each adversarial method."""
        jobs = []
        for placement in self.placements:
            for method in (["none"] if placement == "none" else self.methods):
                job = ("none", "none") if method == "none" else (placement, method)
                if job not in jobs:
                    jobs.append(job)
        return jobs

    @property
    def image_size(self) -> int:
        return self.size or TASKS[self.task].size

    def train_config(self, seed: int) -> DANNTrainConfig:
        shared = {s.name: getattr(self, s.name) for s in specs(DANNTraining)}
        return DANNTrainConfig(**shared, seed=seed, flip=TASKS[self.task].flip)

    def label(self) -> str:
        if TASKS[self.task].folder:
            return f"Office-Home {self.officehome_source} → {self.officehome_target}"
        return TASKS[self.task].label.split(" (")[0]
