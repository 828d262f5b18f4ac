"""The source → target pair of a DANN task: two datasets (USPS → MNIST …), MNIST against its other half in a style
domain, or two Office-Home domains from the user's folder. Each pair says which USPS rendering each split of it is
(``lab.data.usps``: the standard LIBSVM one, or usps.h5 mapped onto it, or as stored) and carries the datasets'
notes."""
from __future__ import annotations

import functools

import torch

from lab.data import load_dataset
from lab.data.officehome import officehome_domain
from lab.data.usps import usps_rendering
from lab.errors import LabError
from lab.experiments.dann.config import TASKS, DANNConfig
from lab.train.dann import DomainPair


def _split(ds, limit: int | None, seed: int = 0):
    return ds.take(limit, seed=seed) if limit else ds


@functools.lru_cache(maxsize=2)
def _dataset_pair(task: str, size: int, source_limit: int, target_limit: int, test_limit: int) -> DomainPair:
    spec = TASKS[task]
    if spec.style:
        train = load_dataset(spec.source, "train", size=size, channels=3)
        styled = load_dataset(spec.source, "train", size=size, channels=3, style=spec.style, style_seed=1)
        # disjoint halves of the training set: the target is not a restyled copy of the source
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
        src, tgt = train.subset(order[: len(train) // 2]), styled.subset(order[len(train) // 2:])
        src_test = load_dataset(spec.source, "test", size=size, channels=3)
        tgt_test = load_dataset(spec.source, "test", size=size, channels=3, style=spec.style, style_seed=2)
    else:
        src = load_dataset(spec.source, "train", size=size, channels=3)
        tgt = load_dataset(spec.target, "train", size=size, channels=3)
        src_test = load_dataset(spec.source, "test", size=size, channels=3)
        tgt_test = load_dataset(spec.target, "test", size=size, channels=3)
    src, tgt = _split(src, source_limit), _split(tgt, target_limit, seed=1)
    src_test, tgt_test = _split(src_test, test_limit, seed=2), _split(tgt_test, test_limit, seed=3)
    renderings = {f"{side} {split}": usps_rendering(split) for side, name in (("source", spec.source),
                                                                              ("target", spec.target))
                  if name == "usps" for split in ("train", "test")}
    notes = list(dict.fromkeys(n for ds in (src, tgt, src_test, tgt_test) for n in ds.notes))
    return DomainPair(src.images, src.labels, tgt.images, src_test.images, src_test.labels, tgt_test.images,
                      tgt_test.labels, list(src.classes), src_test.name, tgt_test.name, renderings, notes)


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
    if TASKS[config.task].folder:
        return _officehome_pair(config)
    return _dataset_pair(config.task, config.image_size, config.source_limit, config.target_limit,
                         config.test_limit)
