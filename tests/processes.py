"""Real gateway processes (``python -m app serve``) for tests and benchmarks that crash them.

A ``GatewayProcess`` is configured by ``VGW_`` environment variables only, as in production,
and can be stopped gracefully (SIGTERM) or killed without a word (SIGKILL, as after ``kill -9``
or a power cut). Its output goes to a log file next to its data, shown when it fails to start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.emulators.server import free_port

REPO = Path(__file__).resolve().parents[1]


def settings_env(overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``{"server": {"port": 1}}`` → ``{"VGW_SERVER__PORT": "1"}``."""
    env: dict[str, str] = {}
    for section, values in overrides.items():
        for key, value in values.items():
            if value is None:
                continue
            text = str(value).lower() if isinstance(value, bool) else str(value)
            env[f"VGW_{section.upper()}__{key.upper()}"] = text
    return env


class GatewayProcess:
    def __init__(
        self,
        data_dir: Path,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        port: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.overrides = {section: dict(values) for section, values in (overrides or {}).items()}
        self.log_path = data_dir.parent / f"{data_dir.name}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        base = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("VGW_") or key.startswith("VGW_TEST_")
        }
        server = {"data_dir": str(self.data_dir), "port": self.port, "host": "127.0.0.1"}
        # As make_settings: test servers listen on loopback, and tests count provider jobs.
        defaults = {"security": {"private_url_allowlist": "127.0.0.1"}, "cache": {"ttl_h": 0}}
        merged = {
            **defaults,
            **self.overrides,
            "server": {**server, **self.overrides.get("server", {})},
        }
        return {**base, **settings_env(merged), "PYTHONUNBUFFERED": "1"}

    def start(self, *, timeout_s: float = 60.0) -> GatewayProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve"],
            cwd=REPO,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        # One client for the whole wait: a new one per try builds a TLS context each time, CPU
        # taken from the gateway starting beside it (bench/chaos.py times that start).
        with httpx.Client(timeout=1) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"gateway exited at start:\n{self.log()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.base_url}/healthz").status_code == 200:
                        return self
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"gateway did not start in {timeout_s:.0f} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown, no lease hand-over, connections dropped by the kernel."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM: uvicorn's graceful shutdown (leases handed over)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )


@contextlib.contextmanager
def running(*gateways: GatewayProcess) -> Iterator[tuple[GatewayProcess, ...]]:
    """Start the gateways; kill whatever is still running at the end."""
    try:
        for gateway in gateways:
            gateway.start()
        yield gateways
    finally:
        for gateway in gateways:
            gateway.kill()
