"""Where the shards run: ``local:N``, ``tcp://host:8786``, ``gateway[:N]`` or a notebook's Client.

``open_cluster`` connects (starting a local cluster or a dask-gateway cluster when asked),
checks that every worker has this version of hubstress, and lists the workers a run will pin
its shards to. It is the only place that decides how to reach Dask.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any

from hubstress_ext.errors import OptionError, RunError

LOCAL_MAX = 64
CONNECT_TIMEOUT_S = 20.0
GATEWAY_WORKERS = 2
GATEWAY_READY_S = 300.0
EXAMPLES = "local:2, tcp://127.0.0.1:8786 or gateway"
_LOCAL = re.compile(r"local:(\d+)$")
_GATEWAY = re.compile(r"gateway(?::(\d+))?$")
# the workers of a local cluster do nothing but load: no statistical profiler sampling every
# thread's stack each 10 ms while the shard runs (measured: see README, "Load from many processes")
LOCAL_WORKER_CONFIG = {"distributed.worker.profile.enabled": False}
_ADDRESS = re.compile(r"(tcp|tls|ws|wss|inproc)://\S+$")


class ClientRef:
    """A notebook's ``distributed.Client`` held by an option: used as is, shown by its address.

    Copies of the options (``public()``) keep the same client instead of copying it.
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def __deepcopy__(self, memo: dict) -> ClientRef:
        return self

    def __str__(self) -> str:
        return f"client {_address_of(self.client)}"

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClientRef) and other.client is self.client

    __hash__ = object.__hash__


def _address_of(client: Any) -> str:
    scheduler = getattr(client, "scheduler", None)
    return str(getattr(scheduler, "address", None) or "?")


def _is_client(value: Any) -> bool:
    return type(value).__name__ == "Client" and type(value).__module__.startswith("distributed")


def normalize(value: Any) -> Any:
    """The ``--dask`` option's checked form: None, a target string, or a :class:`ClientRef`."""
    if value is None or isinstance(value, ClientRef):
        return value
    if _is_client(value):
        return ClientRef(value)
    if not isinstance(value, str):
        raise OptionError(f"--dask must be {EXAMPLES}, or a distributed.Client (got {type(value).__name__})")
    text = value.strip()
    if not text or text.lower() == "none":
        return None
    parse_target(text)
    return text


@dataclass(frozen=True)
class Target:
    kind: str  # local | address | gateway | client
    workers: int | None = None
    address: str | None = None
    client: Any = field(default=None, compare=False)


def parse_target(value: str | ClientRef) -> Target:
    if isinstance(value, ClientRef):
        return Target("client", client=value.client)
    text = value.strip()
    m = _LOCAL.match(text)
    if m:
        n = int(m.group(1))
        if not 1 <= n <= LOCAL_MAX:
            raise OptionError(f"--dask local:N needs 1 to {LOCAL_MAX} worker processes (got {text!r})")
        return Target("local", workers=n)
    m = _GATEWAY.match(text)
    if m:
        n = int(m.group(1)) if m.group(1) else GATEWAY_WORKERS
        if n < 1:
            raise OptionError(f"--dask gateway:N needs at least 1 worker (got {text!r})")
        return Target("gateway", workers=n)
    if _ADDRESS.match(text):
        return Target("address", address=text)
    raise OptionError(f"--dask must be {EXAMPLES} (got {text!r})")


@dataclass
class Cluster:
    """A connected client, the workers shards will be pinned to, and how to let go."""

    client: Any
    workers: list[str]
    description: str
    _closers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self._closers):
            try:
                close()
            except Exception:  # closing is best effort: the run's results are already in
                logging.getLogger("hubstress").debug("closing the Dask cluster failed", exc_info=True)
        self._closers.clear()


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise RunError("--dask needs Dask's distributed package: pip install 'hubstress_ext[dask]'") from None
    return distributed


def open_cluster(value: str | ClientRef) -> Cluster:
    """Connect (blocking: call it in a thread from async code) and check the workers."""
    target = parse_target(value)
    distributed = _import_distributed()
    closers: list[Any] = []
    if target.kind == "local":
        import dask

        # the workers' scratch space is the run's own, removed with the cluster (Dask's default
        # is a dask-scratch-space folder left in the machine's temp directory)
        scratch = tempfile.TemporaryDirectory(prefix="hubstress-dask-")
        closers.append(scratch.cleanup)
        with dask.config.set(LOCAL_WORKER_CONFIG):
            cluster = distributed.LocalCluster(
                local_directory=scratch.name,
                n_workers=target.workers,
                threads_per_worker=1,  # one shard per worker process, nothing else beside it
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
                preload=["hubstress_ext.cluster.worker_setup"],  # a Ctrl-C is the coordinator's
            )
        closers.append(cluster.close)
        client = distributed.Client(cluster)
        closers.append(client.close)  # closed first (in reverse): client, cluster, scratch
        description = f"local cluster of {target.workers} worker processes"
    elif target.kind == "address":
        try:
            client = distributed.Client(target.address, timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            raise RunError(f"cannot reach the Dask scheduler at {target.address}: {exc}") from None
        closers.append(client.close)
        description = f"Dask scheduler {target.address}"
    elif target.kind == "gateway":
        client, description = _gateway(target.workers or GATEWAY_WORKERS, closers)
    else:
        client = target.client
        description = f"the notebook's Dask client ({_address_of(client)})"
    found = Cluster(client, [], description, closers)
    try:
        if target.workers and target.kind == "local":
            client.wait_for_workers(target.workers, timeout=CONNECT_TIMEOUT_S)
        found.workers = check_workers(client)
    except BaseException:
        found.close()
        raise
    return found


def _gateway(workers: int, closers: list[Any]) -> tuple[Any, str]:
    """A new dask-gateway cluster with the gateway's configured defaults (as DaskHub sets them)."""
    try:
        from dask_gateway import Gateway
    except ImportError:
        raise RunError("--dask gateway needs dask-gateway: pip install dask-gateway") from None
    gateway = Gateway()
    cluster = gateway.new_cluster()
    closers.append(cluster.shutdown)
    cluster.scale(workers)
    client = cluster.get_client()
    closers.append(client.close)
    client.wait_for_workers(workers, timeout=GATEWAY_READY_S)
    return client, f"dask-gateway cluster {cluster.name} ({workers} workers)"


def check_workers(client: Any) -> list[str]:
    """The workers' addresses, once each has been shown to run this version of hubstress."""
    import importlib.metadata

    from hubstress_ext.version import __version__

    answers = client.run(importlib.metadata.version, "hubstress_ext", on_error="return")
    if not answers:
        raise RunError("the Dask cluster has no workers: start some (dask worker SCHEDULER) and retry")
    wrong = {}
    for address, version in answers.items():
        if isinstance(version, BaseException):
            wrong[address] = "not installed"
        elif version != __version__:
            wrong[address] = version
    if wrong:
        listed = ", ".join(f"{a}: {v}" for a, v in sorted(wrong.items()))
        raise RunError(f"every Dask worker needs hubstress_ext {__version__} ({listed})")
    return sorted(answers)
