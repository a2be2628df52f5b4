"""Drive ``engine_runner.py`` (Dify's engine, graphon, in ``.venv-dify``) from the gateway's tests.

graphon needs Python 3.12 and its own pins, so it lives in a side environment and runs in a
subprocess; this module builds the command line, parses the JSON the runner prints and adds
the checks the tests share (which nodes ran, is the URL a playable MP4).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import imageio_ffmpeg

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("engine_runner.py")
DIFY_PYTHON = ROOT / ".venv-dify" / "bin" / "python"
SETUP_HINT = (
    "the Dify engine side environment is missing: run `make test` (it builds .venv-dify), or "
    "PYENV_VERSION=3.12.1 python3.12 -m venv .venv-dify && .venv-dify/bin/pip install "
    "--no-deps -r tests/dify/requirements.txt"
)

MAIN = ROOT / "dify_workflow.yml"
GATEWAY_EXPANDS = ROOT / "dify" / "video_gateway_expands.yml"
POLLING = ROOT / "dify" / "video_async_polling.yml"
CHATFLOW = ROOT / "dify" / "video_chatflow.yml"
LONG_STORY = ROOT / "dify" / "video_long_story.yml"
ALL_FILES = (MAIN, GATEWAY_EXPANDS, POLLING, CHATFLOW, LONG_STORY)
#: Uses the Dify plugin's tool node (its credentials, no environment variables).
PLUGIN_WORKFLOW = ROOT / "dify" / "video_plugin.yml"


def dify_python() -> Path:
    """The side environment's interpreter; fails (never skips) with the way to build it."""
    if not DIFY_PYTHON.exists():
        raise AssertionError(SETUP_HINT)
    probe = subprocess.run(
        [str(DIFY_PYTHON), "-c", "import graphon.dsl"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        raise AssertionError(f"{SETUP_HINT}\n{probe.stderr.strip()}")
    return DIFY_PYTHON


def _invoke(args: list[str], *, timeout: float) -> dict[str, Any]:
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "PYTHONIOENCODING": "utf-8"}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        env.pop(name, None)
    done = subprocess.run(
        [str(dify_python()), str(RUNNER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(
            f"engine_runner printed no JSON (rc={done.returncode}):\n{done.stdout}\n{done.stderr}"
        ) from exc
    return result


def validate(*paths: Path) -> dict[str, dict[str, Any]]:
    """``{path: {"ok": bool, "problems": [...]}}`` from graphon-backed validation."""
    report: dict[str, dict[str, Any]] = _invoke(["validate", *map(str, paths)], timeout=120)[
        "files"
    ]
    return report


@dataclass
class EngineRun:
    """One GraphEngine run as the runner reported it."""

    raw: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.raw["status"])

    @property
    def outputs(self) -> dict[str, Any]:
        return dict(self.raw.get("outputs") or {})

    @property
    def nodes(self) -> list[dict[str, Any]]:
        return list(self.raw.get("nodes") or [])

    def ran(self, node_id: str) -> list[dict[str, Any]]:
        return [node for node in self.nodes if node["node_id"] == node_id]

    def last(self, node_id: str) -> dict[str, Any]:
        entries = self.ran(node_id)
        assert entries, f"node {node_id} did not run; trace: {self.trace()}"
        return entries[-1]

    def trace(self) -> list[str]:
        return [f"{n['node_id']}:{n['status']}:{n['edge_source_handle']}" for n in self.nodes]

    def describe(self) -> str:
        return json.dumps(
            {k: v for k, v in self.raw.items() if k != "nodes"} | {"trace": self.trace()},
            ensure_ascii=False,
            indent=1,
        )


def run(
    path: Path,
    *,
    base_url: str,
    token: str,
    inputs: dict[str, Any],
    fake_llm_text: str = "",
    query: str | None = None,
    timeout: float = 120,
    plugin_dir: Path | None = None,
) -> EngineRun:
    """Run ``path`` with graphon's GraphEngine against the gateway at ``base_url``.

    With ``plugin_dir`` (the Dify plugin, unpacked from its package) the gateway's URL and token
    are the plugin's credentials, as a workspace would have saved them; else they are the
    workflow's environment variables.
    """
    gateway = {"GATEWAY_BASE_URL": base_url, "GATEWAY_TOKEN": token}
    args = [
        "run",
        str(path),
        "--inputs",
        json.dumps(inputs, ensure_ascii=False),
        "--env",
        json.dumps(gateway if plugin_dir is None else {}),
        "--fake-llm-text",
        fake_llm_text,
    ]
    if plugin_dir is not None:
        credentials = [{"values": {"base_url": base_url, "token": token}}]
        args += ["--plugin-dir", str(plugin_dir), "--tool-credentials", json.dumps(credentials)]
    if query is not None:
        args += ["--query", query]
    result = EngineRun(_invoke(args, timeout=timeout))
    assert result.status != "runner-error", result.describe()
    return result


def assert_playable_mp4(url: str, *, tmp_dir: Path, frames: int) -> tuple[int, int]:
    """Download ``url`` as a Dify user would, decode every frame; returns (width, height)."""
    response = httpx.get(url, timeout=30, follow_redirects=True)
    assert response.status_code == 200, (url, response.status_code, response.text[:300])
    data = response.content
    assert data[4:8] == b"ftyp", f"not an MP4: {data[:16]!r}"
    path = tmp_dir / "video.mp4"
    path.write_bytes(data)
    decoded = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert decoded.returncode == 0, decoded.stderr
    assert "h264" in decoded.stderr, decoded.stderr
    counts = re.findall(r"frame=\s*(\d+)", decoded.stderr)
    assert counts and int(counts[-1]) == frames, decoded.stderr
    size = re.search(r"Video: .*?, (\d{2,5})x(\d{2,5})", decoded.stderr)
    assert size, decoded.stderr
    return int(size.group(1)), int(size.group(2))
