"""The worker process's moving parts: the model loader, the runner and the janitor threads.

``start()`` returns at once: the HTTP server answers ``/health`` with ``starting`` while the loader
thread imports torch and loads the checkpoint; it then becomes ``ready`` (or ``setup_failed`` with
the reason) and the runner thread starts taking jobs, one at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from worker.config import WorkerSettings
from worker.engine import ModelProfile
from worker.errors import SetupError, UnavailableError
from worker.jobs import Engine, JobQueue

log = logging.getLogger("worker.runtime")

SetupState = Literal["starting", "ready", "setup_failed"]


class LoadedEngine(Engine, Protocol):
    """An engine that knows what it loaded and where (reported by /health)."""

    profile: ModelProfile
    device: Any
    dtype: Any


Loader = Callable[[WorkerSettings], LoadedEngine]


@dataclass(frozen=True)
class Health:
    status: Literal["starting", "ready", "busy", "setup_failed"]
    error: str | None
    profile: ModelProfile | None
    device: str
    dtype: str | None


class Runtime:
    def __init__(self, settings: WorkerSettings, *, loader: Loader) -> None:
        self.settings = settings
        self.queue = JobQueue(
            output_dir=settings.output_dir,
            max_queue=settings.max_queue,
            retention_s=settings.retention_s,
        )
        self._loader = loader
        self._lock = threading.Lock()
        self._state: SetupState = "starting"
        self._error: str | None = None
        self._engine: LoadedEngine | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.settings.output_dir.mkdir(parents=True, exist_ok=True)
        self._spawn(self._load, "worker-loader")
        self._spawn(self._janitor, "worker-janitor")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop taking jobs; the running one stops after its current step."""
        self._stop.set()
        self.queue.close()
        for thread in self._threads:
            if thread.name != "worker-loader":  # a load cannot be interrupted; it is a daemon
                thread.join(timeout_s)

    def health(self) -> Health:
        with self._lock:
            state, error, engine = self._state, self._error, self._engine
        if engine is None:
            return Health(state, error, None, self.settings.device, None)
        status: Literal["ready", "busy"] = "busy" if self.queue.stats().running else "ready"
        return Health(
            status,
            None,
            engine.profile,
            str(engine.device),
            str(engine.dtype).removeprefix("torch."),
        )

    def ready_profile(self) -> ModelProfile:
        """The loaded model's profile, or 503 while loading / after a failed setup."""
        with self._lock:
            state, error, engine = self._state, self._error, self._engine
        if engine is not None:
            return engine.profile
        if state == "setup_failed":
            raise UnavailableError(f"the model failed to load: {error}", retryable=False)
        raise UnavailableError("the model is still loading", retryable=True, retry_after_s=5)

    def _load(self) -> None:
        try:
            engine = self._loader(self.settings)
        except SetupError as exc:
            self._fail(str(exc))
            return
        except Exception as exc:
            log.exception("model setup failed")
            self._fail(f"{type(exc).__name__}: {exc}")
            return
        with self._lock:
            self._engine, self._state = engine, "ready"
        log.info("ready: %s (%s) on %s", engine.profile.name, engine.profile.family, engine.device)
        if not self._stop.is_set():
            self._spawn(lambda: self.queue.run(engine), "worker-runner")

    def _fail(self, reason: str) -> None:
        log.error("setup_failed: %s", reason)
        with self._lock:
            self._state, self._error = "setup_failed", reason

    def _janitor(self) -> None:
        interval = min(60.0, max(0.5, self.settings.retention_s / 4))
        while True:
            try:
                self.queue.purge_expired()
            except OSError:
                log.exception("could not delete expired videos")
            if self._stop.wait(interval):
                return

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()
