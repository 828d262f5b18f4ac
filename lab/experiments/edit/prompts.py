"""The data and prompts that suit a DDPM backbone, read from its training record (faces for a face DDPM)."""
from __future__ import annotations

from pathlib import Path

from lab.errors import LabError

# Prompts the shipped CLIP can read, by the data a backbone was trained on
PROMPTS = {"mnist": ("a digit", "a sketch of a digit"), "usps": ("a digit", "a sketch of a digit"),
           "digits": ("a digit", "a sketch of a digit"), "fashion": ("a garment", "a sketch of a garment"),
           "utkface": ("a photo of a face", "a pencil sketch of a face"),
           "celeba": ("a photo of a face", "a pencil sketch of a face")}


def backbone_defaults(model: str) -> dict:
    """The data, source/target prompts and editing recipe (lab/experiments/edit/recipes.py) that suit a backbone,
    read from its training record without loading it; empty when the record does not say (e.g. a Hub model)."""
    from lab.models.store import read_info, resolve_model_path

    try:
        where = resolve_model_path(model)
    except LabError:
        return {}
    data = read_info(where).get("data", {}).get("name") if isinstance(where, Path) else None
    if data not in PROMPTS:
        return {}
    from lab.experiments.edit.recipes import recipe_for

    return {"data": data, "source": PROMPTS[data][0], "target": PROMPTS[data][1], **recipe_for(data)}
