"""Which load to probe next: bracket the boundary, bisect it, repeat near it.

Pure bookkeeping (no I/O), so it is tested on its own with a fake probe:

1. **bracket**: LOW first, then steps of ``factor`` (x2) until a probe fails or HIGH passed;
2. **bisect**: the geometric middle of the bracket (the precision is relative, so the middle
   is in ratio, not in difference) until ``(infeasible - feasible) / feasible <= precision``
   (whole-number knobs: also when they are neighbours);
3. **repeat**: the two sides of the final bracket are probed again (``repeats`` times in all;
   ``None``: twice, and a third time where the two disagreed: the noise decides how many). A
   value's verdict is the majority of its probes (a tie fails: the capacity is not claimed on a
   coin toss); a side that flips reopens the search.

The boundary is assumed monotone: the feasible side is the highest passing value below the
lowest failing one. A pass above a failure is noise the repeats settle; it is counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

AUTO_REPEATS = 2  # probes of each side of the final bracket when --repeats is not given
NOISY_REPEATS = 3  # ... and where those disagreed


@dataclass
class Search:
    low: float
    high: float
    precision: float  # the bracket's width relative to its feasible side
    integer: bool = False
    repeats: int | None = None
    factor: float = 2.0
    verdicts: dict[float, list[bool]] = field(default_factory=dict)
    phase: str = "bracket"  # what the last value returned was for: bracket, bisect, repeat

    # -- what is known ----------------------------------------------------------------------

    def verdict(self, value: float) -> bool | None:
        seen = self.verdicts.get(value)
        if not seen:
            return None
        return sum(seen) * 2 > len(seen)

    @property
    def infeasible(self) -> float | None:
        """The lowest value whose probes (by majority) failed."""
        failed = [v for v in self.verdicts if self.verdict(v) is False]
        return min(failed) if failed else None

    @property
    def feasible(self) -> float | None:
        """The highest value whose probes passed, below the lowest that failed."""
        top = self.infeasible
        ok = [v for v in self.verdicts if self.verdict(v) and (top is None or v < top)]
        return max(ok) if ok else None

    @property
    def probes(self) -> int:
        return sum(len(v) for v in self.verdicts.values())

    @property
    def noisy(self) -> int:
        """Values probed more than once whose probes disagreed, and passes above a failure."""
        split = sum(1 for v in self.verdicts.values() if 0 < sum(v) < len(v))
        top = self.infeasible
        above = sum(1 for v in self.verdicts if top is not None and v > top and self.verdict(v))
        return split + above

    def converged(self) -> bool:
        lo, hi = self.feasible, self.infeasible
        if lo is None or hi is None:
            return False
        return (hi - lo) / lo <= self.precision + 1e-12 or (self.integer and hi - lo <= 1)

    @property
    def outcome(self) -> str:
        """below (LOW failed), above (HIGH passed), bracket (converged), open (not yet)."""
        if self.verdict(self.low) is False:
            return "below"
        if self.infeasible is None and self.feasible is not None and self.feasible >= self.high:
            return "above"
        if self.converged() and not self._repeat_due():
            return "bracket"
        return "open"

    # -- what to probe next -----------------------------------------------------------------

    def record(self, value: float, passed: bool) -> None:
        self.verdicts.setdefault(value, []).append(bool(passed))

    def next_value(self) -> float | None:
        """The next load to probe, or None when the search has its answer."""
        if self.verdict(self.low) is None:
            self.phase = "bracket"
            return self.low
        if self.outcome in ("below", "above", "bracket"):
            return None
        lo, hi = self.feasible, self.infeasible
        if hi is None:  # every probe so far passed: step up
            assert lo is not None
            self.phase = "bracket"
            step = lo * self.factor
            return min(self._whole(max(step, lo + 1) if self.integer else step), self.high)
        if lo is None:  # LOW passed once, then failed on repeat: the majority rules LOW
            self.phase = "repeat"
            return self.low
        if not self.converged():
            self.phase = "bisect"
            return self._middle(lo, hi)
        due = self._repeat_due()
        assert due is not None
        self.phase = "repeat"
        return due

    def _repeat_due(self) -> float | None:
        """A side of the converged bracket that still needs a probe."""
        for side in (self.feasible, self.infeasible):
            if side is not None and len(self.verdicts.get(side, [])) < self._wanted(side):
                return side
        return None

    def _wanted(self, value: float) -> int:
        if self.repeats is not None:
            return self.repeats
        seen = self.verdicts.get(value, [])
        return NOISY_REPEATS if 0 < sum(seen) < len(seen) else AUTO_REPEATS

    def _middle(self, lo: float, hi: float) -> float:
        mid = math.sqrt(lo * hi)
        if self.integer:
            mid = min(max(round(mid), lo + 1), hi - 1)
        return mid

    def _whole(self, v: float) -> float:
        return float(round(v)) if self.integer else v
