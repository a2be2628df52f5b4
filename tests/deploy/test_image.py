"""The real Dockerfile, built on a local Debian Python image and run as a user would run it:
``docker run -p 8000:8000 -v $PWD/data:/srv/data video-gateway``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.deploy.conftest import Images, run
from tests.emulators.server import free_port

# The first run on a machine builds every image (minutes); later runs find them cached.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]

# The README's first request.
README_BODY = {
    "prompt": "a cat playing piano",
    "aspect_ratio": "9:16",
    "duration_ms": 3000,
    "fps": 12,
}


def health(name: str) -> str:
    state = run(["docker", "inspect", "--format", "{{json .State}}", name]).stdout
    parsed = json.loads(state)
    assert parsed["Running"], (
        f"the container stopped: {run(['docker', 'logs', name]).stderr[-2000:]}"
    )
    return str(parsed.get("Health", {}).get("Status", "none"))


def test_the_image_runs_as_the_readme_says(
    images: Images, tmp_path: Path, container_names: list[str]
) -> None:
    port = free_port()
    data = tmp_path / "data"  # does not exist yet: Docker creates it, owned by root
    name = f"vgw-image-test-{port}"
    container_names.append(name)
    run(
        [
            "docker", "run", "-d", "--name", name,
            "-p", f"127.0.0.1:{port}:8000",
            "-v", f"{data}:/srv/data",
            images.gateway,
        ]
    )  # fmt: skip

    # The HEALTHCHECK turns healthy (the engine runs it every 10 s; bounded wait).
    for _ in range(120):
        if health(name) == "healthy":
            break
        time.sleep(0.5)
    assert health(name) == "healthy"

    # It runs unprivileged although the bind mount was created by root, and writes there.
    status = run(["docker", "exec", name, "cat", "/proc/1/status"]).stdout
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1] == "10001"
    assert (data / "gateway.db").is_file()
    token = (data / "dev-token").read_text().strip()
    assert token in run(["docker", "logs", name]).stdout  # printed once, for the user

    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120) as http:
        answer = http.post("/generate-video", json=README_BODY)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"] == "succeeded"
        # No public_base_url: the link follows the address the client used, never 0.0.0.0.
        assert body["video_url"].startswith(f"http://127.0.0.1:{port}/files/")
        video = http.get(body["video_url"])
        assert video.status_code == 200 and video.content[4:8] == b"ftyp"

        # Chinese prompts: the CJK fonts are there for the renderer, and such a task renders.
        fonts = run(["docker", "exec", name, "fc-list", ":lang=zh", "family"]).stdout
        assert "Noto Sans CJK" in fonts
        chinese = http.post(
            "/generate-video",
            json={"prompt": "小男孩在草地上踢足球", "duration_ms": 2000, "fps": 8},
        )
        assert chinese.status_code == 200, chinese.text
        assert http.get(chinese.json()["video_url"]).content[4:8] == b"ftyp"
