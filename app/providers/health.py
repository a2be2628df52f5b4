"""Provider health: a circuit breaker per provider, and the errors each provider gave, by code.

::

    closed ──(breaker_failures failures in a row, or one open_circuit answer)──► open
    open ──(breaker_open_s later, the next task to ask)──► half_open: that one task tries
    half_open ──success──► closed      half_open ──failure──► open (again, for open_s)

What counts, decided by :func:`verdict` on a submit's outcome: a provider error (no connection
after retries, 429/5xx answers, credentials refused, a lost answer) is a failure; an answer about
the request (moderation, bad parameters) or an accepted job is a success — the provider is
working. An error with ``open_circuit`` (a relay's risk control) opens the circuit at once. A
job that fails later opens it only when its error says so (``open_circuit``).

Routing (``app.providers.routing``) and the pipeline's fallback pass an open provider by and say
so in the task's route reason; when no provider is left, the task fails at once with a retryable
502 instead of waiting on a provider that is known to be down.

Per process, on purpose: a breaker protects this process's tasks from waiting on a failing
provider, and every replica learns the same facts from its own calls within
``breaker_failures`` tries, so sharing the state (in the database or Redis) would add a round
trip to every submit to save a handful of failed calls per replica. Restarting a process closes
its breakers.

Hand-written rather than ``pybreaker``/``aiobreaker``: those wrap a call and count its
exceptions, but here the pipeline classifies outcomes (an error answer vs an outage vs a
rejection), routing needs a look that does not take the half-open trial, and risk-control
answers force the circuit open; the state machine below is all of that, with no I/O.
"""

from __future__ import annotations

import enum
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from app.errors import AppError, ProviderError

# A half-open trial that never reported (its process lost track of it) stops blocking others.
STALE_TRIAL_S = 300.0


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"

    @property
    def level(self) -> int:
        """For the metrics gauge: 0 closed, 1 half-open, 2 open."""
        return {"closed": 0, "half_open": 1, "open": 2}[self.value]


class Verdict(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    TRIP = "trip"  # open at once
    NONE = "none"  # says nothing about the provider's health


def verdict(exc: BaseException | None) -> Verdict:
    """What a submit's outcome (``None``: the provider took the job) says about the provider."""
    if exc is None:
        return Verdict.SUCCESS
    if isinstance(exc, ProviderError):
        return Verdict.TRIP if exc.open_circuit else Verdict.FAILURE
    if isinstance(exc, AppError):
        return Verdict.SUCCESS  # the provider answered about the request itself
    return Verdict.NONE


@dataclass
class CircuitBreaker:
    """One provider's circuit in this process."""

    name: str
    failures_to_open: int = 5
    open_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0  # in a row
    opened_at: float | None = None
    trial_at: float | None = None
    last_error: str | None = None
    times_opened: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def _cooled_down(self) -> bool:
        return self.opened_at is not None and self.clock() - self.opened_at >= self.open_s

    def _trial_busy(self) -> bool:
        return self.trial_at is not None and self.clock() - self.trial_at < STALE_TRIAL_S

    def current(self) -> BreakerState:
        """The state as of now (an open circuit whose time is up reads half-open)."""
        if self.state is BreakerState.OPEN and self._cooled_down():
            return BreakerState.HALF_OPEN
        return self.state

    def available(self) -> bool:
        """Whether a task sent now would be let through (a look: takes nothing)."""
        state = self.current()
        if state is BreakerState.CLOSED:
            return True
        return state is BreakerState.HALF_OPEN and not self._trial_busy()

    def allow(self) -> bool:
        """Let one call through, or not. In half-open, the one call let through is the trial:
        report its outcome with :meth:`record` (or :meth:`release` when there is none)."""
        if not self.available():
            return False
        if self.current() is BreakerState.HALF_OPEN:
            self.state = BreakerState.HALF_OPEN
            self.trial_at = self.clock()
        return True

    def record(self, outcome: Verdict, *, error: str | None = None) -> None:
        if outcome is Verdict.SUCCESS:
            self.state, self.failures, self.opened_at = BreakerState.CLOSED, 0, None
        elif outcome is Verdict.TRIP:
            self._open(error)
        elif outcome is Verdict.FAILURE:
            self.failures += 1
            self.last_error = error
            if self.state is BreakerState.HALF_OPEN or self.failures >= self.failures_to_open:
                self._open(error)
        self.trial_at = None

    def release(self) -> None:
        """A call let through ended without saying anything about the provider."""
        self.trial_at = None

    def note_error(self, exc: AppError) -> None:
        self.errors[exc.code] += 1

    def _open(self, error: str | None) -> None:
        self.state = BreakerState.OPEN
        self.opened_at = self.clock()
        self.last_error = error
        self.times_opened += 1

    def retry_after_s(self) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.open_s - (self.clock() - self.opened_at))

    def open_error(self) -> ProviderError:
        wait = self.retry_after_s()
        why = f": {self.last_error}" if self.last_error else ""
        return ProviderError(
            f"{self.name} is failing and its circuit is open (next try in {wait:.0f} s){why}",
            provider=self.name,
            retryable=True,
            retry_after_s=wait,
        )

    def snapshot(self) -> dict[str, Any]:
        state = self.current()
        return {
            "state": state.value,
            "failures_in_a_row": self.failures,
            "times_opened": self.times_opened,
            "retry_after_s": round(self.retry_after_s(), 1) if state is BreakerState.OPEN else 0,
            "last_error": self.last_error,
            "errors": dict(self.errors),
        }


class Breakers:
    """The breakers of this process's providers, by provider name."""

    def __init__(
        self,
        names: Iterable[str],
        *,
        failures_to_open: int = 5,
        open_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._breakers = {
            name: CircuitBreaker(name, failures_to_open, open_s, clock) for name in names
        }

    def __getitem__(self, name: str) -> CircuitBreaker:
        return self._breakers[name]

    def items(self) -> list[tuple[str, CircuitBreaker]]:
        return list(self._breakers.items())

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: breaker.snapshot() for name, breaker in self._breakers.items()}
