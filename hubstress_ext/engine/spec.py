"""One declaration per option: a dataclass field carries its help, flag, bounds and choices.

An options class is a plain dataclass whose fields are made with :func:`option`. Everything
a front end needs is read from it: the CLI's flags (``cli.parser``), the cell magic's keys
and the widget panel's form (``notebook``), and the generic checks here (type, bounds,
choices), so a default or a bound is written once and every front end agrees.

    @dataclass
    class MyOptions(RunOptions):
        count: int = option(10, "number of users", flags=("-c",), low=1, panel=True)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from hubstress_ext.errors import OptionError

log = logging.getLogger("hubstress")

TRUE = frozenset({"true", "yes", "on", "1"})
FALSE = frozenset({"false", "no", "off", "0"})
_META = "hubstress"
UNSET = object()
EXAMPLE_OBJECT = '\'{"image": "x"}\''


@dataclass(frozen=True)
class Spec:
    """How one option is shown and checked (the field holds its name, type and default)."""

    help: str
    flags: tuple[str, ...] = ()  # short aliases on the CLI, e.g. ("-c",)
    flag: str | None = None  # the long flag when it is not --field-name
    choices: tuple[Any, ...] | None = None
    low: float | None = None  # the lowest allowed value...
    above: bool = False  # ...which is itself not allowed (a positive number: low=0, above=True)
    unit: str = ""  # named in messages: "seconds"
    secret: bool = False  # never echoed, logged or saved
    env: str | None = None  # the environment variable it falls back to (said in the help)
    positional: bool = False  # a CLI argument without a flag (bench's URL)
    metavar: str | None = None
    bare: Any = UNSET  # the value of the flag given without one (--log-to-file alone)
    parse: Callable[[str], Any] | None = None  # text -> value, when the type alone cannot say
    panel: bool = False  # a field of the widget panel's form
    panel_default: Any = UNSET  # what the panel's form starts with, when not the default
    label: str | None = None  # the panel's label (default: the field name with spaces)
    normalize: Callable[[Any], Any] | None = None  # a value given in code -> its checked form
    # the switch this option means nothing without (``needs="sandbox"``): given without it, the
    # option is refused, never silently ignored while the run goes elsewhere
    needs: str | None = None
    # old names still accepted, each with a warning naming the new one (``--timeout`` where it
    # meant the run's deadline is now ``--run-timeout``): scripts keep working, and say so
    aliases: tuple[str, ...] = ()
    # the words of a command line no other option took (``hubstress capacity SCENARIO ...``:
    # the probed scenario's own options): not a flag of its own; at most one per options class
    rest: bool = False


def option(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field with its :class:`Spec` (lists and dicts get a fresh copy per object)."""
    meta = {_META: Spec(help, **spec)}
    if isinstance(default, list | dict):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta, repr=not spec.get("secret", False))


@dataclass(frozen=True)
class Opt:
    """A declared option: field name, value type (``None`` allowed or not), default, spec."""

    name: str
    kind: type  # int, float, str, bool, list, dict
    optional: bool  # None is a valid value ("not given")
    default: Any
    spec: Spec

    @property
    def flag(self) -> str:
        return self.spec.flag or "--" + self.name.replace("_", "-")

    @property
    def label(self) -> str:
        return self.spec.label or self.name.replace("_", " ")

    @property
    def panel_value(self) -> Any:
        """What the panel's form shows first: the default, unless the spec says otherwise."""
        return self.default if self.spec.panel_default is UNSET else self.spec.panel_default

    def parse(self, text: str) -> Any:
        """A value from text (a CLI word, a cell magic line); OptionError names the option."""
        if self.spec.parse is not None:
            return self.spec.parse(text)
        if self.optional and self.kind is not str and text.strip().lower() in ("", "none"):
            return None  # a blank number means "not given" (a blank string is itself a value)
        if self.kind is bool:
            word = text.strip().lower()
            if word in TRUE or word in FALSE:
                return word in TRUE
            raise OptionError(f"{self.flag} is a switch: true or false (got {text!r})")
        if self.kind is int:
            try:
                return int(text)
            except ValueError:
                raise OptionError(f"{self.flag} must be a whole number (got {text!r})") from None
        if self.kind is float:
            try:
                return float(text)
            except ValueError:
                raise OptionError(f"{self.flag} must be a number{self._unit} (got {text!r})") from None
        return text

    def check(self, value: Any) -> None:
        """Type, finiteness, bounds and choices of a value given in code or parsed."""
        if value is None:
            if self.optional:
                return
            raise OptionError(f"{self.flag} needs a value")
        if self.kind is int and (not isinstance(value, int) or isinstance(value, bool)):
            raise OptionError(f"{self.flag} must be a whole number (got {value!r})")
        if self.kind is float and (
            isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
        ):
            raise OptionError(f"{self.flag} must be a finite number{self._unit} (got {value!r})")
        if self.kind is bool and not isinstance(value, bool):
            raise OptionError(f"{self.flag} is a switch: True or False (got {value!r})")
        low = self.spec.low
        if low is not None and self.kind in (int, float):
            if self.spec.above and value <= low:
                what = "a positive number" if low == 0 else f"a number above {low:g}"
                raise OptionError(f"{self.flag} must be {what}{self._unit} (got {value!r})")
            if value < low:
                if self.kind is int:
                    raise OptionError(f"{self.flag} must be at least {low:g} (got {value!r})")
                raise OptionError(f"{self.flag} must be a number >= {low:g}{self._unit} (got {value!r})")
        choices = self.spec.choices
        if choices is not None and value not in choices:
            raise OptionError(f"{self.flag} must be one of {', '.join(map(str, choices))} (got {value!r})")

    @property
    def _unit(self) -> str:
        return f" of {self.spec.unit}" if self.spec.unit else ""


@cache
def options_of(cls: type) -> tuple[Opt, ...]:
    """The declared options of an options class, in field order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(_META)
        if spec is None:
            continue
        kind, optional = _kind(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out.append(Opt(f.name, kind, optional, default, spec))
    return tuple(out)


def _kind(hint: Any) -> tuple[type, bool]:
    """``int | None`` -> (int, True); ``list[int]`` -> (list, False); a union of others -> str."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        optional = type(None) in args
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _kind(rest[0])[0], optional
        return str, optional  # e.g. a template: dict or its text; the class's validate parses it
    origin = typing.get_origin(hint) or hint
    return (origin if isinstance(origin, type) else str), False


def check_all(options: Any) -> None:
    """The generic checks of every declared option (a class's ``validate`` does the rest)."""
    declared = {o.name: o for o in options_of(type(options))}
    for opt in declared.values():
        if opt.spec.normalize is not None:
            setattr(options, opt.name, opt.spec.normalize(getattr(options, opt.name)))
        opt.check(getattr(options, opt.name))
    for opt in declared.values():
        needed = declared.get(opt.spec.needs or "")
        if (
            needed is not None
            and not getattr(options, needed.name)
            and getattr(options, opt.name) != opt.default
        ):
            raise OptionError(f"{opt.flag} needs {needed.flag} (without it, the option would be ignored)")


def needs_met(opt: Opt, values: dict[str, Any]) -> bool:
    """Whether ``opt``'s switch (if it has one) is on in ``values`` (a form's, say)."""
    return opt.spec.needs is None or opt.spec.needs not in values or bool(values[opt.spec.needs])


def public(options: Any) -> dict[str, Any]:
    """The options as saved, logged and shown: secrets replaced by whether they were set."""
    data = dataclasses.asdict(options)
    for opt in options_of(type(options)):
        if opt.spec.secret:
            data[opt.name] = "***" if data.get(opt.name) else None
    return data


def secret_values(options: Any) -> list[str]:
    """The values (as text) of the options declared ``secret`` that are set."""
    return [
        str(getattr(options, o.name))
        for o in options_of(type(options))
        if o.spec.secret and getattr(options, o.name, None)
    ]


def alias_name(flag: str) -> str:
    """``--timeout`` -> ``timeout``: an old flag's key in code, cells and scenario files."""
    return flag.lstrip("-").replace("-", "_")


def find_option(cls: type, key: str) -> Opt | None:
    """The option ``key`` names (``batch-size`` or ``batch_size``), or whose old name it is (then
    with a warning naming the new one); None when no option has that name."""
    name = key.replace("-", "_")
    for opt in options_of(cls):
        if opt.name == name:
            return opt
    for opt in options_of(cls):
        if name in (alias_name(a) for a in opt.spec.aliases):
            warn_alias(name, opt)
            return opt
    return None


def warn_alias(old: str, opt: Opt) -> None:
    log.warning("%s is an old name of %s (%s); it still works, for now", old, opt.flag, opt.spec.help)


def build(cls: type, values: dict[str, Any]) -> Any:
    """An options object from keyword values (old names taken with a warning), unknown names
    refused with the known ones."""
    known = {o.name for o in options_of(cls)}
    out = {}
    for key, value in values.items():
        opt = find_option(cls, key) if key not in known else None
        if key not in known and opt is None:
            raise OptionError(f"unknown option {key!r}; known: {', '.join(sorted(known))}")
        out[opt.name if opt is not None else key] = value
    return cls(**out)


# -- parsers for values the type alone cannot read -------------------------------------------


def parse_int_list(text: str, flag: str) -> list[int]:
    """``8,32,128`` -> [8, 32, 128], with an error naming the flag and the bad value."""
    values = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            values.append(int(part))
        except ValueError:
            raise OptionError(
                f"{flag} takes whole numbers separated by commas, e.g. 1,5,10 (got {part!r})"
            ) from None
    if not values:
        raise OptionError(f"{flag} needs at least one value")
    return values


def json_object(flag: str) -> Callable[[str], dict[str, Any]]:
    """A parser of a JSON object option whose errors name ``flag`` and say what is wrong."""

    def parse(text: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"{exc.msg} at character {exc.pos}"
            raise OptionError(f"{flag} must be a JSON object such as {EXAMPLE_OBJECT} ({where})") from None
        if not isinstance(value, dict):
            raise OptionError(f"{flag} must be a JSON object such as {EXAMPLE_OBJECT}")
        return value

    return parse
