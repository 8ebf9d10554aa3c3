"""The batching endpoint's settings as Jupyter config and as ``hubstress serve``'s flags.

Each batcher setting is declared once, as a field of ``BatchSettings`` (its default and help);
its traitlet is made from that field, so the Jupyter server extension reads it from Jupyter's
config (``c.HubstressBatching.batch_size = 8``), ``hubstress serve`` makes one flag per trait
(:func:`add_flags`), the config API answers with the same names (``BatchingService.config``)
and the sweep sets ``batch_size`` through it. The HTTP limits' traits take their defaults from
``HttpLimits``.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from traitlets import Enum, Float, Integer, TraitType, Unicode
from traitlets.config import Configurable

from hubstress_ext.batching.batcher import BatchSettings
from hubstress_ext.batching.limits import HttpLimits

_SERVE_ONLY = "(hubstress serve only: the Jupyter server has its own HTTP limits)"


def _trait(f: dataclasses.Field) -> TraitType:
    """The Jupyter-config trait of one ``BatchSettings`` field: its type, default and help."""
    meta = f.metadata
    if meta.get("choices"):
        return Enum(list(meta["choices"]), f.default, config=True, help=meta["help"])
    kind = Integer if isinstance(f.default, int) else Float
    return kind(f.default, config=True, help=meta["help"])


# the batcher's settings, each declared once (``batching.batcher.BatchSettings``), as traits
BATCH_SETTINGS = [f.name for f in dataclasses.fields(BatchSettings)]
_BatchSettingTraits = type(
    "_BatchSettingTraits",
    (Configurable,),
    {"__module__": __name__, **{f.name: _trait(f) for f in dataclasses.fields(BatchSettings)}},
)


class HubstressBatching(_BatchSettingTraits):
    """The micro-batching endpoint: when to dispatch, when to refuse, which model."""

    model = Unicode(
        "echo", config=True, help="Built-in model (echo, echo-async, mlp, device-sim) or 'module:function'."
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
        settings = BatchSettings(**{name: getattr(self, name) for name in BATCH_SETTINGS})
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


# the order of the flags in `hubstress serve --help`: the model, the batcher's settings as
# declared, then the HTTP limits
FLAG_ORDER = ["model", *BATCH_SETTINGS, "max_body_bytes", "header_timeout", "body_timeout"]


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per setting, typed, with the trait's default and help."""
    kinds = {Integer: int, Float: float, Unicode: str}
    traits = HubstressBatching.class_traits(config=True)
    for name in FLAG_ORDER:
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
