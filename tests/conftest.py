"""Shared fixtures: settings for tests and the real gateway on a loopback port."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from app.config import Settings, load_settings
from app.main import create_app
from app.providers.base import VideoProvider
from tests.emulators.server import free_port, serve_in_thread

TOKEN = "test-token-alpha-0001"
OTHER_TOKEN = "test-token-bravo-0002"


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the PostgreSQL server on 127.0.0.1, dropped after the session."""
    name = f"vgw_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def make_settings(
    data_dir: Path,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    port: int | None = None,
) -> Settings:
    """Settings as the gateway would load them, with no config file and no VGW_ variables."""
    merged: dict[str, dict[str, Any]] = {
        "server": {"data_dir": str(data_dir), "sync_wait_s": 60},
        "auth": {"valid_tokens": f'["{TOKEN}", "{OTHER_TOKEN}"]'},
    }
    if port is not None:
        merged["server"]["port"] = port
    for section, values in (overrides or {}).items():
        merged.setdefault(section, {}).update(values)
    return load_settings(None, environ={}, overrides=merged)


@dataclass
class LiveGateway:
    base_url: str
    token: str
    other_token: str
    client: httpx.Client
    app: FastAPI
    settings: Settings
    data_dir: Path

    def wait_task(self, task_id: str, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Long-poll the task until ``until(task)`` holds (bounded; no timing assertions)."""
        task: dict[str, Any] = {}
        for _ in range(200):
            task = self.client.get(f"/v1/tasks/{task_id}", params={"wait_s": 0.2}).json()
            if until(task):
                return task
        raise AssertionError(f"task never reached the expected state: {task}")

    def client_for(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )


GatewayFactory = Callable[..., contextlib.AbstractContextManager[LiveGateway]]


def eventually(check: Callable[[], bool], *, rounds: int = 400) -> None:
    """Wait (bounded, 50 ms steps) for something another thread or process does."""
    for _ in range(rounds):
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("the condition never held")


@pytest.fixture
def gateway_factory(tmp_path: Path) -> GatewayFactory:
    """``gateway_factory(overrides, *, data_dir=None, extra_providers=None)`` → context manager.

    Starts the real app (lifespan included) with uvicorn on a free 127.0.0.1 port.
    """

    @contextlib.contextmanager
    def start(
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        data_dir: Path | None = None,
        extra_providers: Mapping[str, VideoProvider] | None = None,
    ) -> Iterator[LiveGateway]:
        port = free_port()
        settings = make_settings(data_dir or tmp_path / "data", overrides, port=port)
        app = create_app(settings, extra_providers=extra_providers)
        with serve_in_thread(app, port=port) as base_url:
            client = httpx.Client(
                base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
            )
            try:
                yield LiveGateway(
                    base_url=base_url,
                    token=TOKEN,
                    other_token=OTHER_TOKEN,
                    client=client,
                    app=app,
                    settings=settings,
                    data_dir=settings.data_dir,
                )
            finally:
                client.close()

    return start


@pytest.fixture
def live_gateway(gateway_factory: GatewayFactory) -> Iterator[LiveGateway]:
    """The gateway on embedded defaults (preview provider, local storage, SQLite)."""
    with gateway_factory() as gateway:
        yield gateway
