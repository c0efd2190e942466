"""Circuit breakers for failing widgets: a widget that keeps failing is paused, then retried.

After ``breaker_failures`` consecutive failures (a timeout or an error; the setting
``BREAKER_FAILURES`` unless the widget class says otherwise, ``None`` never pauses) a widget's
circuit *opens*: for ``BREAKER_COOLDOWN`` seconds it is not evaluated at all — no thread, no
timeout to wait for — and its card shows the last good value, stale, with the reason. When the
cooldown is over, the next request evaluates it once more (the *trial*): a success closes the
circuit, a failure opens it again for twice as long, up to ``BREAKER_MAX_COOLDOWN``. A widget
that blocks the widget event loop opens its circuit at once (:meth:`WidgetBreakers.trip`).

This module keeps the circuits of one process and decides; the engine evaluates, reports each
outcome here, and copies changed circuits to a shared cache so that every process sees them
(:meth:`WidgetBreakers.merge`).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from smallstack import conf
from smallstack.displays import DashboardWidget, FromSettings


@dataclass
class Circuit:
    """The breaker state of one widget."""

    #: Consecutive failures, the trial's included.
    failures: int = 0
    #: Consecutive openings: the cooldown doubles with each.
    opens: int = 0
    #: ``time.time()`` the circuit last opened, and until when it stays open (0: closed).
    opened_at: float = 0.0
    until: float = 0.0
    #: Why it opened, when not for counted failures (a widget that blocked the event loop).
    reason: str = ""
    #: ``time.time()`` of the last change: the newest copy wins between processes.
    changed: float = 0.0

    @property
    def clean(self) -> bool:
        return not (self.failures or self.until)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: Any) -> Circuit | None:
        """A circuit read back from the cache; None for anything that isn't one."""
        if not isinstance(value, dict):
            return None
        try:
            return cls(**value)
        except TypeError:
            return None


@dataclass(frozen=True)
class Pause:
    """Why a widget is not evaluated right now: the card's error and the API's ``breaker``."""

    message: str
    info: dict[str, Any]


def failure_threshold(widget: DashboardWidget) -> int | None:
    """Consecutive failures that open the widget's circuit; None if it never opens."""
    value = widget.breaker_failures
    if isinstance(value, FromSettings):
        value = conf.get("BREAKER_FAILURES")
    return int(value) if value else None


def cooldown(widget: DashboardWidget, opens: int) -> float:
    """Seconds the circuit stays open the ``opens``-th time in a row (1, 2, …)."""
    base = widget.breaker_cooldown
    first = float(base if base is not None else conf.get("BREAKER_COOLDOWN"))
    longest = max(first, float(conf.get("BREAKER_MAX_COOLDOWN")))
    return min(first * 2 ** max(0, opens - 1), longest)


class WidgetBreakers:
    """The circuits of this process's widgets, by key. Thread-safe."""

    def __init__(self) -> None:
        self._circuits: dict[str, Circuit] = {}
        self._lock = threading.Lock()

    def pause(self, key: str) -> Pause | None:
        """The widget's pause while its circuit is open; None when it may be evaluated."""
        circuit = self._circuits.get(key)
        if circuit is None or not circuit.until:
            return None
        now = time.time()
        if now >= circuit.until:
            return None  # cooldown over: the next evaluation is the trial
        resumes = datetime.fromtimestamp(circuit.until, UTC)
        if circuit.reason:
            message = f"{circuit.reason}; paused until {resumes:%H:%M:%S} UTC"
        else:
            message = (
                f"paused after {circuit.failures} failure{'s' if circuit.failures != 1 else ''}, "
                f"next try in {math.ceil(circuit.until - now)} s"
            )
        info = {
            "state": "open",
            "failures": circuit.failures,
            "opened_at": datetime.fromtimestamp(circuit.opened_at, UTC).isoformat(),
            "retry_at": resumes.isoformat(),
            "reason": circuit.reason or None,
        }
        return Pause(message, info)

    def record(self, widget: DashboardWidget, key: str, ok: bool) -> Circuit | None:
        """Count one evaluation's outcome; the circuit if it changed (to share), else None."""
        with self._lock:
            circuit = self._circuits.get(key)
            if ok:
                if circuit is None or circuit.clean:
                    return None
                circuit = self._circuits[key] = Circuit(changed=time.time())
                return circuit
            threshold = failure_threshold(widget)
            if threshold is None:
                return None
            circuit = circuit or Circuit()
            now = time.time()
            failures = circuit.failures + 1
            if circuit.until > now:  # an evaluation begun before the circuit opened
                circuit = replace(circuit, failures=failures, changed=now)
            elif circuit.until or failures >= threshold:  # a failed trial, or a failure too many
                opens = circuit.opens + 1
                circuit = Circuit(failures, opens, now, now + cooldown(widget, opens), "", now)
            else:
                circuit = Circuit(failures, circuit.opens, changed=now)
            self._circuits[key] = circuit
            return circuit

    def trip(self, key: str, seconds: float, reason: str) -> Circuit:
        """Open the widget's circuit at once for ``seconds``, saying ``reason``."""
        now = time.time()
        with self._lock:
            previous = self._circuits.get(key) or Circuit()
            # The evaluation's failure is counted by record(), as any other.
            circuit = Circuit(previous.failures, previous.opens + 1, now, now + seconds, reason)
            circuit.changed = now
            self._circuits[key] = circuit
        return circuit

    def merge(self, key: str, circuit: Circuit) -> None:
        """Adopt another process's copy of the widget's circuit if it is the newer one."""
        with self._lock:
            mine = self._circuits.get(key)
            if mine is None or circuit.changed > mine.changed:
                self._circuits[key] = circuit

    def get(self, key: str) -> Circuit | None:
        return self._circuits.get(key)

    def reset(self) -> None:
        with self._lock:
            self._circuits.clear()
