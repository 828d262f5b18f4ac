"""The images of a batch-adaptation task: the n′ labelled source images, the oracle's labelled target images and
the two test sets (or, with ``eval_on="validation"``, labelled target *training* images in place of the target
test set)."""
from __future__ import annotations

from dataclasses import dataclass

from lab.data import load_dataset
from lab.data.imageset import ImageSet
from lab.errors import LabError
from lab.experiments.ssda.config import SSDAConfig


@dataclass
class TaskData:
    source_train: ImageSet    # the n′ labelled source images
    source_test: ImageSet
    target_train: ImageSet | None   # n′ labelled target images (the oracle's); None for a folder task
    target_test: ImageSet
    classes: list[str]


def check_label_spaces(source: ImageSet, target: ImageSet) -> None:
    if list(source.classes) != list(target.classes):
        raise LabError(f"The label spaces differ: the source {source.name} has classes {source.classes}, the "
                       f"target {target.name} has {target.classes}. Name the target's class subfolders exactly "
                       "like the source's classes, in the same order.")


def load_task_data(config: SSDAConfig, channels: int) -> TaskData:
    """The task's images (``config`` resolved: n′ and the test size are numbers)."""
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
