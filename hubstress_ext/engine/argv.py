"""CLI-style arguments for the scenarios, generated from the registry and the option specs.

Two front ends read command lines: the ``hubstress`` CLI and the ``%hubstress`` line magic;
both build their parsers here, so a scenario's flags are declared once (its options class).
Hub options may come before the scenario, as in the original script
(``hubstress -c 5 stress-test`` is ``hubstress stress-test -c 5``).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from hubstress_ext.engine import registry
from hubstress_ext.engine.spec import UNSET, Opt, options_of, warn_alias
from hubstress_ext.errors import OptionError

HELP_DEFAULTS_HIDDEN = (None, False, "", {}, [])


class RaisingParser(argparse.ArgumentParser):
    """A parser for notebook front ends: errors raise OptionError instead of exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise OptionError(one_line_error(message))


def _typed(opt: Opt):
    """argparse's ``type=``: the option's own parser, its error shown as argparse's message."""

    def parse(text: str) -> Any:
        try:
            return opt.parse(text)
        except OptionError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def help_text(opt: Opt) -> str:
    text = opt.spec.help
    if opt.default not in HELP_DEFAULTS_HIDDEN:
        default = ",".join(map(str, opt.default)) if isinstance(opt.default, list) else opt.default
        text += f" (default {default})"
    if opt.spec.env:
        text += f" (env {opt.spec.env})"
    return text.replace("%", "%%")


def add_options(
    parser: argparse.ArgumentParser, options_type: type, names: set[str] | None = None, hidden: bool = False
) -> None:
    """One argument per declared option. Defaults are left out of the namespace (SUPPRESS):
    only what was given is passed on, and the options class supplies the rest. ``hidden``:
    accepted but not listed in the help (hub options before the scenario's name)."""
    for opt in options_of(options_type):
        if (names is not None and opt.name not in names) or opt.spec.rest:
            continue
        if opt.spec.positional:
            parser.add_argument(opt.name, type=_typed(opt), help=help_text(opt))
            continue
        shown = argparse.SUPPRESS if hidden else help_text(opt)
        kw: dict[str, Any] = {"dest": opt.name, "default": argparse.SUPPRESS, "help": shown}
        if opt.kind is bool:
            kw["action"] = "store_true"
        else:
            kw["type"] = _typed(opt)
            kw["metavar"] = opt.spec.metavar or _metavar(opt)
            if opt.spec.choices:
                kw["metavar"] = "{" + ",".join(map(str, opt.spec.choices)) + "}"
            if opt.spec.bare is not UNSET:  # --log-to-file alone: a temp file
                kw["nargs"], kw["const"] = "?", opt.spec.bare
        parser.add_argument(*opt.spec.flags, opt.flag, **kw)
        if opt.spec.aliases:  # the old spellings: accepted, not listed, each use warned about
            old = {**kw, "help": argparse.SUPPRESS, "action": _old_flag(opt)}
            parser.add_argument(*opt.spec.aliases, **old)


def _old_flag(opt: Opt) -> type[argparse.Action]:
    """An argparse action for an old flag of ``opt``: warns, then stores (or sets) its value."""

    class OldFlag(argparse.Action):
        def __init__(self, option_strings, dest, nargs=None, **kw):  # noqa: ANN001
            if opt.kind is bool:  # a switch: no value to read
                kw.pop("type", None)
            super().__init__(option_strings, dest, nargs=0 if opt.kind is bool else nargs, **kw)

        def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
            warn_alias(option_string or self.option_strings[0], opt)
            setattr(namespace, self.dest, True if opt.kind is bool else values)

    return OldFlag


def _metavar(opt: Opt) -> str:
    if opt.kind is int:
        return "N"
    if opt.kind is float:
        return "SECONDS" if opt.spec.unit == "seconds" else "NUMBER"
    return opt.name.upper()


def before_command_types() -> list[type]:
    """The options types also accepted before the scenario's name (``Options.before_command``:
    the hub scenarios', as the original script took them)."""
    types = (registry.scenario(n).options_type for n in registry.names())
    return [t for t in types if getattr(t, "before_command", False)]


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """Those options at the top level (each name once), not listed in the top-level help:
    each subcommand's help lists its own."""
    seen: set[str] = set()
    for options_type in before_command_types():
        fresh = {o.name for o in options_of(options_type)} - seen
        add_options(parser, options_type, fresh, hidden=True)
        seen |= fresh


FLAG_IN_MESSAGE = re.compile(r"^argument (\S+): (?=-)")


def one_line_error(message: str) -> str:
    """argparse's "argument --rate: --rate must be a number" without the doubled flag."""
    return FLAG_IN_MESSAGE.sub("", message)


def add_scenario_parsers(subs: argparse._SubParsersAction) -> None:
    for name in registry.names():
        cls = registry.scenario(name)
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else None
        # a scenario that takes the words it does not know (capacity: the probe's options) must
        # not read an abbreviation of its own flags into them (--re would be --repeats)
        p = subs.add_parser(
            name,
            help=summary,
            allow_abbrev=rest_option(cls.options_type) is None,
            epilog=cls.help_epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,  # the epilog's examples as written
        )
        add_options(p, cls.options_type)
        p.add_argument(
            "--file",
            dest="scenario_file",
            metavar="TOML",
            default=argparse.SUPPRESS,
            help="read options from a TOML scenario file (flags given here win)",
        )
        p.add_argument("--json", action="store_true", help="print the result as one JSON object")


def rest_option(options_type: type) -> Opt | None:
    """The option that takes the words no flag took (``Spec.rest``), if the scenario has one."""
    return next((o for o in options_of(options_type) if o.spec.rest), None)


def parse_command_line(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse; words no option knows go to the scenario's rest option when it has one (the
    probed scenario's options after ``capacity SCENARIO``), and are an error otherwise."""
    args, extras = parser.parse_known_args(argv)
    if not extras:
        return args
    command = getattr(args, "command", None)
    rest = rest_option(registry.scenario(command).options_type) if command in registry.names() else None
    if rest is None:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    setattr(args, rest.name, extras)
    return args


def scenario_values(args: argparse.Namespace) -> dict[str, Any]:
    """The options given for the chosen scenario; one given before it that it lacks is an error."""
    name = args.command
    known = {o.name for o in options_of(registry.scenario(name).options_type)}
    values = {k: v for k, v in vars(args).items() if k not in ("command", "json", "scenario_file")}
    stray = sorted(set(values) - known)
    if stray:
        flag = next(o.flag for t in before_command_types() for o in options_of(t) if o.name == stray[0])
        raise OptionError(f"{flag} is not an option of {name}")
    path = getattr(args, "scenario_file", None)
    if path is not None:
        from hubstress_ext.engine.scenario_file import file_values

        values = {**file_values(path, name)[1], **values}  # what the command line says wins
    return values


_parsers: dict[tuple[str, ...], argparse.ArgumentParser] = {}


def scenario_parser() -> argparse.ArgumentParser:
    """The scenarios' parser for notebook front ends (raising; built once per set of scenarios)."""
    key = tuple(registry.names())
    if key not in _parsers:
        parser = RaisingParser(prog="%hubstress", description="Run a hubstress scenario.")
        add_global_options(parser)
        subs = parser.add_subparsers(dest="command", metavar="SCENARIO", parser_class=RaisingParser)
        add_scenario_parsers(subs)
        _parsers.clear()
        _parsers[key] = parser
    return _parsers[key]


def parse_scenario_argv(argv: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """``["stress-test", "--count", "5"]`` -> ("stress-test", {"count": 5}).

    No scenario named (``--count 100`` alone) means a spawn storm. Raises OptionError with one
    readable line; ``-h`` prints the help and raises SystemExit, as argparse does.
    """
    argv = list(argv)
    if not argv or argv[0].startswith("-"):
        argv = [registry.DEFAULT_SCENARIO, *argv]
    registry.scenario(argv[0])  # an unknown name: one line listing the known ones
    args = parse_command_line(scenario_parser(), argv)
    return args.command, scenario_values(args)
