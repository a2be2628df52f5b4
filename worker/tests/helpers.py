"""Helpers for the worker tests: a real worker subprocess, polling, MP4 checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token"
TERMINAL = {"completed", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class WorkerProcess:
    """``python -m worker serve`` in a subprocess on a free port, with its log in a file."""

    def __init__(
        self, model_path: Path | str, workdir: Path, *extra: str, token: str | None = TOKEN
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.output_dir = workdir / "videos"
        self.log_path = workdir / "worker.log"
        self.token = token
        args = [
            sys.executable,
            "-m",
            "worker",
            "serve",
            "--model-path",
            str(model_path),
            "--device",
            "cpu",
        ]
        args += ["--port", str(self.port), "--output-dir", str(self.output_dir), *extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("WORKER_TOKEN", None)
        if token is not None:
            env["WORKER_TOKEN"] = token
        workdir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            args, cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.observed: list[str] = []  # /health statuses seen while waiting for setup to end

    def client(self, *, token: str | None = None) -> httpx.Client:
        token = token or self.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30.0)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_setup(self, deadline_s: float = 120.0) -> dict[str, Any]:
        """Poll /health until setup ends (ready or setup_failed); records every status seen."""
        deadline = time.monotonic() + deadline_s
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"worker exited with {self.proc.returncode}:\n{self.log_tail()}"
                    )
                try:
                    health: dict[str, Any] = client.get("/health").json()
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                if not self.observed or self.observed[-1] != health["status"]:
                    self.observed.append(health["status"])
                if health["status"] in ("ready", "setup_failed"):
                    return health
                time.sleep(0.05)
        raise AssertionError(f"worker setup did not end; seen {self.observed}:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def wait_for_task(
    client: httpx.Client, task_id: str, *, until: set[str] | None = None, deadline_s: float = 120.0
) -> dict[str, Any]:
    """Poll the task until its status is in ``until`` (default: any terminal status)."""
    until = until or TERMINAL
    deadline = time.monotonic() + deadline_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/api/v1/status/{task_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in until:
            return body
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not reach {until}; last: {body}")


def wait_for_progress(
    client: httpx.Client, task_id: str, *, deadline_s: float = 120.0
) -> dict[str, Any]:
    """Poll until the task is processing with at least one step done."""
    deadline = time.monotonic() + deadline_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/status/{task_id}").json()
        assert body["status"] in ("queued", "processing"), body
        if body["status"] == "processing" and body["progress"] > 0:
            return body
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} made no progress; last: {body}")


def submit(client: httpx.Client, **body: Any) -> dict[str, Any]:
    payload = {
        "prompt": "a panda playing guitar",
        "num_frames": 9,
        "num_inference_steps": 2,
        **body,
    }
    response = client.post("/api/v1/generate", json=payload)
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()
    return result


def check_mp4(data: bytes, tmp_path: Path) -> tuple[int, tuple[int, int]]:
    """Decode the MP4 with ffmpeg (must be clean) and return (frames, (width, height))."""
    import imageio_ffmpeg

    path = tmp_path / "check.mp4"
    path.write_bytes(data)
    decoded = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        check=False,
    )
    assert decoded.returncode == 0 and decoded.stderr == b"", decoded.stderr
    # +faststart: the index (moov) precedes the media data (mdat).
    assert 0 < data.find(b"moov") < data.find(b"mdat"), "moov atom is not before mdat"
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    reader.close()
    return frames, tuple(meta["size"])
