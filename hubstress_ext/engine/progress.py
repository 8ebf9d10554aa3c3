"""Live progress per phase, observed by the CLI's bars and the notebook displays."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class PhaseProgress:
    name: str
    total: int
    done: int = 0
    failed: int = 0


Listener = Callable[[PhaseProgress], None]


class Progress:
    def __init__(self) -> None:
        self.phases: dict[str, PhaseProgress] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def begin(self, name: str, total: int) -> None:
        with self._lock:
            self.phases[name] = PhaseProgress(name, total)
        self._notify(name)

    def advance(self, name: str, *, failed: bool = False) -> None:
        with self._lock:
            phase = self.phases[name]
            phase.done += 1
            phase.failed += int(failed)
        self._notify(name)

    def update(self, name: str, done: int, failed: int = 0, total: int | None = None) -> None:
        """Set a phase's counts outright (for loads that count faster than per-event updates)."""
        with self._lock:
            phase = self.phases.setdefault(name, PhaseProgress(name, total or 0))
            phase.done, phase.failed = done, failed
            if total is not None:
                phase.total = total
        self._notify(name)

    def _notify(self, name: str) -> None:
        phase = self.phases[name]
        for listener in self._listeners:
            listener(phase)
