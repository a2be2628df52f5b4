"""Prometheus metrics, one registry per app (no module-level globals).

What each family measures, and who feeds it::

    vgw_http_requests_total{method,route,status}      app.api.http_metrics (route = template)
    vgw_http_request_duration_seconds{method,route}   idem; long-polls and waits included
    vgw_http_requests_in_flight                       idem
    vgw_tasks_created_total{provider}                 TaskService, when a task is accepted
    vgw_tasks_finished_total{provider,status}         the pipeline's terminal hook
    vgw_task_duration_seconds{provider,status}        idem, acceptance to end
    vgw_tasks_active                                  tasks this process is working on now
    vgw_tasks{status}                                 unfinished tasks in the shared store
                                                      (queued = the queue), read at scrape time
    vgw_provider_calls_total{provider,operation,outcome}
                                                      app.providers.instrumented: outcome is
                                                      "ok" or the error code of the call
    vgw_provider_call_duration_seconds{provider,operation}
    vgw_relay_bytes_total{provider}                   video bytes streamed from a provider
    vgw_storage_operations_total{backend,operation,outcome}
                                                      app.storage.instrumented
    vgw_webhook_backlog                               webhook deliveries not yet done
    vgw_provider_breaker_state{provider}              BreakerCollector: 0 closed, 1 half-open,
    vgw_provider_breaker_opened_total{provider}       2 open; how often it opened; the errors
    vgw_provider_errors_total{provider,code}          the breakers counted (submits and jobs)
    vgw_build_info{version}                           always 1

Gauges that describe state owned elsewhere are read when Prometheus scrapes: a synchronous
source with ``gauge.set_function``, an asynchronous one (a database count) registered with
:meth:`Metrics.on_scrape` and awaited by ``GET /metrics`` before rendering. The webhook backlog
is fed that way by whoever owns the deliveries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app import __version__
from app.providers.health import Breakers
from app.tasks.models import Task

logger = logging.getLogger(__name__)

ScrapeHook = Callable[[], Awaitable[None]]
SCRAPE_HOOK_TIMEOUT_S = 5.0
# Long-polls and /generate-video hold requests for up to minutes: the buckets reach that far.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
PROVIDER_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


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
        self._scrape_hooks: list[ScrapeHook] = []
        self._breakers: BreakerCollector | None = None
        r = self.registry
        self.http_requests = Counter(
            "vgw_http_requests_total",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "vgw_http_request_duration_seconds",
            "Time to answer an HTTP request (long-polls and synchronous waits included).",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.http_in_flight = Gauge(
            "vgw_http_requests_in_flight", "HTTP requests being answered now.", registry=r
        )
        self.tasks_created = Counter(
            "vgw_tasks_created_total", "Tasks accepted.", ["provider"], registry=r
        )
        self.tasks_finished = Counter(
            "vgw_tasks_finished_total", "Tasks that ended.", ["provider", "status"], registry=r
        )
        self.task_seconds = Histogram(
            "vgw_task_duration_seconds",
            "Time from acceptance to the end of a task.",
            ["provider", "status"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600),
            registry=r,
        )
        self.tasks_active = Gauge(
            "vgw_tasks_active", "Tasks this process is working on now.", registry=r
        )
        self.tasks = Gauge(
            "vgw_tasks",
            "Unfinished tasks in the shared task store, by status (queued is the queue).",
            ["status"],
            registry=r,
        )
        self.provider_calls = Counter(
            "vgw_provider_calls_total",
            "Calls to video providers; outcome is ok or the error code.",
            ["provider", "operation", "outcome"],
            registry=r,
        )
        self.provider_seconds = Histogram(
            "vgw_provider_call_duration_seconds",
            "Duration of calls to video providers.",
            ["provider", "operation"],
            buckets=PROVIDER_BUCKETS,
            registry=r,
        )
        self.relay_bytes = Counter(
            "vgw_relay_bytes_total",
            "Video bytes streamed from providers (into the gateway's storage).",
            ["provider"],
            registry=r,
        )
        self.storage_operations = Counter(
            "vgw_storage_operations_total",
            "Storage calls; outcome is ok or the error code.",
            ["backend", "operation", "outcome"],
            registry=r,
        )
        self.webhook_backlog = Gauge(
            "vgw_webhook_backlog", "Webhook deliveries not yet done.", registry=r
        )
        Gauge("vgw_build_info", "The gateway's version.", ["version"], registry=r).labels(
            __version__
        ).set(1)

    def watch_breakers(self, breakers: Breakers) -> None:
        """Report ``breakers`` (each start of the app brings its own; the last one counts)."""
        if self._breakers is not None:
            self.registry.unregister(self._breakers)
        self._breakers = BreakerCollector(breakers)
        self.registry.register(self._breakers)

    def finished(self, task: Task) -> None:
        provider = task.provider or "none"
        self.tasks_finished.labels(provider, task.status.value).inc()
        end = task.finished_at or task.updated_at
        self.task_seconds.labels(provider, task.status.value).observe(
            max(0.0, (end - task.created_at).total_seconds())
        )

    def on_scrape(self, hook: ScrapeHook) -> None:
        """Run ``hook`` (it sets gauges from state owned elsewhere) before every scrape."""
        self._scrape_hooks.append(hook)

    async def refresh(self) -> None:
        """Run the scrape hooks; one that fails or hangs leaves its gauges as they were."""
        for hook in self._scrape_hooks:
            try:
                async with asyncio.timeout(SCRAPE_HOOK_TIMEOUT_S):
                    await hook()
            except Exception:  # a scrape reports what it can; the log says what it could not
                logger.warning("metrics: a scrape hook failed", exc_info=True)
