"""The caller of a request, as auth found it: whose tasks, which limits, which providers."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True, kw_only=True)
class TokenLimits:
    """Per-token limits. ``None`` means "no limit" once resolved against the defaults.

    A managed token's own value wins over ``[limits]``; its ``0`` switches a limit off for
    that token even when ``[limits]`` sets one.
    """

    requests_per_s: float | None = None
    burst: int | None = None
    max_active_tasks: int | None = None
    tasks_per_day: int | None = None

    def over(self, defaults: TokenLimits) -> TokenLimits:
        """These limits where set, else ``defaults``; a 0 becomes "off"."""

        def pick(own: float | None, default: float | None) -> float | None:
            value = default if own is None else own
            return None if value is None or value <= 0 else value

        rate = pick(self.requests_per_s, defaults.requests_per_s)
        burst = pick(self.burst, defaults.burst)
        active = pick(self.max_active_tasks, defaults.max_active_tasks)
        daily = pick(self.tasks_per_day, defaults.tasks_per_day)
        return TokenLimits(
            requests_per_s=rate,
            burst=int(burst) if burst is not None else None,
            max_active_tasks=int(active) if active is not None else None,
            tasks_per_day=int(daily) if daily is not None else None,
        )


@dataclass(frozen=True, kw_only=True)
class Principal:
    """Who is calling. ``owner`` is the tenant id tasks are stored under: for a managed token
    a stable id that survives rotation, for an ``[auth] valid_tokens`` entry the hash of the
    token (as it always was, so existing tasks stay visible)."""

    owner: str
    name: str = "default"
    admin: bool = False
    limits: TokenLimits = field(default_factory=TokenLimits)
    #: Providers this caller may use; ``None`` for all.
    providers: frozenset[str] | None = None
    #: The managed token's id (``None`` for configured tokens).
    token_id: str | None = None

    def may_use(self, provider: str) -> bool:
        return self.providers is None or provider in self.providers

    def with_limits(self, limits: TokenLimits) -> Principal:
        return replace(self, limits=limits)
