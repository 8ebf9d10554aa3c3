"""The batching endpoint's settings, declared once (traitlets) for both of its homes.

The Jupyter server extension reads them from Jupyter's config (``c.HubstressBatching.batch_size
= 8``); ``hubstress serve`` makes one flag per setting from the same declarations
(:func:`add_flags`), with the same defaults and help, and builds the same objects from them
(:meth:`HubstressBatching.settings`, :meth:`HubstressBatching.limits`). The default values
are those of the objects they build (``BatchSettings``, ``HttpLimits``), written there once.
"""

from __future__ import annotations

import argparse
from typing import Any

from traitlets import Enum, Float, Integer, Unicode
from traitlets.config import Configurable

from hubstress_ext.batching.batcher import BatchSettings
from hubstress_ext.batching.limits import HttpLimits

_SERVE_ONLY = "(hubstress serve only: the Jupyter server has its own HTTP limits)"


class HubstressBatching(Configurable):
    """The micro-batching endpoint: when to dispatch, when to refuse, which model."""

    model = Unicode(
        "echo", config=True, help="Built-in model (echo, echo-async, mlp, device-sim) or 'module:function'."
    )
    batch_size = Integer(
        BatchSettings.batch_size, config=True, help="Dispatch a batch when this many items are queued."
    )
    max_wait_ms = Float(
        BatchSettings.max_wait_ms,
        config=True,
        help="...or when the oldest item has waited this long; 0 = greedy.",
    )
    max_queue = Integer(BatchSettings.max_queue, config=True, help="Refuse beyond this many queued items.")
    deadline_ms = Float(
        BatchSettings.deadline_ms,
        config=True,
        help="Per-request deadline (clients may shorten it); 504 when it expires queued.",
    )
    max_delay_ms = Float(
        BatchSettings.max_delay_ms,
        config=True,
        help="Refuse an arrival whose predicted wait for its batch is longer; 0 = off.",
    )
    latency_slo_ms = Float(
        BatchSettings.latency_slo_ms,
        config=True,
        help="Adaptive mode: batch size chosen for throughput with p99 under this; 0 = off.",
    )
    refuse_status = Enum(
        [503, 429], BatchSettings.refuse_status, config=True, help="Status of a refusal, with Retry-After."
    )
    max_body_bytes = Integer(HttpLimits.max_body_bytes, config=True, help="Larger bodies get 413.")
    header_timeout = Float(
        HttpLimits.header_timeout_s,
        config=True,
        help=f"Close a connection whose request headers take longer (s) {_SERVE_ONLY}.",
    )
    body_timeout = Float(
        HttpLimits.body_timeout_s,
        config=True,
        help=f"Close a connection whose request body takes longer (s) {_SERVE_ONLY}.",
    )

    def settings(self) -> BatchSettings:
        """The batcher's settings (validated: ValueError names the bad one)."""
        settings = BatchSettings(
            self.batch_size,
            self.max_wait_ms,
            self.max_queue,
            self.deadline_ms,
            self.max_delay_ms,
            self.latency_slo_ms,
            self.refuse_status,
        )
        settings.validate()
        return settings

    def limits(self) -> HttpLimits:
        limits = HttpLimits(
            max_body_bytes=self.max_body_bytes,
            header_timeout_s=self.header_timeout,
            body_timeout_s=self.body_timeout,
        )
        limits.validate()
        return limits


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per setting, typed, with the trait's default and help."""
    kinds = {Integer: int, Float: float, Unicode: str}
    traits = HubstressBatching.class_traits(config=True)
    for name in [n for n in vars(HubstressBatching) if n in traits]:  # in declaration order
        trait = traits[name]
        kw: dict[str, Any] = {"default": trait.default_value, "dest": name, "metavar": _metavar(name, trait)}
        if isinstance(trait, Enum):
            kw["type"], kw["choices"] = type(trait.default_value), list(trait.values)
        else:
            kw["type"] = kinds[type(trait)]
        help_text = trait.help.rstrip(".")
        parser.add_argument(
            "--" + name.replace("_", "-"), help=f"{help_text} (default {trait.default_value})", **kw
        )


def _metavar(name: str, trait: Any) -> str | None:
    if isinstance(trait, Enum):
        return None  # argparse shows the choices
    if isinstance(trait, Integer):
        return "N"
    if isinstance(trait, Float):
        return "MS" if name.endswith("_ms") else "SECONDS"
    return name.upper()


def from_args(args: argparse.Namespace) -> HubstressBatching:
    names = HubstressBatching.class_traits(config=True)
    return HubstressBatching(**{n: getattr(args, n) for n in names})
