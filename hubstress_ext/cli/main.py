"""``hubstress``: the original hub-stress-test.py's commands and flags, plus the new ones.

The scenarios' subcommands and flags are generated from the registry and each scenario's
option declarations (``engine.argv``); ``serve``'s from the batching settings' traitlets
(``batching.config``). Hub options may come before or after the subcommand
(``hubstress -c 5 stress-test`` and ``hubstress stress-test -c 5`` are the same).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence

from hubstress_ext.engine import argv as scenario_argv
from hubstress_ext.engine import registry
from hubstress_ext.engine.logs import setup_logging
from hubstress_ext.engine.run import Run
from hubstress_ext.engine.spec import build
from hubstress_ext.errors import OptionError
from hubstress_ext.hub.options import ENV_ENDPOINT, ENV_HUB_TOKEN, SandboxCommandOptions
from hubstress_ext.version import __version__

log = logging.getLogger("hubstress")

TOOL_COMMANDS = ("sandbox", "serve", "report")


class OneLineParser(argparse.ArgumentParser):
    """A bad value is one line naming the command, the option, the value and what is expected,
    then where the help is: not a screen of usage above it."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: error: {scenario_argv.one_line_error(message)}", file=sys.stderr)
        print(f"see `{self.prog} --help`", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="hubstress",
        description="Load-test a JupyterHub (spawn storms, activity storms, classes of students) "
        "or a batching endpoint, and record every request. `hubstress COMMAND --help` lists a "
        "command's options.",
    )
    parser.add_argument("--version", action="version", version=f"hubstress {__version__}")
    scenario_argv.add_global_options(parser)
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    scenario_argv.add_scenario_parsers(subs)

    p = subs.add_parser("sandbox", help="run a throwaway JupyterHub in the foreground")
    scenario_argv.add_options(p, SandboxCommandOptions)

    from hubstress_ext.batching.config import add_flags

    p = subs.add_parser("serve", help="run the micro-batching endpoint standalone")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--address", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add_flags(p)

    p = subs.add_parser("report", help="print the summary of a saved run")
    p.add_argument("run_dir", help="a directory written by --save")
    return parser


def _split_optional_path(argv: list[str]) -> list[str]:
    """``--log-to-file stress-test`` means "no PATH", not "a file named stress-test"."""
    commands = {*registry.names(), *TOOL_COMMANDS}
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--log-to-file" and out[i + 1] in commands:
            out[i] = "--log-to-file="
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = _split_optional_path(list(sys.argv[1:] if argv is None else argv))
    args = scenario_argv.parse_command_line(parser, words)
    if args.command is None:
        print(commands_list(parser), file=sys.stderr)
        return 2
    if args.command == "report":
        return _report(args.run_dir)
    if args.command == "serve":
        return _serve(args)
    try:
        if args.command == "sandbox":
            return _sandbox(args)
        run = registry.make_run(args.command, **scenario_argv.scenario_values(args))
    except OptionError as exc:
        print(f"hubstress {args.command}: error: {exc}", file=sys.stderr)
        print(f"see `hubstress {args.command} --help`", file=sys.stderr)
        return 2
    return _run(run, as_json=args.json)


def commands_list(parser: argparse.ArgumentParser) -> str:
    """``hubstress`` alone: what it can do, one line a command."""
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = ["usage: hubstress COMMAND [options]   (`hubstress COMMAND --help` for its options)", ""]
    for choice in subs._choices_actions:
        lines.append(f"  {choice.dest:<22}{choice.help or ''}")
    return "\n".join(lines)


def _run(run: Run, as_json: bool = False) -> int:
    """Execute with Ctrl-C handling and progress bars, print the report, save if asked."""
    verbose, log_file = run.log_options
    log_path = setup_logging(verbose, log_file, run.secrets)
    if log_path is not None:
        print(f"logging to {log_path}", file=sys.stderr)
        log.info("hubstress %s %s options=%s", __version__, run.scenario, run.options.public())
    with _restoring_signal_handlers():
        _execute_with_signals(run)
        saved = run.finish()  # before printing: a reader that leaves early loses nothing
        with _reader_may_leave():
            if as_json:
                print(json.dumps(run.report_json(), default=str))
            else:
                print(run.report())
            if saved is not None:
                print(f"saved run to {saved}", file=sys.stderr if as_json else sys.stdout)
            sys.stdout.flush()
    return run.exit_code


@contextlib.contextmanager
def _reader_may_leave() -> Iterator[None]:
    """``hubstress ... | head``: the reader closing the pipe ends the printing quietly (the run
    is over and saved by then), not with a BrokenPipeError traceback; the exit status stays the
    run's. What is still buffered goes to /dev/null, so the interpreter's last flush is quiet."""
    try:
        yield
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _execute_with_signals(run: Run) -> None:
    """SIGINT / SIGTERM drive ``run.interrupt()``: once stops (and cleans up), twice leaves at
    once (``purge`` finds the leftovers); what each press means is the engine's."""

    async def go() -> None:
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            message = run.interrupt(purge="hubstress purge")
            if message:
                say(message)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        try:
            await run.run_async()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):  # from here on: exit 130 (see below)
                loop.remove_signal_handler(sig)
                signal.signal(sig, _leave_130)

    def say(text: str) -> None:
        print(f"\n{text}", file=sys.stderr, flush=True)

    from hubstress_ext.cli.output import attach_progress_bars

    with attach_progress_bars(run):
        asyncio.run(go())


def _leave_130(signum: int, frame: object) -> None:
    raise SystemExit(130)


@contextlib.contextmanager
def _restoring_signal_handlers() -> Iterator[None]:
    """Around a run and its report: the run's loop leaves ``_leave_130`` installed (a Ctrl-C
    while the report prints or the run is saved exits 130, not a traceback); afterwards the
    handlers in force before are put back, so calling :func:`main` in-process changes nothing."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def entry() -> None:
    """The ``hubstress`` command: :func:`main`, then an exit no late Ctrl-C can turn into a crash.

    CPython resets Python-level signal handlers to the default while it finalizes (a second or
    so with pandas loaded), so a Ctrl-C then would kill the process by SIGINT; an ignored
    signal stays ignored. The exit status is decided by then.
    """
    code = main()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(code)


def _report(run_dir: str) -> int:
    from hubstress_ext.engine.saved import load_run

    try:
        saved = load_run(run_dir)
    except (FileNotFoundError, ValueError) as exc:
        print(f"hubstress: error: {exc}", file=sys.stderr)
        return 2
    with _reader_may_leave():
        print(f"saved run {saved.path} (hubstress {saved.version or '?'})")
        print(saved.report())  # what the live run printed
        sys.stdout.flush()
    return 0


def _serve(args: argparse.Namespace) -> int:
    from hubstress_ext.batching.config import from_args
    from hubstress_ext.batching.models import load_model
    from hubstress_ext.batching.standalone import serve

    config = from_args(args)
    try:
        settings, limits = config.settings(), config.limits()
        model = load_model(config.model)  # loaded once: checked here, served below
    except ValueError as exc:
        print(f"hubstress: error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(args.port, args.address, config.model, settings, limits=limits, loaded=model))
    except OSError as exc:
        print(
            f"hubstress: error: cannot listen on {args.address}:{args.port}: {exc.strerror}", file=sys.stderr
        )
        return 1
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from hubstress_ext.hub.run import sandbox_for
    from hubstress_ext.sandbox.hub import SandboxError

    values = {k: v for k, v in vars(args).items() if k != "command"}
    opts = build(SandboxCommandOptions, values).resolve()
    setup_logging(False, None, [])
    sandbox = sandbox_for(opts, port=opts.port)
    stop = asyncio.Event()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with sandbox:
            print(f"sandbox JupyterHub ({opts.sandbox_spawner} servers) at {sandbox.url}", flush=True)
            print(f"hub log: {sandbox.log_path}", flush=True)
            print(f"export {ENV_ENDPOINT}={sandbox.api_url} {ENV_HUB_TOKEN}={sandbox.token}", flush=True)
            print("Ctrl-C stops it and removes everything.", flush=True)
            await stop.wait()

    try:
        asyncio.run(serve())
    except SandboxError as exc:
        print(f"hubstress: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    entry()
