"""Container tests: the real Dockerfile and deploy/compose.yaml, on a local Docker engine.

They need an engine (``scripts/docker-engine`` starts one; ``.ci/run`` calls it) and the local
base images (``scripts/docker-images``, cached). Without an engine the tests are not run and
the run says why (deselected, with the reason in the summary) — except under CI (``CI=true``),
where a missing engine fails them: there nothing may quietly not run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
_not_run: dict[str, str] = {}


def engine_problem() -> str | None:
    """Why no container test can run here, or None."""
    if shutil.which("docker") is None:
        return "no docker client (scripts/docker-engine installs Debian's docker.io)"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        return "no Docker engine answers (start one with scripts/docker-engine, as root)"
    if compose_command() is None:
        return "neither `docker compose` nor `docker-compose` is installed"
    return None


def compose_command() -> list[str] | None:
    """``docker compose`` (v2) when the plugin is there, else Debian's ``docker-compose``."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def tool_problem(tool: str, how: str) -> str | None:
    return None if shutil.which(tool) else f"{tool} is not installed ({how})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problems = {
        "docker": engine_problem(),
        "promtool": tool_problem("promtool", "scripts/test-tools installs Debian's prometheus"),
    }
    keep, drop = [], []
    for item in items:
        marker = next((m for m in ("docker", "promtool") if item.get_closest_marker(m)), None)
        problem = problems.get(marker) if marker else None
        if problem is None or IN_CI:
            keep.append(item)
            continue
        drop.append(item)
        _not_run[item.nodeid] = problem
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _not_run:
        return
    terminalreporter.section("container and tool tests not run")
    for nodeid, reason in _not_run.items():
        terminalreporter.write_line(f"NOT RUN {nodeid}: {reason}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs a Docker engine (fails under CI without)")
    config.addinivalue_line("markers", "promtool: needs promtool (fails under CI without)")


@pytest.fixture(scope="session")
def engine() -> None:
    """The explicit check: under CI a missing engine is a failure with the reason."""
    problem = engine_problem()
    if problem is not None:
        pytest.fail(f"container tests cannot run: {problem}", pytrace=False)


@dataclass(frozen=True)
class Images:
    python: str
    postgres: str
    redis: str
    nginx: str
    seaweedfs: str
    squid: str
    gateway: str

    def compose_env(self) -> dict[str, str]:
        return {
            "PYTHON_IMAGE": self.python,
            "POSTGRES_IMAGE": self.postgres,
            "REDIS_IMAGE": self.redis,
            "NGINX_IMAGE": self.nginx,
            "SEAWEEDFS_IMAGE": self.seaweedfs,
            "GATEWAY_IMAGE": self.gateway,
        }


def run(args: list[str], *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure the assertion shows its output."""
    done = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
    output = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{output}"
    return done


def context_hash() -> str:
    """What the gateway image is built from: a new tag when any of it changes."""
    digest = hashlib.sha256()
    files = [ROOT / name for name in ("Dockerfile", "requirements.txt", "dify_workflow.yml")]
    files.append(ROOT / "deploy/docker-entrypoint.sh")
    for folder in ("app", "dify"):
        files += sorted(
            p for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


@pytest.fixture(scope="session")
def images(engine: None) -> Images:
    """The local base images (cached by recipe) and the real Dockerfile built on them."""
    listed = run([str(ROOT / "scripts/docker-images")]).stdout
    found = dict(line.split("=", 1) for line in listed.splitlines() if "=" in line)
    gateway = f"vgw-test/gateway:{context_hash()}"
    present = subprocess.run(
        ["docker", "image", "inspect", gateway], capture_output=True, check=False
    )
    if present.returncode != 0:
        build_arg = f"PYTHON_IMAGE={found['PYTHON_IMAGE']}"
        run(["docker", "build", "--build-arg", build_arg, "-t", gateway, str(ROOT)])
        # Earlier builds of other sources: untag them so their layers can be reclaimed.
        tags = run(["docker", "images", "vgw-test/gateway", "--format", "{{.Repository}}:{{.Tag}}"])
        stale = [tag for tag in tags.stdout.split() if tag != gateway]
        if stale:
            subprocess.run(["docker", "rmi", *stale], capture_output=True, check=False)
    return Images(
        python=found["PYTHON_IMAGE"],
        postgres=found["POSTGRES_IMAGE"],
        redis=found["REDIS_IMAGE"],
        nginx=found["NGINX_IMAGE"],
        seaweedfs=found["SEAWEEDFS_IMAGE"],
        squid=found["SQUID_IMAGE"],
        gateway=gateway,
    )


@pytest.fixture(scope="session")
def compose(engine: None) -> list[str]:
    command = compose_command()
    assert command is not None
    return command


@pytest.fixture
def container_names() -> Iterator[list[str]]:
    """Containers a test started with ``docker run``; removed after it, whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=False)
