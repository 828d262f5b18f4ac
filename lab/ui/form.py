"""A tab's widgets made from an experiment's declared settings (``lab.params``), and its values back to a config.

    FORM = Form(EditConfig)
    def build():
        t0 = FORM.widget("t0")                    # a slider 1 … 999 at the declared default, label and help
    def handler(t0, ...):
        config = FORM.config(locals())            # the values checked with messages that name each setting

The defaults, ranges and labels therefore equal the CLI's (tests/test_params.py checks it for every tab).
"""
from __future__ import annotations

from argparse import ArgumentTypeError
from typing import Mapping

import gradio as gr

from lab.errors import LabError
from lab.params import Spec, spec, specs

SLIDER_MAX_SPAN = 100_000   # wider ranges get a number box


def _words(text: str) -> set[str]:
    import re

    return set(re.findall(r"\w+", text.lower())) - {"the", "a", "an", "of", "per"}


def _redundant(help_text: str, label: str) -> bool:
    """Whether the help would only repeat the label (then the widget shows no info line)."""
    h, l = _words(help_text), _words(label)
    return l <= h and len(h - l) <= 2 or h <= l


class Form:
    def __init__(self, cls, fixed: Mapping | None = None):
        self.cls = cls
        self.fixed = dict(fixed or {})   # settings the tab does not show, with their values
        self.components: dict = {}       # name → the widget of the last build (tests read its opening value)

    def spec(self, name: str) -> Spec:
        return spec(self.cls, name)

    def widget(self, name: str, kind: str | None = None, **overrides) -> gr.components.Component:
        self.components[name] = component = self._make(name, kind, **overrides)
        return component

    def add(self, name: str, component):
        """Register a widget the tab made itself (e.g. a model drop-down) as the widget of setting ``name``."""
        self.spec(name)
        self.components[name] = component
        return component

    def share(self, other: "Form") -> None:
        """Use ``other``'s widgets for the settings both forms declare (one row of widgets feeds several
        buttons)."""
        names = {s.name for s in specs(self.cls)}
        self.components.update({n: c for n, c in other.components.items() if n in names})

    def _make(self, name: str, kind: str | None = None, **overrides) -> gr.components.Component:
        """The widget of one declared setting; ``kind`` (slider, number, radio, dropdown, text) and gradio keyword
        arguments (label, info, visible, scale ...) override what the declaration implies."""
        s = self.spec(name)
        p = s.param
        common = dict(label=s.label, info=p.help[:1].upper() + p.help[1:])
        if _redundant(p.help, overrides.get("label", s.label)):
            common.pop("info")
        choices = s.choices
        if s.base is bool:
            common.pop("info", None)
            return gr.Checkbox(**{"value": s.default, **common, **overrides})
        if s.is_list:
            if choices is not None:
                return gr.CheckboxGroup(**{"choices": list(choices), "value": list(s.default), **common, **overrides})
            return gr.Textbox(**{"value": s.format(s.default), "max_lines": 1, **common, **overrides})
        if choices is not None:
            cls = gr.Radio if kind == "radio" else gr.Dropdown
            return cls(**{"choices": list(choices), "value": s.default, **common, **overrides})
        if s.base in (int, float):
            high = p.ui_high if p.ui_high is not None else p.high
            slider = kind == "slider" or (kind is None and p.low is not None and high is not None
                                          and high - p.low <= SLIDER_MAX_SPAN and s.default is not None)
            if slider:
                step = p.step or (1 if s.base is int else (high - p.low) / 100)
                return gr.Slider(**{"minimum": p.low, "maximum": high, "step": step, "value": s.default,
                                    **common, **overrides})
            return gr.Number(**{"value": s.default, "precision": 0 if s.base is int else None,
                                "minimum": p.low, "maximum": high, **common, **overrides})
        return gr.Textbox(**{"value": "" if s.default is None else s.default, "max_lines": 1, **common,
                             **overrides})

    def value(self, name: str, raw):
        """One widget's value as the setting's type; LabError naming the setting when it does not fit."""
        s = self.spec(name)
        if isinstance(raw, str) and (s.is_list or s.base is not str):
            raw = raw.strip()
            if s.optional and raw == "":
                return None
            if s.is_list and s.choices is None:
                try:
                    return s.check(s.parse(raw))
                except (ValueError, TypeError, ArgumentTypeError):
                    kind = {int: "whole numbers", float: "numbers"}.get(s.base, "values")
                    raise LabError(f"{s.label} must be {kind} separated by commas, not {raw[:60]!r}.") from None
            if s.base in (int, float):
                try:
                    raw = float(raw)
                except ValueError:
                    raise LabError(f"{s.label} must be a number, not {raw[:60]!r}.") from None
        if s.base is str and not s.is_list:
            raw = None if raw is None else str(raw).strip()
            if s.optional and not raw:
                return None
            raw = raw or ""
        if s.is_list and isinstance(raw, tuple):
            raw = list(raw)
        return s.check(raw)

    def config(self, values: Mapping, **settings):
        """The config from the tab's widget values (``values``: name → value, e.g. a handler's ``locals()``),
        with ``settings`` (already clean values the handler derived itself) and the form's fixed ones."""
        clean = {s.name: self.value(s.name, values[s.name]) for s in specs(self.cls)
                 if s.name in values and s.name not in settings}
        return self.cls(**{**self.fixed, **clean, **settings})
