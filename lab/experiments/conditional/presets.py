"""Ready-made Class-conditional settings, declared once: the tab's preset buttons and ``python -m lab conditional
--preset NAME`` both read them (a value typed on the command line or changed in the tab still wins).

``faces`` is the offline version of the seed's last generative figure (a classifier-guided 10 × 10 grid on faces,
one row per CelebA attribute): the shipped UTKFace DDPM steered by a noise-aware classifier of gender × age bucket,
one row per combination, judged by an independent clean classifier of the same ten labels. With CelebA on disk,
the seed's ten attributes go the same way (``python -m lab train noisy-classifier --data celeba --condition-on
attributes --init-from <a CelebA DDPM>``; an attribute grid has one row per attribute).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lab.errors import LabError


@dataclass(frozen=True)
class Preset:
    name: str             # --preset NAME
    label: str            # the tab's button
    values: dict = field(default_factory=dict)   # ConditionalConfig fields
    note: str = ""        # what the preset shows, in a sentence


PRESETS: dict[str, Preset] = {}


def register(preset: Preset) -> Preset:
    PRESETS[preset.name] = preset
    return preset


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise LabError(f"Unknown preset {name!r}: choose one of {', '.join(PRESETS)}.")
    return PRESETS[name]


register(Preset("digits", "Digits: classifier-free guidance (MNIST)",
                {"method": "cfg", "model": "cfg-mnist", "scale": 3.0, "classes": "all", "per_class": 10,
                 "steps": 50},
                "ten digit rows from the label-dropout model at its best guidance weight"))
# s = 100: the best of 0, 10, 30, 100 on validation noise (bench/conditional.py --faces; docs/RESULTS.md, "Faces")
register(Preset("faces", "Faces: one row per gender × age bucket (UTKFace 64 px, classifier guidance)",
                {"method": "classifier-guidance", "model": "ddpm-utkface64", "classifier": "noisy-classifier-utkface64",
                 "scale": 100.0, "classes": "all", "per_class": 10, "steps": 50, "batch_size": 100},
                "the UTKFace DDPM steered by a noise-aware gender × age classifier, one row per combination"))
