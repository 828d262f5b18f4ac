"""The conditioning methods, registered once: the CLI's ``--method`` choices, the tab's drop-downs, the defaults
and the comparison all come from ``METHODS``.

A method is a light ``Method`` record (listing the methods imports no torch) and a module of the same name in this
package, imported when the method is used, with ``prepare(config) -> Conditioner`` (load the models, return the
ε-callable factory) and ``models() -> list[str]`` (the shipped model folders that run it). Adding a method is one
new file here and one ``register(Method(...))`` line below.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from lab.errors import LabError


@dataclass
class Conditioner:
    """A method ready to sample: ``eps_for(labels)`` is the ε-callable for a batch of labels."""

    method: str
    scale: float | None
    spec: Any                      # lab.models.labels.LabelSpec
    scheduler: Any
    size: int
    channels: int
    device: Any                    # torch.device
    data: dict                     # what the model was trained on (name, condition_on, ...)
    eps_for: Callable = field(repr=False)
    description: str = ""


@dataclass(frozen=True)
class Method:
    name: str                              # the CLI's --method value
    label: str                             # the tab's choice and the tables' row name
    short: str                             # in messages: "Classifier-free w must be ..."
    default_model: str                     # the shipped model it runs by default
    scale_name: str | None = None          # "w" or "s" for a guided method; None: no guidance scale
    default_scale: float = 1.0             # the best scale of the shipped MNIST models (bench/conditional.py)
    scale_label: str = "Guidance scale (not used by this method)"
    uses_classifier: bool = False          # steered by a separate noisy classifier (the config's ``classifier``)

    @property
    def module(self):
        return importlib.import_module(f"{__name__}.{self.name.replace('-', '_')}")

    def prepare(self, config) -> Conditioner:
        """Load what the method needs for ``config`` (a validated ``ConditionalConfig``)."""
        return self.module.prepare(config)

    def models(self) -> list[str]:
        """The shipped model folders that can run this method."""
        return self.module.models()


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    METHODS[method.name] = method
    return method


def method_names() -> tuple[str, ...]:
    return tuple(METHODS)


def get(name: str) -> Method:
    if name not in METHODS:
        raise LabError(f"Unknown method {name!r}: choose one of {', '.join(METHODS)}.")
    return METHODS[name]


# the scales: the best of the shipped MNIST models in bench/conditional.py's sweeps (docs/RESULTS.md); larger ones
# raise FID for little or no accuracy
register(Method("label-embed", "1 · Label embedding (added to the time embedding)", "Label-embedding", "cfg-mnist"))
register(Method("condnorm", "2 · Conditional normalization", "Conditional-norm", "condnorm-mnist"))
register(Method("auxclf", "3 · Auxiliary classifier (self-guidance by its head)", "Auxiliary-classifier",
                "auxclf-mnist", "s", 30.0, "Self-guidance scale s (0 = the seed's setting: head unused)"))
register(Method("classifier-guidance", "4 · Classifier guidance (noisy classifier)", "Classifier-guidance",
                "ddpm-mnist", "s", 30.0, "Classifier scale s (0 = unconditional DDPM)", uses_classifier=True))
register(Method("cfg", "5 · Classifier-free guidance", "Classifier-free", "cfg-mnist", "w", 3.0,
                "Guidance weight w (0 = unconditional, 1 = plain conditional)"))
