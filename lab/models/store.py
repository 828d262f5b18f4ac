"""Model folders: diffusers layouts plus ``training.json`` and a model card (README.md).

A diffusion model is saved as a diffusers pipeline folder (``model_index.json``, ``unet/``,
``scheduler/``), so ``DDPMPipeline.from_pretrained(folder)`` (or ``ScoreSdeVePipeline``) works
outside the lab too. A classifier is a ``ModelMixin`` folder (``config.json`` + safetensors).
"""
from __future__ import annotations

import copy
import json
import platform
import re
from datetime import datetime, timezone
from pathlib import Path

import diffusers
import torch
from diffusers import DDPMScheduler, ScoreSdeVeScheduler, UNet2DModel

from lab.config import get_settings
from lab.device import resolve_device
from lab.errors import LabError
from lab.models.loaded import LoadedModel
from lab.models.precondition import precondition_score

PIPELINES = {"ddpm": ("DDPMPipeline", "DDPMScheduler"), "score": ("ScoreSdeVePipeline", "ScoreSdeVeScheduler")}
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
HUB_PREFIX = "hf:"
MAX_PATH_CHARS = 1024
MODEL_FILES = ("a diffusers pipeline (model_index.json, unet/ and scheduler/), or a model folder (config.json "
               "and a .safetensors weights file, as the lab's trainers write them)")


def versions() -> dict[str, str]:
    import lab

    return {"lab": lab.__version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "python": platform.python_version()}


def resolve_model_path(name_or_path: str | Path) -> Path | str:
    """A shipped model's name (looked up in the checkpoints folder first), a local folder, or (online) a Hugging
    Face Hub id (``owner/name``; ``hf:owner/name`` is never taken for a local folder)."""
    text = str(name_or_path).strip()
    if not text:
        raise LabError("No model was given: pick a shipped model or give a folder.")
    if len(text) > MAX_PATH_CHARS or "\x00" in text:
        raise LabError(f"The model name is {len(text)} characters long: give a shipped model's name or a folder "
                       f"path of at most {MAX_PATH_CHARS} characters.")
    if text.startswith(HUB_PREFIX):
        return _hub_id(text[len(HUB_PREFIX):])
    path = Path(text).expanduser()
    shipped = get_settings().checkpoint_dir / text
    if len(path.parts) == 1 and not path.is_absolute() and shipped.is_dir():
        return shipped
    if path.is_dir():
        return path
    if shipped.is_dir():
        return shipped
    if HUB_ID.match(text) and not path.exists():
        return _hub_id(text)
    raise _no_model(text)


def _no_model(text: str) -> LabError:
    available = ", ".join(list_models()) or "none"
    return LabError(f"No model folder at {text!r}. Shipped models: {available} (in {get_settings().checkpoint_dir}).")


def _hub_id(text: str) -> str:
    if not HUB_ID.match(text):
        raise LabError(f"{text!r} is not a Hugging Face Hub id (owner/name).")
    if get_settings().offline:
        raise LabError(f"{text!r} is no model folder here, and as a Hugging Face Hub id it cannot be fetched: the "
                       "lab is offline (HF_HUB_OFFLINE=1). Download it once online, or give a folder.")
    return text


def check_model_source(value, what: str = "Model") -> str:
    """A model typed by a user of the app: a shipped name, a Hub id, or a folder inside the allowed roots (see
    ``lab.config.typed_path``). Whether it is a path is decided from the text before anything is looked up, so
    the answer never depends on what exists outside those folders. Returns the value for the engine (a Hub id
    gets the ``hf:`` prefix); LabError otherwise."""
    from lab.config import typed_path

    text = str(value or "").strip()
    if not text:
        raise LabError(f"No {what.lower()} was given: pick a shipped model or give a model folder.")
    if len(text) > MAX_PATH_CHARS or "\x00" in text:
        raise LabError(f"{what}: the name is {len(text)} characters long; give a shipped model's name or a "
                       f"folder path of at most {MAX_PATH_CHARS} characters.")
    if text.startswith(HUB_PREFIX):
        text = text[len(HUB_PREFIX):]
    if typed_path(text, what) is not None:
        return text
    if len(Path(text).parts) == 1:
        if not (get_settings().checkpoint_dir / text).is_dir():
            raise _no_model(text)
        return text
    return HUB_PREFIX + _hub_id(text)


def damaged_weights(folder) -> str | None:
    """A message naming the first unreadable (truncated, corrupt) .safetensors file under ``folder``, else None."""
    from safetensors import safe_open

    try:
        files = sorted(Path(folder).rglob("*.safetensors")) if Path(folder).is_dir() else []
    except OSError:
        return None
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as f:
                f.keys()
        except Exception as err:  # noqa: BLE001 — SafetensorError, OSError ...
            return (f"The weights file {file} is damaged ({str(err)[:200] or type(err).__name__}); "
                    "re-train or re-download the model (or copy its folder anew).")
    return None


def load_failure(where, message: str) -> LabError:
    """What to raise when loading from ``where`` failed: the damaged weights file, when one is; else ``message``."""
    return LabError((damaged_weights(where) if where is not None else None) or message)


def list_models(kind: str | None = None) -> list[str]:
    """Names of the model folders in the checkpoint directory, optionally of one kind."""
    root = get_settings().checkpoint_dir
    if not root.is_dir():
        return []
    names = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        info = read_info(folder)
        if info and (kind is None or info.get("kind") == kind):
            names.append(folder.name)
    return names


def read_info(folder: Path) -> dict:
    try:
        return json.loads((Path(folder) / "training.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def model_kind(name_or_path: str | Path) -> str | None:
    """The ``kind`` a local model folder's card records (ddpm, score, gan, ...); None for a Hub id or no card."""
    where = resolve_model_path(name_or_path)
    return None if isinstance(where, str) else read_info(where).get("kind")


def trained_batch_size(name_or_path: str | Path, default: int = 64) -> int:
    """The batch size a model was trained at, as its card records it (``default`` when it does not)."""
    where = resolve_model_path(name_or_path)
    info = {} if isinstance(where, str) else read_info(where)
    return int(info.get("train_config", {}).get("batch_size") or default)


def load_diffusion(name_or_path: str | Path, device: torch.device | str | None = None) -> LoadedModel:
    where = resolve_model_path(name_or_path)
    try:
        if isinstance(where, Path):
            unet, scheduler, kind = _load_local(where)
        else:
            unet, scheduler, kind = _load_hub(where)
    except LabError:
        raise
    except Exception as err:  # truncated safetensors, bad JSON, wrong class ...
        raise load_failure(where, f"{where} could not be loaded as a diffusion model ({type(err).__name__}: {err}). "
                           "The folder may be incomplete or corrupt: train it again or copy it anew.") from err
    info = read_info(where) if isinstance(where, Path) else {}
    preconditioning = (info.get("score") or {}).get("preconditioning") if kind == "score" else None
    if preconditioning:
        precondition_score(unet, preconditioning["sigma_data"])
    model = LoadedModel(unet.eval(), scheduler, kind, str(where), info)
    return model.to(resolve_device(device) if isinstance(device, str) else device) if device is not None else model


def _load_local(folder: Path):
    if (folder / "model_index.json").exists():
        index = json.loads((folder / "model_index.json").read_text())
        if "unet" not in index or not (folder / "unet").is_dir():
            raise LabError(f"{folder} is a diffusers pipeline without a UNet (found {index.get('_class_name')}); "
                           "the lab runs UNet2DModel pipelines (DDPM, DDIM, score SDE).")
        unet = UNet2DModel.from_pretrained(folder, subfolder="unet", low_cpu_mem_usage=False)
        scheduler, kind = _scheduler_in(folder / "scheduler")
        return unet, scheduler, kind
    config = folder / "config.json"
    if config.exists() and json.loads(config.read_text()).get("_class_name") == "UNet2DModel":
        unet = UNet2DModel.from_pretrained(folder, low_cpu_mem_usage=False)
        scheduler, kind = _scheduler_in(folder)
        return unet, scheduler, kind
    raise LabError(f"{folder} is not a diffusion model folder: it needs model_index.json with unet/ and "
                   "scheduler/ (a diffusers pipeline), or config.json of a UNet2DModel with its "
                   "diffusion_pytorch_model.safetensors.")


def _scheduler_in(folder: Path):
    config = folder / "scheduler_config.json"
    if not config.exists():
        return DDPMScheduler(num_train_timesteps=1000), "ddpm"  # the diffusers DDPM default
    cls = json.loads(config.read_text()).get("_class_name", "DDPMScheduler")
    if cls == "ScoreSdeVeScheduler":
        return ScoreSdeVeScheduler.from_pretrained(folder), "score"
    return DDPMScheduler.from_pretrained(folder), "ddpm"  # DDIM/PNDM configs share the β schedule


def _load_hub(repo_id: str):
    try:
        unet = UNet2DModel.from_pretrained(repo_id, subfolder="unet")
    except OSError:
        unet = UNet2DModel.from_pretrained(repo_id)
    try:
        scheduler = DDPMScheduler.from_pretrained(repo_id, subfolder="scheduler")
    except OSError:
        scheduler = DDPMScheduler(num_train_timesteps=1000)
    kind = "score" if unet.config.time_embedding_type == "fourier" else "ddpm"
    if kind == "score":
        scheduler = ScoreSdeVeScheduler.from_pretrained(repo_id, subfolder="scheduler")
    return unet, scheduler, kind


def stored(net, fp16: bool = False):
    """What to save: ``net`` itself, or (``fp16``) a half-precision copy, half the file; ``from_pretrained`` and
    ``load_state_dict`` bring the weights back as fp32. The trained ``net`` is left as it is."""
    return copy.deepcopy(net).half() if fp16 else net


def store_half(folder: Path) -> None:
    """Re-write a saved diffusion folder's UNet in fp16 (what ``--fp16-weights`` writes: ``stored``) and say so in
    its record; it loads back as fp32."""
    save_unet(folder, load_diffusion(str(folder), "cpu").unet, fp16=True)
    write_info(folder, {**read_info(folder), "stored_dtype": "float16"})


def save_unet(folder: Path, unet: UNet2DModel, fp16: bool = False) -> None:
    """``unet.save_pretrained(folder / "unet")`` (in fp16 with ``fp16``), without the ``_name_or_path`` diffusers
    copies from where the UNet was loaded: a path of the machine that saved it, nothing about this folder."""
    stored(unet, fp16).save_pretrained(folder / "unet")
    config = folder / "unet" / "config.json"
    config.write_text(json.dumps({k: v for k, v in json.loads(config.read_text()).items() if k != "_name_or_path"},
                                 indent=2, sort_keys=True) + "\n")


def save_diffusion(folder: Path, unet: UNet2DModel, scheduler, kind: str, info: dict, fp16: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_unet(folder, unet, fp16)
    info = {**info, "stored_dtype": "float16" if fp16 else "float32"}
    scheduler.save_pretrained(folder / "scheduler")
    pipeline, scheduler_cls = PIPELINES[kind]
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": pipeline, "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", scheduler_cls], "unet": ["diffusers", "UNet2DModel"]}, indent=2))
    write_info(folder, {**info, "kind": kind})


def write_info(folder: Path, info: dict) -> None:
    info = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": versions(), **info}
    (folder / "training.json").write_text(json.dumps(info, indent=2, default=str))
    (folder / "README.md").write_text(model_card(folder.name, info))


def update_metrics(folder: Path, metrics: dict) -> None:
    """Merge measured metrics into training.json and rewrite the card."""
    info = read_info(folder)
    info.setdefault("metrics", {}).update(metrics)
    (folder / "training.json").write_text(json.dumps(info, indent=2, default=str))
    (folder / "README.md").write_text(model_card(folder.name, info))


def card_tags(info: dict) -> list[str]:
    """The Hub tags of a model card: per kind, and for score models per formulation (NCSN's discrete levels, or
    the VE SDE — with EDM's preconditioning when it has it)."""
    kind = info.get("kind", "model")
    if kind == "score":
        score = info.get("score", {})
        formulation = (["score-sde"] + (["edm"] if score.get("preconditioning") else [])
                       if score.get("continuous") else ["ncsn"])
        return ["diffusers", "score-matching", *formulation, "unconditional-image-generation"]
    return {"ddpm": ["diffusers", "ddpm", "unconditional-image-generation"],
            "gan": ["dcgan", "gan", "unconditional-image-generation"]}.get(kind, [kind])


def model_card(name: str, info: dict) -> str:
    kind = info.get("kind", "model")
    tags = card_tags(info)
    data = info.get("data", {})
    train = info.get("train_config", {})
    lines = ["---", "library_name: diffusers" if kind in ("ddpm", "score") else "library_name: pytorch",
             "tags:", *[f"- {t}" for t in tags], "---", "", f"# {name}", "", info.get("description", ""), "",
             "## Data", "", f"{data.get('name', '?')} ({data.get('split', 'train')} split, "
             f"{data.get('count', '?')} images, {data.get('size', '?')} px, {data.get('channels', '?')} channel(s)), "
             f"read from `LAB_DATA_DIR`.", "", "## How it was trained", "", "```bash",
             info.get("command", "(command not recorded)"), "```", "",
             *([info["command_note"], ""] if info.get("command_note") else []),
             f"- steps: {info.get('steps', '?')}, batch size {train.get('batch_size', '?')}, "
             f"lr {train.get('lr', '?')}, EMA {train.get('ema_decay', 'none')}, seed {train.get('seed', '?')}",
             f"- wall time: {info.get('wall_seconds', 0) / 60:.1f} min on {info.get('device', '?')}"
             f" ({info.get('threads', '?')} CPU threads"
             + (f", {info['processes']} data-parallel processes" if info.get("processes", 1) > 1 else "")
             + (f", {info['mixed_precision']} mixed precision" if info.get("mixed_precision", "no") != "no" else "")
             + ")", f"- parameters: {info.get('parameters', '?'):,}"
             if isinstance(info.get("parameters"), int) else "- parameters: ?",
             f"- final training loss: {info.get('final_loss', float('nan')):.4f}", "",
             f"- versions: {', '.join(f'{k} {v}' for k, v in info.get('versions', {}).items())}", "",
             "## Measured", ""]
    curve = info.get("fid_curve")
    if curve:
        how = info.get("fid_curve_settings", {})
        lines += [f"FID during training ({how.get('features', 'classifier features')}, n = {how.get('n', '?')}, "
                  f"{how.get('sampler', '')}):", "", "| step | FID |", "| --- | --- |",
                  *[f"| {c['step']} | {c['fid']:.2f} |" for c in curve], ""]
    metrics = info.get("metrics", {})
    if metrics:
        lines += ["| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in metrics.items()]
    else:
        lines.append(f"Not measured yet: `python -m lab evaluate --model {name} --fid-n 1000 --write-card`.")
    sampling = info.get("sampling")
    if sampling:
        settings = ", ".join(f"{k} {v}" for k, v in sampling.items() if k != "note")
        lines += ["", f"Recommended sampler (the tab, the CLI and the benches use it): {settings}"
                  + (f" — {sampling['note']}" if sampling.get("note") else "") + "."]
    lines += ["", "## Use", "", "```python", *_usage(name, kind, info), "```", ""]
    return "\n".join(lines)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _usage(name: str, kind: str, info: dict) -> list[str]:
    if kind == "ddpm":
        return ["from diffusers import DDPMPipeline", f'pipe = DDPMPipeline.from_pretrained("checkpoints/{name}")',
                "# or in the lab:", "from lab.models.store import load_diffusion",
                f'model = load_diffusion("{name}")']
    if kind == "score" and (info.get("score") or {}).get("preconditioning"):
        return ["from lab.models.store import load_diffusion", f'model = load_diffusion("{name}")',
                "# s(x, σ) = model.unet(x, σ).sample: load_diffusion wraps the UNet in EDM's preconditioning",
                "# (lab.models.precondition: c_in, c_noise = ¼ ln σ, c_skip, c_out; the plain diffusers UNet is F)",
                "# sampling: lab.diffusion.samplers.dpm_sample (DPM-Solver), pc_sample (predictor–corrector)"]
    if kind == "score":
        return ["from lab.models.store import load_diffusion", f'model = load_diffusion("{name}")',
                "# s(x, σ) = model.unet(x, σ).sample  (annealed Langevin: lab.diffusion.samplers)"]
    if kind == "gan":
        return ["from lab.models.gan import gan_samples, load_generator", f'g = load_generator("{name}")',
                "images = gan_samples(g, 16)  # [-1, 1]"]
    return ["from lab.models.store import load_classifier", f'net = load_classifier("{name}")']


def load_classifier(name_or_path: str | Path, device: torch.device | str | None = None):
    from lab.models.cnn import ConvNet

    where = resolve_model_path(name_or_path)
    if isinstance(where, Path) and not (where / "config.json").exists():
        raise LabError(f"{where} is not a classifier folder: it needs config.json and "
                       "diffusion_pytorch_model.safetensors (as `python -m lab train classifier` writes them).")
    try:
        net = ConvNet.from_pretrained(where, low_cpu_mem_usage=False)
    except Exception as err:
        raise load_failure(where, f"{where} could not be loaded as a classifier "
                                  f"({type(err).__name__}: {err}).") from err
    net.eval()
    return net.to(device) if device is not None else net


def save_classifier(folder: Path, net, info: dict, fp16: bool = False) -> None:
    """config.json + safetensors (``fp16``: stored in half precision, loaded back as fp32) and training.json."""
    folder.mkdir(parents=True, exist_ok=True)
    stored(net, fp16).save_pretrained(folder)
    write_info(folder, {**info, "kind": info.get("kind", "classifier"), "stored_dtype": "float16" if fp16 else
                        "float32"})
