"""``hubstress``: the original hub-stress-test.py's commands and flags, plus the new ones.

Global options may come before or after the subcommand (``hubstress -c 5 stress-test`` and
``hubstress stress-test -c 5`` are the same).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator, Sequence

from hubstress_ext import __version__
from hubstress_ext.cli.logs import setup_logging
from hubstress_ext.cli.output import print_report
from hubstress_ext.engine.options import (
    ENV_ENDPOINT,
    ENV_TOKEN,
    ActivityOptions,
    HubOptions,
    OptionError,
    PurgeOptions,
    StressOptions,
    parse_user_options,
)
from hubstress_ext.engine.run import Run

log = logging.getLogger("hubstress")

HUB_COMMANDS = ("stress-test", "activity-stress-test", "purge")


def _common(parser: argparse.ArgumentParser, sub: bool) -> None:
    """Options accepted at both levels; on subparsers they default to 'not given'."""

    def d(value):
        return argparse.SUPPRESS if sub else value

    g = parser.add_argument_group("hub options")
    g.add_argument(
        "-e",
        "--endpoint",
        default=d(None),
        help=f"hub API URL, e.g. http://127.0.0.1:8000/hub/api (env {ENV_ENDPOINT})",
    )
    g.add_argument(
        "-t",
        "--token",
        default=d(None),
        help=f"admin API token (env {ENV_TOKEN}); never logged or saved",
    )
    g.add_argument(
        "--dry-run",
        action="store_true",
        default=d(False),
        help="print the requests the run would send, send nothing",
    )
    g.add_argument(
        "--log-to-file",
        nargs="?",
        const="",
        default=d(None),
        metavar="PATH",
        help="also log (at debug level) to PATH, or to a timestamped temp file",
    )
    g.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=d(False),
        help="debug logging, including every request's timing",
    )
    g.add_argument(
        "-k",
        "--keep",
        action="store_true",
        default=d(False),
        help="keep the users/servers the run created",
    )
    g.add_argument("-c", "--count", type=int, default=d(100), help="number of users (default 100)")
    g.add_argument(
        "-b",
        "--batch-size",
        type=int,
        default=d(10),
        help="users created / servers started at a time (default 10)",
    )
    g.add_argument("--workers", type=int, default=d(10), help="concurrent activity senders (default 10)")
    g.add_argument(
        "-p",
        "--profile",
        default=d(None),
        help="profile name sent as the spawn's user options ({'profile': NAME})",
    )
    g.add_argument(
        "--prefix",
        default=d("hubstress-"),
        help="name prefix of the users this tool creates (default hubstress-)",
    )
    g.add_argument(
        "--sandbox",
        action="store_true",
        default=d(False),
        help="run against a throwaway JupyterHub started for this command",
    )
    g.add_argument(
        "--sandbox-spawner",
        choices=("real", "sim"),
        default=d("real"),
        help="sandbox servers: real jupyterhub-singleuser, or simulated (thousands)",
    )
    g.add_argument(
        "--spawn-limit",
        type=int,
        default=d(100),
        dest="sandbox_spawn_limit",
        help="the sandbox hub's concurrent_spawn_limit (default 100)",
    )
    g.add_argument(
        "--save",
        default=d(None),
        metavar="DIR",
        help="save the run (metadata without the token, records) under DIR",
    )
    g.add_argument(
        "--timeout",
        type=float,
        default=d(1800.0),
        help="deadline for the whole run in seconds (default 1800)",
    )
    g.add_argument(
        "--request-timeout",
        type=float,
        default=d(30.0),
        help="timeout of one HTTP request in seconds (default 30)",
    )
    g.add_argument(
        "--max-retries",
        type=int,
        default=d(5),
        help="retries per request on 429/503/504/connection errors (default 5)",
    )
    g.add_argument(
        "--scrape-metrics",
        type=float,
        default=d(0.0),
        metavar="SECONDS",
        help="scrape the hub's /hub/metrics every SECONDS during the run (needs read:metrics; 0 = off)",
    )


class _Parser(argparse.ArgumentParser):
    """An argument parser for the notebook front ends: errors raise instead of exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise OptionError(message)


def build_parser(raising: bool = False) -> argparse.ArgumentParser:
    parser = (_Parser if raising else argparse.ArgumentParser)(
        prog="hubstress",
        description="Load-test a JupyterHub (spawn storms, activity storms) and record every request.",
    )
    parser.add_argument("--version", action="version", version=f"hubstress {__version__}")
    _common(parser, sub=False)
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = subs.add_parser("stress-test", help="create users, spawn their servers, time each to ready")
    _common(p, sub=True)
    p.add_argument(
        "--ramp",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="spread spawn requests evenly over SECONDS (default 0: burst)",
    )
    p.add_argument("--server-name", default="", help="start a named server instead of the default")
    p.add_argument(
        "--user-options",
        type=parse_user_options,
        default=None,
        metavar="JSON",
        help="extra user options (a JSON object) sent with each spawn",
    )
    p.add_argument(
        "--spawn-timeout",
        type=float,
        default=600.0,
        help="seconds to wait for one server to become ready (default 600)",
    )
    p.add_argument(
        "--stop-timeout",
        type=float,
        default=300.0,
        help="seconds to wait for servers to stop (default 300)",
    )

    p = subs.add_parser("activity-stress-test", help="post user activity from N workers, probe API latency")
    _common(p, sub=True)
    p.add_argument("--duration", type=float, default=None, help="seconds to run (default 10)")
    p.add_argument("--requests", type=int, default=None, help="stop after this many activity posts")
    p.add_argument(
        "--probe-interval",
        type=float,
        default=0.1,
        help="seconds between latency probes (default 0.1)",
    )

    p = subs.add_parser("purge", help="delete the users this tool created (prefix + marker group)")
    _common(p, sub=True)

    p = subs.add_parser("sandbox", help="run a throwaway JupyterHub in the foreground")
    _common(p, sub=True)
    p.add_argument("--port", type=int, default=None, help="public port (default: a free one)")

    p = subs.add_parser("serve", help="run the micro-batching endpoint standalone")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--address", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--batch-size", type=int, default=5, help="dispatch at this many queued items (default 5)")
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=20.0,
        help="...or when the oldest waited this long; 0 = greedy (default 20)",
    )
    p.add_argument(
        "--max-queue", type=int, default=1000, help="refuse beyond this many queued (default 1000)"
    )
    p.add_argument(
        "--deadline-ms",
        type=float,
        default=30000.0,
        help="per-request deadline; 504 when it expires while queued (default 30000)",
    )
    p.add_argument(
        "--max-delay-ms",
        type=float,
        default=1000.0,
        help="refuse an arrival whose predicted wait for its batch is longer; 0 = off (default 1000)",
    )
    p.add_argument(
        "--latency-slo-ms",
        type=float,
        default=0.0,
        help="adaptive mode: choose the batch size for throughput with p99 under this; 0 = off (default)",
    )
    p.add_argument(
        "--refuse-status",
        type=int,
        default=503,
        choices=(503, 429),
        help="status of a refusal, with Retry-After (default 503)",
    )
    p.add_argument("--max-body-bytes", type=int, default=64 * 1024, help="413 above this (default 65536)")
    p.add_argument(
        "--header-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="close a connection whose request headers (or next request) take longer (default 30)",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="close a connection whose request body takes longer to arrive (default 30)",
    )
    p.add_argument(
        "--model", default="echo", help="echo, echo-async, mlp, device-sim or module:function (default echo)"
    )

    _load_parsers(subs)

    p = subs.add_parser("report", help="print the summary of a saved run")
    p.add_argument("run_dir", help="a directory written by --save")
    return parser


def _load_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", help="the endpoint, e.g. http://127.0.0.1:8765/hubstress/batch")
    p.add_argument(
        "--template",
        default=None,
        metavar="JSON",
        help='request body: a JSON object (or @file); "ts" is set to now (ms) per request',
    )
    p.add_argument("--method", default="POST", help="HTTP method (default POST; GET sends no body)")
    p.add_argument("--timeout", type=float, default=10.0, help="timeout of one request in s (default 10)")
    p.add_argument("--token", default=None, help="Jupyter server token (env JUPYTER_TOKEN); never printed")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--save", default=None, metavar="DIR", help="save the run (records, summary) under DIR")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _load_parsers(subs) -> None:
    p = subs.add_parser("bench", help="load an HTTP endpoint (closed loop, or open loop with --rate)")
    _load_common(p)
    p.add_argument("--workers", type=int, default=64, help="closed loop: concurrent workers (default 64)")
    p.add_argument("--duration", type=float, default=None, help="seconds to run (default 10)")
    p.add_argument("--requests", type=int, default=None, help="stop after this many requests")
    p.add_argument("--rate", type=float, default=None, help="open loop: schedule this many requests/s")
    p.add_argument(
        "--arrival",
        choices=("constant", "poisson"),
        default="constant",
        help="open loop: evenly spaced or Poisson arrivals (default constant)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=1000,
        help="open loop: connections at most; beyond, requests wait (and that counts) (default 1000)",
    )
    p.add_argument("--seed", type=int, default=0, help="open loop: random seed of Poisson arrivals")

    p = subs.add_parser("sweep", help="measure QPS/latency/CPU over workers x endpoint batch size")
    _load_common(p)
    p.add_argument("--workers", default="8,32,128", help="worker counts, comma-separated (default 8,32,128)")
    p.add_argument(
        "--batch-size",
        default=None,
        dest="batch_sizes",
        help="endpoint batch sizes, comma-separated (set through its config API); default: leave as is",
    )
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per cell (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per cell (default 1)")
    p.add_argument(
        "--max-p99-ms", type=float, default=None, help="best cell: highest QPS with p99 under this"
    )


def _load_options(args: argparse.Namespace):
    from hubstress_ext.loadgen.options import LoadOptions, SweepOptions, parse_int_list

    common = dict(
        url=args.url, method=args.method, template=args.template, timeout=args.timeout, token=args.token
    )
    if args.command == "bench":
        return LoadOptions(
            **common,
            workers=args.workers,
            duration=args.duration,
            requests=args.requests,
            rate=args.rate,
            arrival=args.arrival,
            max_connections=args.max_connections,
            seed=args.seed,
        ).resolve()
    return SweepOptions(
        **common,
        workers=parse_int_list(args.workers, "--workers"),
        batch_sizes=parse_int_list(args.batch_sizes, "--batch-size") if args.batch_sizes else None,
        duration=args.duration,
        warmup=args.warmup,
        max_p99_ms=args.max_p99_ms,
    ).resolve()


def _load(args: argparse.Namespace) -> int:
    """``bench`` and ``sweep``: the same run objects the notebook front ends drive."""
    from hubstress_ext.cli.output import print_load_report
    from hubstress_ext.loadgen.run import BenchRun
    from hubstress_ext.loadgen.sweep import SweepRun

    try:
        options = _load_options(args)
    except OptionError as exc:
        print(f"hubstress: error: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.verbose, None, [options.token or ""])
    run = BenchRun(options) if args.command == "bench" else SweepRun(options)
    with _restoring_signal_handlers():
        _execute_with_signals(run, cleanup=False)
        print_load_report(run, as_json=args.json)
        if args.save:
            print(f"saved run to {run.save(args.save)}", file=sys.stderr if args.json else sys.stdout)
    return run.exit_code


def _options(args: argparse.Namespace) -> HubOptions:
    common = dict(
        endpoint=args.endpoint,
        token=args.token,
        dry_run=args.dry_run,
        keep=args.keep,
        count=args.count,
        batch_size=args.batch_size,
        workers=args.workers,
        prefix=args.prefix,
        sandbox=args.sandbox,
        sandbox_spawner=args.sandbox_spawner,
        sandbox_spawn_limit=args.sandbox_spawn_limit,
        request_timeout=args.request_timeout,
        timeout=args.timeout,
        max_retries=args.max_retries,
        scrape_metrics=args.scrape_metrics,
    )
    if args.command == "stress-test":
        return StressOptions(
            **common,
            profile=args.profile,
            server_name=args.server_name,
            ramp=args.ramp,
            spawn_timeout=args.spawn_timeout,
            stop_timeout=args.stop_timeout,
            user_options=args.user_options or {},
        )
    if args.command == "activity-stress-test":
        return ActivityOptions(
            **common,
            duration=args.duration,
            requests=args.requests,
            probe_interval=args.probe_interval,
        )
    return PurgeOptions(**common)


def make_run(options: HubOptions, command: str) -> Run:
    from hubstress_ext.hub.activity import ActivityStressRun
    from hubstress_ext.hub.purge import PurgeRun
    from hubstress_ext.hub.stress import StressTestRun

    cls = {
        "stress-test": StressTestRun,
        "activity-stress-test": ActivityStressRun,
        "purge": PurgeRun,
    }
    return cls[command](options)


RUN_COMMANDS = (*HUB_COMMANDS, "bench", "sweep")


def run_from_argv(argv: Sequence[str]) -> Run:
    """CLI-style arguments -> a run object, not started (what the magics and the panel use).

    Raises OptionError with one readable line for anything wrong; ``-h`` raises SystemExit
    after printing the help, as argparse does.
    """
    argv = list(argv)
    if not argv or argv[0].startswith("-"):
        argv = ["stress-test", *argv]  # `%hubstress --count 100` means a spawn storm
    if argv[0] not in RUN_COMMANDS:
        raise OptionError(f"unknown scenario {argv[0]!r}; one of: {', '.join(RUN_COMMANDS)} (or report DIR)")
    args = build_parser(raising=True).parse_args(argv)
    if args.command in ("bench", "sweep"):
        from hubstress_ext.loadgen.run import BenchRun
        from hubstress_ext.loadgen.sweep import SweepRun

        options = _load_options(args)
        run: Run = BenchRun(options) if args.command == "bench" else SweepRun(options)
    else:
        run = make_run(_options(args).resolve(), args.command)
    run.save_dir = args.save
    run.log_options = (bool(getattr(args, "verbose", False)), getattr(args, "log_to_file", None))
    return run


def _split_optional_path(argv: list[str]) -> list[str]:
    """``--log-to-file stress-test`` means "no PATH", not "a file named stress-test"."""
    commands = {
        "stress-test",
        "activity-stress-test",
        "purge",
        "sandbox",
        "report",
        "serve",
        "bench",
        "sweep",
    }
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--log-to-file" and out[i + 1] in commands:
            out[i] = "--log-to-file="
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_split_optional_path(list(sys.argv[1:] if argv is None else argv)))
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "report":
        return _report(args.run_dir)
    if args.command == "serve":
        return _serve(args)
    if args.command in ("bench", "sweep"):
        return _load(args)
    try:
        if args.command == "sandbox":
            return _sandbox(args)
        options = _options(args).resolve()
    except OptionError as exc:
        print(f"hubstress: error: {exc}", file=sys.stderr)
        return 2
    log_path = setup_logging(args.verbose, args.log_to_file, [options.token or ""])
    if log_path is not None:
        print(f"logging to {log_path}", file=sys.stderr)
        log.info("hubstress %s %s options=%s", __version__, args.command, options.public())
    run = make_run(options, args.command)
    with _restoring_signal_handlers():
        _execute_with_signals(run)
        print_report(run)
        if args.save and not options.dry_run:
            print(f"saved run to {run.save(args.save)}")
    return run.exit_code


def _execute_with_signals(run: Run, cleanup: bool = True) -> None:
    """Ctrl-C once: stop and clean up. Twice: leave at once (``purge`` finds the leftovers).

    Loads with nothing to clean up (``cleanup=False``) stop sending at once and keep what
    they measured.
    """

    async def go() -> None:
        loop = asyncio.get_running_loop()
        presses = 0

        def on_signal() -> None:
            nonlocal presses
            presses += 1
            if presses == 1 and not cleanup:
                say("interrupted: stopping, keeping what was measured")
            elif presses == 1:
                say(
                    "interrupted: sending nothing new, removing what this run created "
                    "(Ctrl-C again to leave at once)"
                )
            elif presses == 2 and cleanup and getattr(run.options, "sandbox", False):
                say("leaving now: the sandbox hub goes away with everything on it")
            elif presses == 2 and cleanup:
                say("leaving now: what is left is in the marker group; run `hubstress purge` to remove it")
            run._stop_in_loop()

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
    from hubstress_ext.cli.output import print_saved_report
    from hubstress_ext.results.store import load_run

    try:
        saved = load_run(run_dir)
    except (FileNotFoundError, ValueError) as exc:
        print(f"hubstress: error: {exc}", file=sys.stderr)
        return 2
    print_saved_report(saved)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from hubstress_ext.batching.batcher import BatchSettings
    from hubstress_ext.batching.limits import HttpLimits
    from hubstress_ext.batching.models import load_model
    from hubstress_ext.batching.standalone import serve

    settings = BatchSettings(
        args.batch_size,
        args.max_wait_ms,
        args.max_queue,
        args.deadline_ms,
        args.max_delay_ms,
        args.latency_slo_ms,
        args.refuse_status,
    )
    limits = HttpLimits(
        max_body_bytes=args.max_body_bytes,
        header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout,
    )
    try:
        settings.validate()
        limits.validate()
        load_model(args.model)
    except ValueError as exc:
        print(f"hubstress: error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(args.port, args.address, args.model, settings, limits=limits))
    except OSError as exc:
        print(
            f"hubstress: error: cannot listen on {args.address}:{args.port}: {exc.strerror}", file=sys.stderr
        )
        return 1
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from hubstress_ext.sandbox.hub import Sandbox, SandboxError

    if args.sandbox_spawner not in ("real", "sim"):
        raise OptionError("--sandbox-spawner must be real or sim")
    sandbox = Sandbox(args.sandbox_spawner, concurrent_spawn_limit=args.sandbox_spawn_limit, port=args.port)
    stop = asyncio.Event()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with sandbox:
            print(f"sandbox JupyterHub ({args.sandbox_spawner} servers) at {sandbox.url}", flush=True)
            print(f"hub log: {sandbox.log_path}", flush=True)
            print(f"export {ENV_ENDPOINT}={sandbox.api_url} {ENV_TOKEN}={sandbox.token}", flush=True)
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
