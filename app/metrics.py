"""Prometheus metrics, one registry per app (no module-level globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.tasks.models import Task


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

    def finished(self, task: Task) -> None:
        provider = task.provider or "none"
        self.tasks_finished.labels(provider, task.status.value).inc()
        end = task.finished_at or task.updated_at
        self.task_seconds.labels(provider, task.status.value).observe(
            max(0.0, (end - task.created_at).total_seconds())
        )
