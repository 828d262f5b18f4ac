"""Batch adaptation + CNN evaluation: does translating labelled source images into the target domain help?

``run_ssda(SSDAConfig(...))``: take n′ labelled source images, translate them into the target domain with a
DiffusionCLIP fine-tuned model (a saved one, or one fine-tuned here from the task's prompts), then train the
seed's CNN, same seed and epochs, on (a) the originals, (b) the adapted images, (c) n′ labelled target images
(the oracle) and (d) originals + adapted, evaluating on the source and the target test sets after every
epoch, over several seeds. Translations are cached on disk batch by batch, so a stopped or repeated run
does not redo them.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from lab.device import resolve_device
from lab.data import load_dataset
from lab.data.imageset import ImageSet
from lab.errors import LabError
from lab.metrics import mean_std
from lab.experiments.translate import match_channels, translate
from lab.models.store import resolve_model_path
from lab.progress import ProgressFn
from lab.runs import read_saved_run
from lab.train.cnn import CNNTrainConfig, train_cnn


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
                         "a photo of a face", "a sketch of a face", "diffusionclip-utkface-sketch",
                         "ddpm-utkface64", 64, "gender", 1200, 300),
    "folder": Task("MNIST → your folder of target test images", "mnist", "folder", "plain", "a digit",
                   "a sketch of a digit", "diffusionclip-mnist-sketch"),
}
CONDITIONS = {"original": "(a) original labelled source images",
              "adapted": "(b) source images translated to the target domain",
              "oracle": "(c) labelled target-domain images (oracle)",
              "combined": "(d) original + adapted"}
COLOURS = ["#636efa", "#ef553b", "#00a67e", "#ab63fa"]


@dataclass
class SSDAConfig:
    task: str = "mnist-sketch"
    editor: str = ""                 # a saved DiffusionCLIP model (name or folder); "" = the task's
    n_labelled: int | None = None    # n′ (None: the task's default)
    n_test: int | None = None        # images per test set (None: the task's default)
    target_path: str | None = None   # 'folder' task: one subfolder per class, named like the source's classes
    conditions: list[str] = field(default_factory=lambda: list(CONDITIONS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    translate_batch_size: int = 64
    data_seed: int = 0               # which n′ images (fixed across CNN seeds)
    eval_on: str = "test"            # "validation": target *training* images stand in for the target test set
    device: str = "auto"

    @property
    def spec(self) -> Task:
        return TASKS[self.task]

    @property
    def editor_name(self) -> str:
        return self.editor or self.spec.editor

    def resolved(self) -> "SSDAConfig":
        """A copy with the task's defaults filled in (what a saved config records)."""
        spec = self.spec
        return SSDAConfig(**{**asdict(self), "editor": self.editor_name,
                             "n_labelled": self.n_labelled or spec.n_labelled, "n_test": self.n_test or spec.n_test})

    def label(self) -> str:
        return self.spec.label

    @classmethod
    def from_dict(cls, values: dict) -> "SSDAConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise LabError(f"Unknown setting(s) {', '.join(unknown)} in the configuration.")
        return cls(**values)

    def validate(self) -> None:
        if self.task not in TASKS:
            raise LabError(f"Unknown task {self.task!r}: choose one of {', '.join(TASKS)}.")
        if self.task == "folder" and not self.target_path:
            raise LabError("The 'folder' task needs the folder of target test images (one subfolder per class).")
        for name, low, high in (("n_labelled", 2, 60000), ("n_test", 1, 100000), ("epochs", 1, 200),
                                ("batch_size", 1, 4096), ("translate_batch_size", 1, 1024)):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or not low <= value <= high):
                raise LabError(f"{name} must be a whole number between {low} and {high}, not {value!r}.")
        if not self.conditions:
            raise LabError(f"Choose at least one training set: {', '.join(CONDITIONS)}.")
        bad = [c for c in self.conditions if c not in CONDITIONS]
        if bad:
            raise LabError(f"Unknown training set(s) {', '.join(bad)}: choose from {', '.join(CONDITIONS)}.")
        if not self.seeds or len(self.seeds) > 20 or any(not isinstance(s, int) or s < 0 for s in self.seeds):
            raise LabError("Give 1 to 20 non-negative whole-number seeds, e.g. 0,1,2.")
        if not 0 < self.lr < 1:
            raise LabError(f"The learning rate must be in (0, 1), not {self.lr}.")
        if self.eval_on not in ("test", "validation"):
            raise LabError(f"Evaluate on 'test' or 'validation', not {self.eval_on!r}.")
        if self.eval_on == "validation" and self.task == "folder":
            raise LabError("A folder task has only its test images: evaluate on 'test'.")


# --- data --------------------------------------------------------------------------------------

@dataclass
class TaskData:
    source_train: ImageSet    # the n′ labelled source images
    source_test: ImageSet
    target_train: ImageSet    # n′ labelled target images (the oracle's)
    target_test: ImageSet
    classes: list[str]


def check_label_spaces(source: ImageSet, target: ImageSet) -> None:
    if list(source.classes) != list(target.classes):
        raise LabError(f"The label spaces differ: the source {source.name} has classes {source.classes}, the "
                       f"target {target.name} has {target.classes}. Name the target's class subfolders exactly "
                       "like the source's classes, in the same order.")


def load_task_data(config: SSDAConfig, channels: int) -> TaskData:
    spec, n, n_test = config.spec, config.n_labelled, config.n_test

    def load(name, split, limit, style="plain", seed=config.data_seed):
        return load_dataset(name, split, size=spec.size, channels=channels, limit=limit, seed=seed, style=style,
                            target=spec.label_target)

    source_train = load(spec.source, "train", n)
    source_test = load(spec.source, "test", n_test, seed=config.data_seed + 1)
    if spec.target == "folder":
        target_test = load_dataset("folder", size=spec.size, channels=channels, path=config.target_path)
        target_test = target_test.take(n_test, seed=config.data_seed + 1)
        target_train = None
    else:
        # the oracle's labelled target images are other images than the source's n′ (seed + 7)
        target_train = load(spec.target, "train", n, spec.target_style, seed=config.data_seed + 7)
        if config.eval_on == "validation":  # for choosing models: labelled target training images, never the test set
            target_test = load(spec.target, "train", n_test, spec.target_style, seed=config.data_seed + 11)
        else:
            target_test = load(spec.target, "test", n_test, spec.target_style, seed=config.data_seed + 1)
    check_label_spaces(source_train, target_test)
    if len(set(source_train.labels.tolist())) < 2:
        raise LabError(f"n′ = {n} labelled images hold a single class: take more.")
    return TaskData(source_train, source_test, target_train, target_test, list(source_train.classes))


# --- the experiment ----------------------------------------------------------------------------

@dataclass
class SSDAResult:
    config: SSDAConfig
    histories: dict = field(default_factory=dict)    # "condition/seed" → [{"epoch", "loss", "source_acc", "target_acc"}]
    originals: torch.Tensor | None = field(default=None, repr=False)   # uint8, the n′ source images
    adapted: torch.Tensor | None = field(default=None, repr=False)     # uint8, their translations
    translation: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    seconds: float = 0.0

    def runs(self, condition: str) -> list[list[dict]]:
        return [h for key, h in self.histories.items() if key.split("/")[0] == condition and h]

    def rows(self) -> list[dict]:
        """Final-epoch accuracy per training set, mean and std over seeds (fractions)."""
        out = []
        for condition in self.config.conditions:
            runs = self.runs(condition)
            if not runs:
                continue
            src = mean_std([r[-1]["source_acc"] for r in runs])
            tgt = mean_std([r[-1]["target_acc"] for r in runs])
            out.append({"training set": condition, "what": CONDITIONS[condition], "seeds": len(runs),
                        "source_acc_mean": src[0], "source_acc_std": src[1],
                        "target_acc_mean": tgt[0], "target_acc_std": tgt[1]})
        return out

    def display_rows(self) -> list[dict]:
        return [{"training set": r["training set"], "what": r["what"], "seeds": r["seeds"],
                 "source test acc %": f"{100 * r['source_acc_mean']:.2f} ± {100 * r['source_acc_std']:.2f}",
                 "target test acc %": f"{100 * r['target_acc_mean']:.2f} ± {100 * r['target_acc_std']:.2f}"}
                for r in self.rows()]

    def gain(self) -> float | None:
        """Target accuracy of (b) minus (a) at the final epoch, mean over seeds, in points."""
        rows = {r["training set"]: r for r in self.rows()}
        if "adapted" not in rows or "original" not in rows:
            return None
        return 100 * (rows["adapted"]["target_acc_mean"] - rows["original"]["target_acc_mean"])

    def history_rows(self) -> list[dict]:
        return [{"training set": key.split("/")[0], "seed": int(key.split("/")[1]), **entry}
                for key, history in self.histories.items() for entry in history]

    def curves_figure(self):
        from lab.viz.plots import line_figure

        series, errors, epochs = {}, {}, []
        for condition in self.config.conditions:
            runs = self.runs(condition)
            if not runs:
                continue
            epochs = [e["epoch"] for e in runs[0]]
            for key, name in (("target_acc", "target test"), ("source_acc", "source test")):
                stats = [mean_std([r[i][key] for r in runs if i < len(r)]) for i in range(len(epochs))]
                series[f"{condition} · {name}"] = [m for m, _ in stats]
                errors[f"{condition} · {name}"] = [s for _, s in stats]
        n = self.data.get("n_labelled", "?")
        fig = line_figure(epochs, series, f"{self.config.label()}: test accuracy per epoch<br><sup>n′ = {n} "
                          f"labelled source images; mean ± std over {len(self.config.seeds)} seed(s)</sup>",
                          "epoch", "accuracy", errors=errors if len(self.config.seeds) > 1 else None)
        for trace in fig.data:  # one colour per training set: target test solid, source test dotted
            condition = trace.name.split(" · ")[0]
            trace.line.color = trace.marker.color = COLOURS[list(CONDITIONS).index(condition)]
            if trace.name.endswith("source test"):
                trace.line.dash = "dot"
        fig.update_yaxes(range=[0, 1.02])
        return fig

    def gallery(self, count: int = 16) -> Image.Image:
        """Originals (top row of each pair) above their translations."""
        from lab.viz.grids import image_grid

        if self.originals is None or self.adapted is None:
            raise LabError("This run kept no translated images.")
        k = min(count, len(self.originals))
        channels = max(self.originals.shape[1], self.adapted.shape[1])
        top = match_channels(self.originals[:k], channels).float().div(127.5).sub(1)
        bottom = match_channels(self.adapted[:k], channels).float().div(127.5).sub(1)
        return image_grid(torch.cat([top, bottom]), nrow=k, scale=3 if top.shape[-1] <= 32 else 1)

    def summary(self) -> dict:
        return {"task": self.config.label(), "data": self.data, "translation": self.translation,
                "rows": self.rows(), "gain_points": self.gain(), "seconds": round(self.seconds, 2)}

    def save(self, run, figures: bool = True) -> None:
        from lab.viz.export import save_figure, write_csv

        run.save_json("config.json", asdict(self.config))
        run.save_json("result.json", {**self.summary(), "histories": self.histories})
        if self.histories:
            write_csv(run.add("curves.csv"), self.history_rows())
            write_csv(run.add("table.csv"), self.rows())
        run.log_metrics(gain_points=self.gain(), runs_done=len(self.histories),
                        **{f"target_acc_{r['training set']}": r["target_acc_mean"] for r in self.rows()})
        if figures and self.originals is not None and self.adapted is not None:
            save_file({"originals": self.originals.contiguous(), "adapted": self.adapted.contiguous()},
                      run.add("translations.safetensors"))
            self.gallery().save(run.add("gallery.png"))
        if figures and self.histories:
            for path in save_figure(self.curves_figure(), run.path("curves")):
                run.add(path.name)


def check_editor(config: SSDAConfig) -> None:
    """A missing translator is a message that says how to make one."""
    try:
        resolve_model_path(config.editor_name)
    except LabError as err:
        spec, how = config.spec, []
        try:
            resolve_model_path(spec.base_model)
        except LabError:
            how.append(f"train its base DDPM first (python -m lab train ddpm --data {spec.source} --size {spec.size} "
                       f"--out checkpoints/{spec.base_model}; hours on a CPU, a GPU helps)")
        how.append(f"fine-tune it with 'No model for this task? Fine-tune one here' or python -m lab ssda-editor "
                   f"--task {config.task if config.task != 'folder' else 'mnist-sketch'} --out "
                   f"checkpoints/{config.editor_name}")
        raise LabError(f"{err} The translator of this task is missing: " + ", then ".join(how) + ". Or leave "
                       "'adapted' and 'combined' out.") from None


def run_ssda(config: SSDAConfig, progress: ProgressFn | None = None, record=None) -> SSDAResult:
    """Translate, then train and evaluate every (training set, seed). With ``record`` (a lab.runs.Run) the
    result is saved after every trained network, so a stopped run keeps what it finished."""
    config.validate()
    config = config.resolved()
    started = time.perf_counter()
    device = resolve_device(config.device)
    say = progress or (lambda done, total, desc: None)
    needs_editor = any(c in ("adapted", "combined") for c in config.conditions)
    if needs_editor:
        check_editor(config)  # a missing model fails here, before any data is read
    channels = 3 if config.spec.target_style == "colored" or config.spec.size > 32 else 1
    say(0, 1, f"Loading {config.label()}")
    data = load_task_data(config, channels)
    result = SSDAResult(config, originals=data.source_train.images, data={
        "source": data.source_train.name, "target": data.target_test.name, "n_labelled": len(data.source_train),
        "source_test": len(data.source_test), "target_test": len(data.target_test), "classes": data.classes,
        "size": config.spec.size, "channels": channels})
    if needs_editor:
        edited, info = translate(config.editor_name, data.source_train.images, config.translate_batch_size, device,
                                 progress=say)
        result.adapted, result.translation = match_channels(edited, channels), info
    if "oracle" in config.conditions and data.target_train is None:
        raise LabError("The oracle needs labelled target training images, which a folder task does not have: "
                       "leave 'oracle' out.")
    sets = {"original": (data.source_train.images, data.source_train.labels),
            "adapted": (result.adapted, data.source_train.labels),
            "oracle": (None if data.target_train is None else data.target_train.images,
                       None if data.target_train is None else data.target_train.labels)}
    if result.adapted is not None:
        sets["combined"] = (torch.cat([data.source_train.images, result.adapted]),
                            torch.cat([data.source_train.labels, data.source_train.labels]))
    tests = {"source": (data.source_test.images, data.source_test.labels),
             "target": (data.target_test.images, data.target_test.labels)}
    jobs = [(c, s) for s in config.seeds for c in config.conditions]
    for k, (condition, seed) in enumerate(jobs):
        images, labels = sets[condition]
        train_config = CNNTrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, seed=seed,
                                      device=config.device)

        def sub(done, total, desc, k=k, condition=condition, seed=seed):
            say(k * total + done, len(jobs) * total, f"CNN {k + 1}/{len(jobs)} ({condition}, seed {seed}): {desc}")

        _, history = train_cnn(images, labels, len(data.classes), tests, train_config, progress=sub)
        result.histories[f"{condition}/{seed}"] = history
        result.seconds = time.perf_counter() - started
        if record is not None:
            result.save(record, figures=False)
    return result


def load_result(folder: str | Path) -> SSDAResult:
    """A finished (or stopped) run from its folder."""
    folder = Path(folder)
    summary, values = read_saved_run(folder, "batch-adaptation")
    config = SSDAConfig.from_dict(values)
    result = SSDAResult(config, histories=summary.get("histories", {}), translation=summary.get("translation", {}),
                        data=summary.get("data", {}), seconds=summary.get("seconds", 0.0))
    pairs = folder / "translations.safetensors"
    if pairs.exists():
        tensors = load_file(pairs)
        result.originals, result.adapted = tensors["originals"], tensors["adapted"]
    return result
