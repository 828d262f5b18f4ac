"""Where should the gradient reversal layer go? DANN with the GRL at each placement, over seeds.

``run_dann(config, progress)`` trains one label network per (placement, seed) on a source → target
task, evaluates source and target test accuracy every epoch, and measures the proxy A-distance
between the domains' backbone features (and between the raw images, for reference). The result
gives the per-placement table (mean ± std over seeds), accuracy curves, t-SNE plots and ``save(run)``.

Tasks: USPS → MNIST (the seed's), MNIST → USPS, digits (scikit-learn) → MNIST, MNIST → a style
domain (sketch, coloured), and Office-Home (e.g. Clipart → Real World) from a folder the user has.
"""
from __future__ import annotations

import functools
import statistics
import time
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from lab.data import load_dataset
from lab.errors import LabError
from lab.metrics import mean_std
from lab.metrics.domain import proxy_a_distance
from lab.models.dann import PLACEMENTS, check_placement
from lab.progress import ProgressFn
from lab.runs import read_saved_run
from lab.train.dann import DANNRun, DANNTrainConfig, DomainPair, train_dann

TASKS = {
    "usps-mnist": "USPS → MNIST (the seed's task)",
    "mnist-usps": "MNIST → USPS",
    "digits-mnist": "digits (scikit-learn, 8×8) → MNIST",
    "mnist-sketch": "MNIST → MNIST-sketch",
    "mnist-colored": "MNIST → MNIST-coloured (MNIST-M-like)",
    "officehome": "Office-Home (source → target domain, from your folder)",
}
OFFICE_HOME_DOMAINS = ["Art", "Clipart", "Product", "Real_World"]
SEED_PLACEMENTS = ["none", "stage1", "stage2", "stage3"]

# The seed's reported numbers (ResNet-50, USPS → MNIST), shown beside ours for reference only.
SEED_REFERENCE = [
    {"placement": "none", "GRL at": "no GRL (source only)", "source acc %": 95.20, "target acc %": 53.57},
    {"placement": "stage1", "GRL at": "backbone output", "source acc %": 99.62, "target acc %": 73.33},
    {"placement": "stage2", "GRL at": "after the classifier's first dense layer", "source acc %": 76.42,
     "target acc %": 35.39},
    {"placement": "stage3", "GRL at": "after the classifier's output", "source acc %": 98.36, "target acc %": 55.76},
]
PUBLIC_REFERENCE = ("Published: DANN USPS → MNIST 95.2 % target accuracy with a LeNet (source only 74.6 %).")


@dataclass
class DANNConfig:
    task: str = "usps-mnist"
    backbone: str = "lenet"
    placements: list[str] = field(default_factory=lambda: list(SEED_PLACEMENTS))
    seeds: list[int] = field(default_factory=lambda: [0])
    weights: str = "auto"                 # auto | imagenet | scratch (ResNets; LeNet is always from scratch)
    size: int | None = None               # None: 32 for digits, 224 for Office-Home
    source_limit: int | None = None       # a class-balanced subset of the source training set
    target_limit: int | None = None       # a subset of the unlabelled target training set
    test_limit: int | None = None         # a subset of each test set (None: all, as reported numbers need)
    officehome_path: str | None = None    # the folder holding Art/, Clipart/, Product/, Real_World/
    officehome_source: str = "Clipart"
    officehome_target: str = "Real_World"
    # training (see lab.train.dann.DANNTrainConfig)
    epochs: int = 10
    steps_per_epoch: int = 300
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.01
    lr_schedule: str = "annealed"
    weight_decay: float = 5e-4
    lambda_schedule: str = "dann"
    lambda_max: float = 1.0
    augment: bool = True
    augment_scale: float = 0.15
    source_only_sees_target: bool = False
    eval_limit: int | None = 2000
    feature_points: int = 1000
    device: str = "auto"

    def validate(self) -> None:
        if self.task not in TASKS:
            raise LabError(f"Unknown task {self.task!r}: choose one of {', '.join(TASKS)}.")
        if not self.placements:
            raise LabError("Choose at least one GRL placement.")
        if len(set(self.placements)) != len(self.placements):
            raise LabError(f"A placement is listed twice: {', '.join(self.placements)}.")
        for placement in self.placements:
            check_placement(placement, self.backbone)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise LabError("Give one or more different seeds, e.g. 0, 1, 2.")
        if any(s < 0 for s in self.seeds):
            raise LabError("Seeds must be 0 or more.")
        if self.task == "officehome":
            for role, domain in (("source", self.officehome_source), ("target", self.officehome_target)):
                if domain not in OFFICE_HOME_DOMAINS:
                    raise LabError(f"Unknown Office-Home {role} domain {domain!r}: choose one of "
                                   f"{', '.join(OFFICE_HOME_DOMAINS)}.")
            if self.officehome_source == self.officehome_target:
                raise LabError("Office-Home source and target must be different domains.")
        if self.size is not None and not 16 <= self.size <= 512:
            raise LabError(f"Image size must be between 16 and 512 pixels, not {self.size}.")
        for name in ("source_limit", "target_limit", "test_limit", "eval_limit"):
            value = getattr(self, name)
            if value is not None and value < 10:
                raise LabError(f"{name.replace('_', ' ').capitalize()} must be at least 10 (or empty for all).")
        self.train_config(self.seeds[0]).validate()

    @property
    def image_size(self) -> int:
        return self.size or (224 if self.task == "officehome" else 32)

    def train_config(self, seed: int) -> DANNTrainConfig:
        names = {f.name for f in fields(DANNTrainConfig)}
        values = {k: v for k, v in asdict(self).items() if k in names}
        return DANNTrainConfig(**values, seed=seed, flip=self.task == "officehome")

    def label(self) -> str:
        if self.task == "officehome":
            return f"Office-Home {self.officehome_source} → {self.officehome_target}"
        return TASKS[self.task].split(" (")[0]

    @classmethod
    def from_dict(cls, values: dict) -> "DANNConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise LabError(f"Unknown DANN setting(s): {', '.join(unknown)}.")
        return cls(**values)


# --- data ----------------------------------------------------------------------------------------

def _split(ds, limit: int | None, seed: int = 0):
    return ds.take(limit, seed=seed) if limit else ds


@functools.lru_cache(maxsize=2)
def _digit_pair(task: str, size: int, source_limit: int | None, target_limit: int | None,
                test_limit: int | None) -> DomainPair:
    if task in ("mnist-sketch", "mnist-colored"):
        style = task.split("-")[1]
        train = load_dataset("mnist", "train", size=size, channels=3)
        styled = load_dataset("mnist", "train", size=size, channels=3, style=style, style_seed=1)
        # disjoint halves of MNIST's training set: the target is not a restyled copy of the source
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
        src, tgt = train.subset(order[: len(train) // 2]), styled.subset(order[len(train) // 2:])
        src_test = load_dataset("mnist", "test", size=size, channels=3)
        tgt_test = load_dataset("mnist", "test", size=size, channels=3, style=style, style_seed=2)
    else:
        source, target = task.split("-")
        src = load_dataset(source, "train", size=size, channels=3)
        tgt = load_dataset(target, "train", size=size, channels=3)
        src_test = load_dataset(source, "test", size=size, channels=3)
        tgt_test = load_dataset(target, "test", size=size, channels=3)
    src, tgt = _split(src, source_limit), _split(tgt, target_limit, seed=1)
    src_test, tgt_test = _split(src_test, test_limit, seed=2), _split(tgt_test, test_limit, seed=3)
    return DomainPair(src.images, src.labels, tgt.images, src_test.images, src_test.labels, tgt_test.images,
                      tgt_test.labels, list(src.classes), src_test.name, tgt_test.name)


def officehome_domain(root: str | Path | None, domain: str, size: int):
    """One Office-Home domain as (uint8 images, labels, classes), read with torchvision's ImageFolder."""
    import torchvision

    from lab.data.sources import image_to_tensor, open_image

    if not root:
        raise LabError("Office-Home is not shipped (it cannot be downloaded automatically): download it from "
                       "https://www.hemanthdv.org/officeHomeDataset.html, unpack it, and give the folder that "
                       "holds Art/, Clipart/, Product/ and Real_World/.")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise LabError(f"The Office-Home folder {root} does not exist: give the folder that holds Art/, Clipart/, "
                       "Product/ and Real_World/ (download: https://www.hemanthdv.org/officeHomeDataset.html).")
    folder = next((root / name for name in (domain, domain.replace("_", " ")) if (root / name).is_dir()), None)
    if folder is None:
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise LabError(f"{root} has no {domain}/ folder (found: {', '.join(found) or 'no folders'}). Give the "
                       "Office-Home folder that holds Art/, Clipart/, Product/ and Real_World/.")
    try:
        ds = torchvision.datasets.ImageFolder(str(folder))
    except (FileNotFoundError, RuntimeError) as err:
        raise LabError(f"{folder} should hold one folder of images per class ({err}).") from None
    cache_key = f"officehome-{zlib.crc32(str(folder.resolve()).encode()):08x}-{domain}-{size}-{len(ds.samples)}"
    from lab.data.sources import _cached

    def read() -> torch.Tensor:
        out = torch.empty(len(ds.samples), 3, size, size, dtype=torch.uint8)
        for i, (file, _) in enumerate(ds.samples):
            out[i] = image_to_tensor(open_image(file), size, "RGB")
        return out

    return _cached(cache_key, read), torch.tensor(ds.targets, dtype=torch.long), list(ds.classes)


def _officehome_pair(config: DANNConfig) -> DomainPair:
    size = config.image_size
    xs, ys, classes = officehome_domain(config.officehome_path, config.officehome_source, size)
    xt, yt, classes_t = officehome_domain(config.officehome_path, config.officehome_target, size)
    if classes != classes_t:
        raise LabError(f"{config.officehome_source} and {config.officehome_target} have different class folders: "
                       "both need the same 65 Office-Home categories.")
    # all target images are the unlabelled training set and the test set (the usual Office-Home
    # protocol); 10 % of the source is held out to measure source accuracy
    order = torch.randperm(len(xs), generator=torch.Generator().manual_seed(0))
    n_test = max(1, len(xs) // 10)
    test, train = order[:n_test], order[n_test:]
    if config.source_limit:
        train = train[: config.source_limit]
    keep_t = torch.randperm(len(xt), generator=torch.Generator().manual_seed(1))[: config.target_limit or len(xt)]
    test_t = torch.randperm(len(xt), generator=torch.Generator().manual_seed(2))[: config.test_limit or len(xt)]
    test = test[: config.test_limit or len(test)]
    return DomainPair(xs[train], ys[train], xt[keep_t], xs[test], ys[test], xt[test_t], yt[test_t], classes,
                      f"officehome-{config.officehome_source}", f"officehome-{config.officehome_target}")


def load_task(config: DANNConfig) -> DomainPair:
    if config.task == "officehome":
        return _officehome_pair(config)
    return _digit_pair(config.task, config.image_size, config.source_limit, config.target_limit, config.test_limit)


# --- the comparison ------------------------------------------------------------------------------

@dataclass
class DANNResult:
    config: DANNConfig
    runs: list[DANNRun] = field(default_factory=list)
    pads: dict = field(default_factory=dict)        # run label → PAD of backbone features
    input_pad: dict | None = None                   # PAD between the raw test images of both domains
    data: dict = field(default_factory=dict)        # sizes and names of the domains
    seconds: float = 0.0

    @staticmethod
    def run_label(run: DANNRun) -> str:
        return f"{run.placement} / seed {run.seed}"

    def find(self, label: str) -> DANNRun:
        for run in self.runs:
            if self.run_label(run) == label:
                return run
        raise LabError(f"No run {label!r} in this comparison: choose one of "
                       f"{', '.join(self.run_label(r) for r in self.runs)}.")

    @property
    def weights(self) -> str:
        notes = sorted({r.weights for r in self.runs})
        return "; ".join(notes) if notes else "not trained yet"

    def rows(self) -> list[dict]:
        """Per placement: accuracies and PAD as mean and std over seeds (fractions in [0, 1])."""
        out = []
        for placement in dict.fromkeys(r.placement for r in self.runs):
            runs = [r for r in self.runs if r.placement == placement]
            src, tgt = mean_std([r.source_acc for r in runs]), mean_std([r.target_acc for r in runs])
            pad = mean_std([self.pads.get(self.run_label(r), float("nan")) for r in runs])
            out.append({"placement": placement, "GRL at": PLACEMENTS[placement], "seeds": len(runs),
                        "source_acc_mean": src[0], "source_acc_std": src[1],
                        "target_acc_mean": tgt[0], "target_acc_std": tgt[1],
                        "pad_mean": pad[0], "pad_std": pad[1],
                        "minutes_per_run": statistics.fmean(r.seconds for r in runs) / 60,
                        "backbone": runs[0].backbone, "weights": runs[0].weights})
        return out

    def display_rows(self) -> list[dict]:
        """The table the tab shows: accuracies in % as mean ± std."""
        def pm(mean, std, scale=100.0, digits=2):
            return "–" if mean != mean else f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"

        return [{"placement": r["placement"], "GRL at": r["GRL at"], "seeds": r["seeds"],
                 "source acc %": pm(r["source_acc_mean"], r["source_acc_std"]),
                 "target acc %": pm(r["target_acc_mean"], r["target_acc_std"]),
                 "PAD (features)": pm(r["pad_mean"], r["pad_std"], 1.0, 3),
                 "min / run": round(r["minutes_per_run"], 2)} for r in self.rows()]

    def run_rows(self) -> list[dict]:
        return [{"placement": r.placement, "seed": r.seed, "source_acc": r.source_acc, "target_acc": r.target_acc,
                 "pad": self.pads.get(self.run_label(r)), "seconds": r.seconds, "device": r.device,
                 "backbone": r.backbone, "weights": r.weights} for r in self.runs]

    def history_rows(self) -> list[dict]:
        return [{"placement": r.placement, "seed": r.seed, **entry} for r in self.runs for entry in r.history]

    def best(self) -> dict | None:
        rows = [r for r in self.rows() if r["target_acc_mean"] == r["target_acc_mean"]]
        return max(rows, key=lambda r: r["target_acc_mean"]) if rows else None

    def summary(self) -> dict:
        best = self.best()
        return {"task": self.config.label(), "backbone": self.config.backbone, "weights": self.weights,
                "data": self.data, "input_pad": self.input_pad, "rows": self.rows(), "runs": self.run_rows(),
                "best_placement": best["placement"] if best else None,
                "seconds": round(self.seconds, 2), "seed_reference": SEED_REFERENCE,
                "public_reference": PUBLIC_REFERENCE}

    # figures
    def curves_figure(self, metric: str = "accuracy"):
        return curves_figure(self, metric)

    def tsne_figure(self, label: str | None = None, color_by: str = "domain", points: int = 500):
        run = self.find(label) if label else self.find(self.best_run_label())
        return tsne_figure(run.features, self.data, self.run_label(run), color_by, points, seed=run.seed)

    def best_run_label(self) -> str:
        best = self.best()
        runs = [r for r in self.runs if best is None or r.placement == best["placement"]]
        return self.run_label(max(runs, key=lambda r: r.target_acc))

    def save(self, run, figures: bool = True) -> None:
        """Write config, tables, histories, features and figures into a run record."""
        from lab.viz.export import save_figure, write_csv

        run.save_json("config.json", asdict(self.config))
        run.save_json("result.json", {**self.summary(), "histories": {self.run_label(r): r.history
                                                                      for r in self.runs}})
        write_csv(run.add("table.csv"), self.rows())
        write_csv(run.add("runs.csv"), self.run_rows())
        if self.runs:
            write_csv(run.add("history.csv"), self.history_rows())
        write_csv(run.add("seed_reference.csv"), SEED_REFERENCE)
        for r in self.runs:
            torch.save(r.features, run.add(f"features/{r.placement}-seed{r.seed}.pt"))
        best = self.best()
        run.log_metrics(best_placement=best["placement"] if best else None,
                        target_acc_best=best["target_acc_mean"] if best else None,
                        input_pad=(self.input_pad or {}).get("pad"), runs_done=len(self.runs),
                        weights=self.weights)
        if figures and self.runs:
            for metric in ("accuracy", "domain"):
                stem = f"curves_{metric}"
                for path in save_figure(self.curves_figure(metric), run.path(stem)):
                    run.add(path.name)


def _pad(source, target, **kwargs) -> dict:
    if min(len(source), len(target)) < 4:  # a tiny test set: no meaningful distance
        return {"pad": float("nan"), "domain_error": float("nan"), "n_per_domain": min(len(source), len(target))}
    return proxy_a_distance(source, target, **kwargs).as_dict()


def run_dann(config: DANNConfig, progress: ProgressFn | None = None, record=None) -> DANNResult:
    """Train every (placement, seed) of ``config``; with ``record`` (a lab.runs.Run) each finished run is
    saved at once, so a stopped comparison keeps what it finished."""
    config.validate()
    start = time.perf_counter()
    if progress is not None:
        progress(0, 1, f"Loading {config.label()}")
    data = load_task(config)
    result = DANNResult(config, data={
        "source": data.source_name, "target": data.target_name, "source_train": len(data.source_x),
        "target_train": len(data.target_x), "source_test": len(data.source_test_x),
        "target_test": len(data.target_test_x), "size": data.size, "classes": len(data.classes),
        "class_names": data.classes})
    result.input_pad = _pad(data.source_test_x, data.target_test_x, max_per_domain=1000)
    jobs = [(p, s) for p in config.placements for s in config.seeds]
    per_run = config.epochs * config.steps_per_epoch
    for k, (placement, seed) in enumerate(jobs):
        def sub(done, total, desc, k=k):
            if progress is not None:
                progress(k * per_run + done, len(jobs) * per_run, f"Run {k + 1}/{len(jobs)}: {desc}")

        done = train_dann(data, placement, config.backbone, config.train_config(seed), config.weights, progress=sub)
        done.net = None  # keep features and numbers, not one network per run
        f = done.features
        result.pads[result.run_label(done)] = _pad(f["source"]["features"], f["target"]["features"], seed=seed)["pad"]
        result.runs.append(done)
        result.seconds = time.perf_counter() - start
        if record is not None:
            result.save(record, figures=False)  # the caller saves once more, with figures, at the end
    return result


# --- figures ---------------------------------------------------------------------------------------

def curves_figure(result: DANNResult, metric: str = "accuracy"):
    """Per epoch and placement (mean over seeds, ± std as error bars): 'accuracy' draws target
    (solid) and source (dotted) test accuracy; 'domain' the discriminator's training accuracy."""
    from lab.viz.plots import line_figure

    if metric not in ("accuracy", "domain"):
        raise LabError(f"Unknown curve {metric!r}: choose accuracy or domain.")
    keys = [("target_acc", "target"), ("source_acc", "source")] if metric == "accuracy" else [("domain_acc", "domain")]
    series, errors, epochs = {}, {}, []
    for placement in dict.fromkeys(r.placement for r in result.runs):
        runs = [r for r in result.runs if r.placement == placement and r.history]
        if not runs or (metric == "domain" and placement == "none"):
            continue
        epochs = [e["epoch"] for e in runs[0].history]
        for key, name in keys:
            stats = [mean_std([r.history[i][key] for r in runs if i < len(r.history)]) for i in range(len(epochs))]
            label = f"{placement} · {name}" if metric == "accuracy" else placement
            series[label], errors[label] = [m for m, _ in stats], [s for _, s in stats]
    title = (f"{result.config.label()}: test accuracy per epoch" if metric == "accuracy"
             else f"{result.config.label()}: discriminator accuracy on training batches (chance = 0.5)")
    fig = line_figure(epochs, series, title, "epoch", "accuracy" if metric == "accuracy" else "domain accuracy",
                      errors=errors if len(result.config.seeds) > 1 else None)
    for trace in fig.data:
        if trace.name.endswith("· source"):
            trace.line.dash = "dot"
    if metric == "domain":
        fig.add_hline(y=0.5, line_dash="dash", line_color="grey", annotation_text="chance")
    fig.update_layout(annotations=list(fig.layout.annotations) + [dict(
        text=f"{result.config.backbone}, {result.weights}", xref="paper", yref="paper", x=0, y=-0.18,
        showarrow=False, font=dict(size=11, color="grey"))])
    return fig


def tsne_figure(features: dict, data: dict, label: str, color_by: str = "domain", points: int = 500, seed: int = 0):
    """t-SNE of one run's backbone features on both test sets, coloured by domain or by class
    (then the marker tells the domain)."""
    from lab.viz.plots import scatter_figure, tsne_2d

    if color_by not in ("domain", "class"):
        raise LabError(f"Colour the t-SNE by 'domain' or 'class', not {color_by!r}.")
    if not features:
        raise LabError(f"The features of run {label!r} were not saved, so it has no t-SNE.")
    names = data.get("class_names") or []
    xs, ys = features["source"]["features"][:points], features["source"]["labels"][:points]
    xt, yt = features["target"]["features"][:points], features["target"]["labels"][:points]
    emb = tsne_2d(torch.cat([xs, xt]).numpy(), seed=seed)
    domains = [data.get("source", "source")] * len(xs) + [data.get("target", "target")] * len(xt)
    classes = [names[i] if i < len(names) else str(i) for i in torch.cat([ys, yt]).tolist()]
    if color_by == "domain":
        fig = scatter_figure(emb, domains, f"t-SNE of backbone features ({label}), by domain",
                             hover=[f"class {c}" for c in classes])
    else:
        symbols = ["circle" if i < len(xs) else "x" for i in range(len(domains))]
        fig = scatter_figure(emb, classes, f"t-SNE of backbone features ({label}), by class "
                             f"(○ {domains[0]}, × {domains[-1]})", symbols=symbols, hover=domains)
    return fig


def load_result(folder: str | Path) -> DANNResult:
    """A saved comparison (its numbers, histories and features) from a run folder."""
    folder = Path(folder)
    summary, values = read_saved_run(folder, "finished DANN")
    config = DANNConfig.from_dict(values)
    result = DANNResult(config, pads={}, input_pad=summary.get("input_pad"), data=summary.get("data", {}),
                        seconds=summary.get("seconds", 0.0))
    histories = summary.get("histories", {})
    for row in summary.get("runs", []):
        file = folder / "features" / f"{row['placement']}-seed{row['seed']}.pt"
        features = torch.load(file, weights_only=True) if file.exists() else {}
        run = DANNRun(row["placement"], row["seed"], row["backbone"], row["weights"], "ImageNet" in row["weights"],
                      row["source_acc"], row["target_acc"], histories.get(f"{row['placement']} / seed {row['seed']}", []),
                      row["seconds"], row.get("device", "cpu"), features)
        result.runs.append(run)
        if row.get("pad") is not None:
            result.pads[result.run_label(run)] = row["pad"]
    return result
