"""What a gateway loads when it starts.

A gateway restarted after a crash should be back at its tasks within about two seconds
(``bench/chaos.py``), and most of a start is importing code. SDKs that a configuration may never
call are loaded when they are first needed: the MCP server on the first ``/mcp`` request, the
``openai`` client when ``[llm]`` names an endpoint, Alembic when the schema is not at its newest,
the Redis client when ``[limits] storage`` names a server.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app.main import YOUNG_GC_THRESHOLD
from tests.processes import REPO, GatewayProcess

LAZY = ("mcp", "openai", "alembic", "redis", "watchfiles")

START_AND_STOP = """
import asyncio, sys
from app.config import load_settings
from app.main import create_app

async def main():
    app = create_app(load_settings(None))
    async with app.router.lifespan_context(app):
        pass

asyncio.run(main())
print(",".join(sorted(name for name in sys.argv[1:] if name in sys.modules)))
"""


def test_a_start_loads_no_sdk_its_configuration_does_not_call(tmp_path: Path) -> None:
    env = GatewayProcess(tmp_path / "data").env()

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, *args], cwd=REPO, env=env, capture_output=True, timeout=120
        )
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        return done.stdout.decode().strip()

    # The first start on an empty database migrates it (Alembic is loaded for that) ...
    assert run("-c", START_AND_STOP, *LAZY) == "alembic"
    # ... and every later one finds the schema current and loads none of them.
    assert run("-c", START_AND_STOP, *LAZY) == ""


FROZEN_AFTER_START = """
import asyncio, gc, sys
from app.config import load_settings
from app.main import create_app

async def main():
    # As `python -m app serve` makes it, or as anything else does.
    app = create_app(load_settings(None), freeze_heap=sys.argv[1] == "serve")
    async with app.router.lifespan_context(app):
        print(gc.get_threshold()[0], gc.get_freeze_count())

asyncio.run(main())
"""


def test_a_server_leaves_what_it_made_at_startup_out_of_the_collector(tmp_path: Path) -> None:
    """A full collection walked every object made at startup: 70-80 ms with the loop stopped,
    in the middle of bursts of tasks. ``serve`` freezes them once the gateway is ready; an app
    run any other way (tests, embedding) is left alone."""
    env = GatewayProcess(tmp_path / "data").env()

    def frozen(mode: str) -> tuple[int, int]:
        done = subprocess.run(
            [sys.executable, "-c", FROZEN_AFTER_START, mode],
            cwd=REPO,
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        threshold, count = done.stdout.decode().split()[-2:]
        return int(threshold), int(count)

    served, embedded = frozen("serve"), frozen("embedded")
    # (Python itself freezes a few hundred objects at start.)
    assert served[1] > 100_000 > embedded[1]
    # Young objects collected less often too (a burst of tasks made ~70 collections).
    assert served[0] == YOUNG_GC_THRESHOLD > embedded[0]
