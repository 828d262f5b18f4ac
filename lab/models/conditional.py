"""Class-conditional model folders: load, save and the model card.

A folder holds a diffusers ``ConditionalUNet`` or ``NoisyClassifier`` (config.json + safetensors; the networks are
in ``lab.models.conditional_unet``), ``scheduler/``, ``training.json`` and a card, and loads through
``load_conditional`` / ``load_noisy_classifier``.
"""
from __future__ import annotations

import json
from pathlib import Path

from diffusers import DDPMScheduler, ModelMixin

from lab.errors import LabError
from lab.models.conditional_unet import ConditionalUNet, NoisyClassifier
from lab.models.labels import LabelSpec
from lab.models.loaded import LoadedModel

__all__ = ["LoadedModel", "ConditionalUNet", "LabelSpec", "NoisyClassifier", "LoadedModel",
           "load_conditional", "load_noisy_classifier", "save_model", "update_card_metrics", "write_card"]


def _scheduler(folder: Path) -> DDPMScheduler:
    from lab.diffusion.schedules import make_ddpm_scheduler

    if (folder / "scheduler" / "scheduler_config.json").exists():
        return DDPMScheduler.from_pretrained(folder / "scheduler")
    return make_ddpm_scheduler()


def _load(name_or_path, cls, what: str, hint: str):
    from lab.models.store import read_info, resolve_model_path

    where = resolve_model_path(name_or_path)
    if not isinstance(where, Path):
        raise LabError(f"{what} are loaded from local folders; {where!r} is not one.")
    config = where / "config.json"
    try:
        found = json.loads(config.read_text()).get("_class_name") if config.exists() else None
    except (OSError, json.JSONDecodeError) as err:
        raise LabError(f"{config} is not readable JSON ({err}); the folder may be corrupt: {hint}") from err
    if found != cls.__name__:
        kind = ("a diffusers pipeline" if (where / "model_index.json").exists()
                else f"a {found}" if found else "no model (no config.json)")
        raise LabError(f"{where} is not a {cls.__name__} folder (it holds {kind}). {hint}")
    try:
        model = cls.from_pretrained(where, low_cpu_mem_usage=False)
        scheduler = _scheduler(where)
    except Exception as err:  # truncated safetensors, missing tensors ...
        from lab.models.store import load_failure

        raise load_failure(where, f"{where} could not be loaded as a {cls.__name__} ({type(err).__name__}: {err}). "
                                  f"The folder may be incomplete or corrupt: {hint}") from err
    return model.eval(), scheduler, str(where), read_info(where)


def load_conditional(name_or_path, device=None) -> LoadedModel:
    """A class-conditional DDPM folder written by ``python -m lab train label-embed|cfg|condnorm|auxclf``."""
    model, scheduler, source, info = _load(
        name_or_path, ConditionalUNet, "Conditional models",
        "train one with `python -m lab train cfg --init-from ddpm-mnist --out checkpoints/cfg-mnist`.")
    if device is not None:
        model.to(device)
    return LoadedModel(model, scheduler, "conditional", source, info)


def load_noisy_classifier(name_or_path, device=None) -> LoadedModel:
    """A noise-aware classifier folder written by ``python -m lab train noisy-classifier``."""
    net, scheduler, source, info = _load(
        name_or_path, NoisyClassifier, "Noisy classifiers",
        "train one with `python -m lab train noisy-classifier --init-from ddpm-mnist "
        "--out checkpoints/noisy-classifier-mnist`.")
    if device is not None:
        net.to(device)
    return LoadedModel(net, scheduler, "noisy-classifier", source, info)


def save_model(folder: Path, model: ModelMixin, scheduler: DDPMScheduler, info: dict, fp16: bool = False) -> None:
    """config.json + safetensors (``fp16``: the weights stored in half precision), scheduler/, training.json and
    a model card."""
    folder.mkdir(parents=True, exist_ok=True)
    from lab.models.store import stored

    stored(model, fp16).save_pretrained(folder)
    info = {**info, "stored_dtype": "float16" if fp16 else "float32"}
    scheduler.save_pretrained(folder / "scheduler")
    write_card(folder, info)


def write_card(folder: Path, info: dict) -> None:
    from lab.models.store import model_card, read_info, write_info

    write_info(folder, info)
    info = read_info(folder)
    card = model_card(folder.name, info)
    head, _, _ = card.partition("## Use")
    (folder / "README.md").write_text(head + _conditional_card(folder.name, info))


def update_card_metrics(folder: Path, metrics: dict) -> None:
    from lab.models.store import read_info

    info = read_info(folder)
    info.setdefault("metrics", {}).update(metrics)
    info.pop("created", None)
    info.pop("versions", None)
    write_card(folder, info)


def _conditional_card(name: str, info: dict) -> str:
    labels = info.get("labels", {})
    lines = ["## Conditioning", "", f"- method: **{info.get('method', info.get('kind'))}** — "
             f"{info.get('method_note', '')}",
             f"- labels: {labels.get('kind', '?')} ({', '.join(labels.get('names', []))})"]
    if info.get("p_uncond") is not None:
        lines.append(f"- label dropout for classifier-free guidance: p = {info['p_uncond']}")
    if info.get("init_from"):
        lines.append(f"- warm-started from `{info['init_from']}` ({info.get('warm_start', {}).get('copied_tensors', '?')}"
                     " tensors copied; the new conditioning layers started at zero, i.e. as the unconditional "
                     f"model), then trained {info.get('steps', '?')} steps")
    lines += ["", "## Use", "", "```python"]
    if info.get("kind") == "noisy-classifier":
        lines += ["from lab.models.conditional import load_noisy_classifier",
                  f'clf = load_noisy_classifier("{name}")  # logits = clf.net(x_t, t)',
                  "# classifier guidance: lab.diffusion.guidance.classifier_guided(eps_model, clf.net, labels, s, "
                  "clf.scheduler, clf.spec)"]
    else:
        lines += ["from lab.models.conditional import load_conditional",
                  f'm = load_conditional("{name}")', "eps = m.model(x_t, t, labels).sample",
                  "# sampling with guidance: lab.experiments.conditional (or python -m lab conditional --help)"]
    lines += ["```", ""]
    return "\n".join(lines)
