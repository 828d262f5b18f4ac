"""One declaration per setting: for every experiment the CLI's default config, the tab's default config and the
dataclass default are equal, ``to_command()`` parses back to the same config, and bad values get messages that
name the setting. Also: a typed path is judged inside/outside the allowed folders before anything is looked up."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
from dataclasses import dataclass, replace

import gradio as gr
import pytest

import lab.ui
from lab.errors import LabError
from lab.params import Params, param, parse_command, specs


def _forms():
    out = []
    for info in pkgutil.iter_modules(lab.ui.__path__):
        module = importlib.import_module(f"lab.ui.{info.name}")
        for form in getattr(module, "FORMS", ()):
            out.append(pytest.param(module, form, id=f"{info.name}-{form.cls.__name__}"))
    return out


FORMS = _forms()


def test_every_experiment_tab_declares_its_forms():
    tabs = {p.values[0].__name__.rsplit(".", 1)[1] for p in FORMS}
    assert {"denoise"} <= tabs


@pytest.mark.parametrize("module, form", FORMS)
def test_tab_cli_and_dataclass_defaults_are_one(module, form):
    with gr.Blocks():
        module.build()
    shown = {name: component.value for name, component in form.components.items()}
    assert shown, "the tab shows none of the declared settings"
    assert form.config(shown) == form.cls(), "the tab opens with other values than the declaration's defaults"
    from lab.cli import build_parser

    args = build_parser().parse_args(form.cls.COMMAND.split() + _required(form.cls))
    assert form.cls.from_args(args) == form.cls(), "the CLI's defaults differ from the declaration's"


def _required(cls) -> list[str]:
    return list(getattr(cls, "REQUIRED_ARGS", ()))


def _changed(cls):
    """A config with every declared setting moved off its default (within its range and choices)."""
    values = {}
    for s in specs(cls):
        if not s.param.cli:
            continue
        d, p = s.default, s.param
        if s.base is bool:
            values[s.name] = not d
        elif s.choices and not s.is_list:
            others = [c for c in s.choices if c != d]
            if others:
                values[s.name] = others[-1]
        elif s.is_list and s.choices:
            values[s.name] = list(s.choices[:1])
        elif s.is_list:
            values[s.name] = [s.base(p.low or 1) if s.base is not str else "x"] * 2
        elif s.base is int:
            values[s.name] = int(p.low if p.low is not None and p.low != d else (d or 0) + 1)
        elif s.base is float:
            values[s.name] = float(p.low if p.low is not None and p.low != d else (d or 0) + 0.5)
        elif s.base is str and d not in (None,) and not s.choices:
            values[s.name] = f"{d}-other" if d else "something else"
    return replace(cls(), **values)


@pytest.mark.parametrize("module, form", FORMS)
def test_to_command_parses_back_to_the_same_config(module, form):
    for config in (form.cls(), _changed(form.cls)):
        line = config.to_command()
        assert line.startswith(f"python -m lab {form.cls.COMMAND}")
        assert parse_command(form.cls, line) == config, line


@dataclass
class Toy(Params):
    COMMAND = "toy run"
    steps: int = param(10, "how many", low=1, high=100, label="Steps")
    rate: float | None = param(0.5, "a rate", low=0, high=1)
    names: list[str] = param(["a", "b"], "some names")
    mode: str = param("fast", "how", choices=("fast", "slow"))
    on: bool = param(True, "whether", flag="--thing")
    text: str = param("two words", "free text")


def test_declared_checks_name_the_setting_and_coerce_types():
    assert Toy(steps=3.0).validate().steps == 3 and isinstance(Toy(rate=1).validate().rate, float)
    for bad, message in ((dict(steps=0), "Steps must be between 1 and 100, not 0"),
                         (dict(steps=2.5), "Steps must be a whole number"),
                         (dict(steps=True), "Steps must be a number"),
                         (dict(rate=float("nan")), "Rate must be a number"),
                         (dict(mode="medium"), "Unknown mode 'medium': choose one of fast, slow"),
                         (dict(on="yes"), "On must be true or false")):
        with pytest.raises(LabError, match=message):
            Toy(**bad).validate()
    assert Toy(rate=None).validate().rate is None


def test_cli_options_come_from_the_declaration():
    parser = argparse.ArgumentParser(exit_on_error=False)
    Toy.add_arguments(parser)
    args = parser.parse_args(["--steps", "1e1", "--rate", "none", "--names", "x,y", "--no-thing"])
    assert Toy.from_args(args) == Toy(steps=10, rate=None, names=["x", "y"], on=False)
    assert Toy.from_args(parser.parse_args([]), base={"mode": "slow"}) == Toy(mode="slow")  # a saved config fills
    assert "how many (default: 10)" in parser.format_help()
    line = Toy(steps=7, text="it's here", on=False).to_command()
    assert line == "python -m lab toy run --steps 7 --no-thing --text 'it'\"'\"'s here'"
    assert parse_command(Toy, line) == Toy(steps=7, text="it's here", on=False)
    with pytest.raises(LabError, match="Unknown setting"):
        Toy.from_dict({"stepz": 3})


@pytest.mark.parametrize("existing, missing", [("README.md", "nosuchfile.md"), ("lab/config.py", "lab/nosuch.py"),
                                               ("lab", "nolab_dir")])
def test_a_typed_path_gets_the_same_answer_whether_or_not_it_exists(existing, missing, monkeypatch):
    """A remote user must not learn which files exist outside the allowed folders from the messages."""
    from pathlib import Path

    from lab.models.store import check_model_source
    from lab.ui.common import clip_in

    root = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(root)
    assert (root / existing).exists() and not (root / missing).exists()

    def answer(fn, text):
        with pytest.raises(LabError) as err:
            fn(text)
        return str(err.value).replace(repr(text), "NAME")

    assert answer(check_model_source, existing) == answer(check_model_source, missing)
    assert answer(clip_in, existing) == answer(clip_in, missing)


def _documented_commands(text: str) -> list[str]:
    """The ``python -m lab`` commands of a Markdown text's fenced code blocks (continuations joined, ``&&``
    chains split, comments dropped)."""
    import re

    out = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("python -m lab "):
                    out.append(part[len("python -m lab "):])
    return out


def test_every_documented_command_line_parses():
    """The commands in README.md, docs/RESULTS.md and the model cards (shipped and staged) parse with today's CLI."""
    import shlex
    from pathlib import Path

    from lab.cli import build_parser

    root = Path(__file__).resolve().parent.parent
    parser = build_parser()
    lines = [(doc.name, line) for doc in [root / "README.md", root / "docs" / "RESULTS.md",
                                          *sorted((root / "checkpoints").glob("*/README.md")),
                                          *sorted((root / "staging").glob("*/README.md"))]
             for line in _documented_commands(doc.read_text())]
    assert len(lines) > 20
    bad = []
    for doc, line in lines:
        try:
            parser.parse_args(shlex.split(line, comments=True))
        except SystemExit:
            bad.append(f"{doc}: {line}")
    assert not bad, "\n".join(bad)
