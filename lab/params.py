"""One declaration per experiment setting.

A setting is a dataclass field made by :func:`param`: its default, help text, range or choices and its label
live in that one place. From the declaration come

* the CLI options (``Params.add_arguments``): names, defaults, help, choices;
* validation (``Params.validate``): types, ranges and choices, with messages that name the setting;
* ``Params.to_command()``: the "repeat with" line and REPRODUCE.md, which parses back to the same config;
* the tab's widgets (``lab.ui.form.Form``): defaults, ranges, labels and help.

    @dataclass
    class EditConfig(Params):
        COMMAND: ClassVar[str] = "edit"
        t0: int = param(400, "how far to invert (timestep of the latent)", low=1, high=999)

Cross-field rules stay in the class's own ``check()``, which ``validate()`` calls after the declared checks.
"""
from __future__ import annotations

import argparse
import shlex
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from functools import lru_cache
from typing import Any, Callable, ClassVar

from lab.errors import LabError


@dataclass(frozen=True)
class Param:
    help: str
    label: str | None = None          # the widget's label and the name in messages (default: from the field name)
    low: float | None = None
    high: float | None = None
    choices: tuple | Callable[[], tuple] | None = None   # a callable for registries filled at import time
    flag: str | None = None           # the CLI option (default: --field-name)
    cli: bool = True                  # an option of the command (False: set by the front end itself)
    ui_high: float | None = None      # the tab's slider ends here; the engine accepts up to ``high``
    step: float | None = None         # the slider's step
    always: bool = False              # to_command() writes it even at its default (the CLI would resolve it)


def param(default, help: str, **kwargs) -> Any:
    """A dataclass field with its declaration (see :class:`Param`); list defaults are copied per instance."""
    meta = {"param": Param(help, **kwargs)}
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Spec:
    """A declared setting with its resolved type: ``base`` int/float/str/bool, a list of ``base``, or optional."""
    name: str
    base: type
    is_list: bool
    optional: bool
    default: Any
    param: Param

    @property
    def label(self) -> str:
        return self.param.label or self.name.replace("_", " ").capitalize()

    @property
    def flag(self) -> str:
        return self.param.flag or "--" + self.name.replace("_", "-")

    @property
    def choices(self) -> tuple | None:
        c = self.param.choices
        return tuple(c() if callable(c) else c) if c is not None else None

    def parse(self, text: str):
        """A value as typed on the command line."""
        if self.optional and text.strip().lower() in ("none", ""):
            return None
        if self.is_list:
            return [self._one(part.strip()) for part in text.replace(";", ",").split(",") if part.strip()]
        return self._one(text)

    def _one(self, text: str):
        if self.base is bool:
            return text.strip().lower() in ("1", "true", "yes", "on")
        try:
            if self.base is int:
                number = float(text)  # 1e4 and 100.0 are whole numbers too
                if not number.is_integer():
                    raise ValueError
                return int(number)
            return self.base(text)
        except (ValueError, OverflowError):
            kind = {int: "a whole number", float: "a number"}.get(self.base, "a value")
            raise argparse.ArgumentTypeError(f"{self.label} must be {kind}, not {text!r}") from None

    def format(self, value) -> str:
        if value is None:
            return "none"
        if self.is_list:
            return ",".join(map(str, value))
        return str(value)

    def check(self, value):
        """The value, coerced to the declared type (int → float); LabError naming the setting when it is wrong."""
        if value is None:
            if self.optional:
                return None
            raise LabError(f"{self.label} must be given.")
        if self.is_list:
            if not isinstance(value, (list, tuple)):
                raise LabError(f"{self.label} must be a list, not {value!r}.")
            return [self._check_one(v) for v in value]
        return self._check_one(value)

    def _check_one(self, value):
        if self.base in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
                    or abs(value) == float("inf"):
                raise LabError(f"{self.label} must be a number{self._span()}, not {str(value)[:60]!r}.")
            if self.base is int:
                if value != int(value):
                    raise LabError(f"{self.label} must be a whole number{self._span()}, not {value!r}.")
                value = int(value)
            else:
                value = float(value)
            p = self.param
            if (p.low is not None and value < p.low) or (p.high is not None and value > p.high):
                raise LabError(f"{self.label} must be{self._span()}, not {value:g}.")
        elif self.base is bool:
            if not isinstance(value, bool):
                raise LabError(f"{self.label} must be true or false, not {value!r}.")
        elif not isinstance(value, str):
            raise LabError(f"{self.label} must be text, not {value!r}.")
        choices = self.choices
        if choices is not None and value not in choices:
            raise LabError(f"Unknown {self.label.lower()} {value!r}: choose one of {', '.join(map(str, choices))}.")
        return value

    def _span(self) -> str:
        low, high = self.param.low, self.param.high
        if low is not None and high is not None:
            return f" between {low:g} and {high:g}"
        if low is not None:
            return f" of at least {low:g}"
        return f" of at most {high:g}" if high is not None else ""


def _resolve(hint) -> tuple[type, bool, bool]:
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional, hint = True, args[0]
    if typing.get_origin(hint) in (list, tuple):
        return typing.get_args(hint)[0], True, optional
    return hint, False, optional


@lru_cache(maxsize=None)
def specs(cls) -> tuple[Spec, ...]:
    """The declared settings of a config class, in field order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        p = f.metadata.get("param")
        if p is None:
            continue
        default = f.default if f.default is not MISSING else f.default_factory()
        base, is_list, optional = _resolve(hints[f.name])
        out.append(Spec(f.name, base, is_list, optional, default, p))
    return tuple(out)


def spec(cls, name: str) -> Spec:
    for s in specs(cls):
        if s.name == name:
            return s
    raise KeyError(f"{cls.__name__} declares no setting {name!r}")


class Params:
    """Mixin of a dataclass config whose settings are declared with :func:`param`."""

    COMMAND: ClassVar[str] = ""   # ``python -m lab <COMMAND>`` runs it

    def check(self) -> None:
        """Rules between settings; the declared types, ranges and choices are checked before it."""

    def validate(self):
        for s in specs(type(self)):
            setattr(self, s.name, s.check(getattr(self, s.name)))
        self.check()
        return self

    # --- the CLI ------------------------------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, skip: tuple[str, ...] = (),
                      defaults: dict | None = None) -> None:
        """One option per declared setting; an option not given stays absent from the parsed namespace, so
        ``from_args`` can tell it from its default (and a saved config can fill it). ``defaults`` names the
        defaults the command itself puts in place (shown in the help)."""
        for s in specs(cls):
            if not s.param.cli or s.name in skip:
                continue
            default = (defaults or {}).get(s.name, s.default)
            shown = s.format(default) if default not in (None, "") else "none"
            text = s.param.help + (f" (default: {shown})" if s.base is not bool else "")
            if s.base is bool:
                parser.add_argument(s.flag, dest=s.name, action=argparse.BooleanOptionalAction,
                                    default=argparse.SUPPRESS, help=f"{s.param.help} (default: "
                                    f"{'on' if default else 'off'})")
                continue
            choices = s.choices if not s.is_list else None
            parser.add_argument(s.flag, dest=s.name, type=s.parse, default=argparse.SUPPRESS, help=text,
                                choices=choices, metavar=None if choices else s.name.upper())

    @classmethod
    def given(cls, args: argparse.Namespace) -> dict:
        """The declared settings given on the command line."""
        return {s.name: getattr(args, s.name) for s in specs(cls) if hasattr(args, s.name)}

    @classmethod
    def from_args(cls, args: argparse.Namespace, base: dict | None = None):
        """The config of a parsed command line: the defaults, updated by ``base`` (a saved config, defaults
        that suit a model), updated by the options given."""
        return cls.from_dict({**(base or {}), **cls.given(args)})

    @classmethod
    def from_dict(cls, values: dict):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise LabError(f"Unknown setting(s) for {cls.COMMAND or cls.__name__}: {', '.join(unknown)}.")
        return cls(**values)

    def to_command(self, extra: str = "") -> str:
        """``python -m lab <COMMAND> ...`` with every setting that differs from its default (and those marked
        ``always``): parsed back, it gives this config."""
        parts = ["python -m lab", *self.COMMAND.split()]
        for s in specs(type(self)):
            value = getattr(self, s.name)
            if not s.param.cli or (value == s.default and not s.param.always):
                continue
            if s.base is bool:
                parts.append(s.flag if value else "--no-" + s.flag[2:])
            else:
                parts += [s.flag, shlex.quote(s.format(value))]
        return " ".join(parts + ([extra] if extra else []))


def parse_command(cls, line: str):
    """The config a ``to_command()`` line describes (for tests and for reopening a REPRODUCE.md)."""
    words = shlex.split(line)
    n = len(["python", "-m", "lab", *cls.COMMAND.split()])
    parser = argparse.ArgumentParser(prog="lab", add_help=False, exit_on_error=False)
    cls.add_arguments(parser)
    return cls.from_args(parser.parse_args(words[n:]))
