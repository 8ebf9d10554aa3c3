"""Durations, ranges and rates as people write them: ``90``, ``20s``, ``2m``, ``2-5m``, ``60/min``.

Plain numbers are seconds. A range ``MIN-MAX`` takes one suffix for both ends (``2-5m`` is
2 to 5 minutes) or one each (``90s-2m``). Every parser raises OptionError naming the flag.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import NamedTuple

from hubstress_ext.errors import OptionError

UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
RATE_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 1 / 60, "min": 1 / 60, "h": 1 / 3600, "hour": 1 / 3600}
_NUMBER = r"[0-9]*\.?[0-9]+"
_DURATION = re.compile(rf"\s*({_NUMBER})\s*([smh]?)\s*")
_SPAN = re.compile(rf"\s*({_NUMBER})\s*([smh]?)\s*-\s*({_NUMBER})\s*([smh]?)\s*")
_RATE = re.compile(rf"\s*({_NUMBER})\s*(?:/\s*([a-z]+))?\s*")


class Span(NamedTuple):
    """A range of seconds; written back as ``lo-hi`` seconds so a form field round-trips."""

    lo: float
    hi: float

    def __str__(self) -> str:
        return f"{self.lo:g}" if self.lo == self.hi else f"{self.lo:g}-{self.hi:g}"


def _seconds(number: str, unit: str) -> float:
    return float(number) * UNITS[unit]


def parse_duration(flag: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        m = _DURATION.fullmatch(str(text))
        if not m:
            raise OptionError(
                f"{flag} takes seconds, or a number with s/m/h such as 20s or 2m (got {text!r})"
            )
        return _seconds(*m.groups())

    return parse


def parse_span(flag: str) -> Callable[[str], Span]:
    def parse(text: str) -> Span:
        text = str(text)
        m = _SPAN.fullmatch(text)
        if m:
            lo_n, lo_u, hi_n, hi_u = m.groups()
            if not lo_u:
                lo_u = hi_u  # "2-5m": the suffix counts for both ends
            span = Span(_seconds(lo_n, lo_u), _seconds(hi_n, hi_u))
        else:
            single = _DURATION.fullmatch(text)
            if not single:
                raise OptionError(
                    f"{flag} takes seconds or a range MIN-MAX, with s/m/h suffixes, such as 5-20 or 2-5m "
                    f"(got {text!r})"
                )
            span = Span(_seconds(*single.groups()), _seconds(*single.groups()))
        return check_span(span, flag)

    return parse


def check_span(value: object, flag: str) -> Span:
    """A Span from a Span, a pair or text; its ends finite, >= 0 and in order."""
    if isinstance(value, str):
        return parse_span(flag)(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = (value, value)
    try:
        lo, hi = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise OptionError(f"{flag} must be seconds or a range such as 5-20 (got {value!r})") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0:
        raise OptionError(f"{flag} must be finite and not negative (got {value!r})")
    if lo > hi:
        raise OptionError(f"{flag}: the range's low end is above its high end (got {lo:g}-{hi:g})")
    return Span(lo, hi)


def span_normalizer(flag: str) -> Callable[[object], Span]:
    """An option's ``normalize``: a Span from whatever code or a scenario file gave."""
    return lambda value: check_span(value, flag)


def parse_rate(flag: str) -> Callable[[str], float]:
    """``60/min``, ``2/s``, ``300/h`` or a plain number per second -> arrivals per second."""

    def parse(text: str) -> float:
        m = _RATE.fullmatch(str(text).lower())
        if not m or (m.group(2) or "") not in RATE_UNITS:
            raise OptionError(f"{flag} takes a rate such as 60/min, 2/s or 300/h (got {text!r})")
        return float(m.group(1)) * RATE_UNITS[m.group(2) or ""]

    return parse
