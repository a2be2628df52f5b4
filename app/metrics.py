"""Prometheus metrics, one registry per app (no module-level globals)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.providers.health import Breakers
from app.tasks.models import Task


class BreakerCollector(Collector):
    """Reads the providers' circuit breakers at scrape time (an open circuit turns half-open
    by the clock, not by an event)."""

    def __init__(self, breakers: Breakers) -> None:
        self._breakers = breakers

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "vgw_provider_breaker_state",
            "Circuit breaker per provider: 0 closed, 1 half-open, 2 open.",
            labels=["provider"],
        )
        opened = CounterMetricFamily(
            "vgw_provider_breaker_opened",
            "Times the provider's circuit opened.",
            labels=["provider"],
        )
        errors = CounterMetricFamily(
            "vgw_provider_errors",
            "Errors from providers (submits and jobs), by error code.",
            labels=["provider", "code"],
        )
        for name, breaker in self._breakers.items():
            state.add_metric([name], breaker.current().level)
            opened.add_metric([name], breaker.times_opened)
            for code, count in sorted(breaker.errors.items()):
                errors.add_metric([name, code], count)
        yield state
        yield opened
        yield errors


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tasks_created = Counter(
            "vgw_tasks_created_total", "Tasks accepted.", ["provider"], registry=self.registry
        )
        self.tasks_finished = Counter(
            "vgw_tasks_finished_total",
            "Tasks that ended.",
            ["provider", "status"],
            registry=self.registry,
        )
        self.task_seconds = Histogram(
            "vgw_task_duration_seconds",
            "Time from acceptance to the end of a task.",
            ["provider", "status"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600),
            registry=self.registry,
        )
        self.tasks_active = Gauge(
            "vgw_tasks_active", "Tasks being processed here.", registry=self.registry
        )

    def watch_breakers(self, breakers: Breakers) -> None:
        self.registry.register(BreakerCollector(breakers))

    def finished(self, task: Task) -> None:
        provider = task.provider or "none"
        self.tasks_finished.labels(provider, task.status.value).inc()
        end = task.finished_at or task.updated_at
        self.task_seconds.labels(provider, task.status.value).observe(
            max(0.0, (end - task.created_at).total_seconds())
        )
