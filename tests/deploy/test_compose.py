"""deploy/compose.yaml as shipped: two gateways behind nginx, PostgreSQL, Redis, SeaweedFS.

The image names are overridden through the variables the file reads; the Ark (Seedance)
emulator joins the stack (tests/deploy/compose.test.yaml) as the provider. Tasks go in through
nginx, one gateway is killed while its tasks run, and every task must still end with exactly
one job at the provider: the other gateway takes the orphans over instead of paying twice.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy.conftest import HERE, ROOT, Images, run
from tests.emulators.server import free_port

pytestmark = pytest.mark.docker

TOKEN = "compose-test-token-" + secrets.token_hex(8)
ARK_KEY = "ark-compose-key-" + secrets.token_hex(8)
TASKS = 6


@dataclass
class Stack:
    compose: list[str]
    base_url: str
    env: dict[str, str]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run([*self.compose, *args], env=self.env)

    def container(self, service: str) -> str:
        ids = self("ps", "-q", service).stdout.split()
        assert ids, f"no container for {service}"
        return ids[0]

    def health(self, service: str) -> str:
        state = json.loads(
            run(
                ["docker", "inspect", "--format", "{{json .State}}", self.container(service)]
            ).stdout
        )
        return str(state.get("Health", {}).get("Status", "none"))

    def logs(self, service: str) -> str:
        done = run(["docker", "logs", self.container(service)])
        return done.stdout + done.stderr

    def emulator_jobs(self) -> dict[str, Any]:
        script = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8080/_emulator/jobs').read().decode())"
        out = run(["docker", "exec", self.container("ark"), "python", "-c", script]).stdout
        parsed: dict[str, Any] = json.loads(out)
        return parsed


@pytest.fixture
def stack(images: Images, compose: list[str], tmp_path: Path) -> Iterator[Stack]:
    port = free_port()
    values = {
        **images.compose_env(),
        "GATEWAY_PORT": str(port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "VGW_AUTH__VALID_TOKENS": TOKEN,
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "REDIS_PASSWORD": secrets.token_hex(16),
        "S3_ACCESS_KEY": "vgw" + secrets.token_hex(6),
        "S3_SECRET_KEY": secrets.token_hex(20),
        "VGW_PROVIDERS__DEFAULT": "seedance",
        "VGW_SEEDANCE__BASE_URL": "http://ark:8080",
        "VGW_SEEDANCE__API_KEY": ARK_KEY,
        "ARK_API_KEY": ARK_KEY,
        "ARK_RUNNING_S": "4",
        # A dead gateway's tasks are taken over once their lease runs out.
        "VGW_QUEUE__LEASE_S": "3",
    }
    env_file = tmp_path / "stack.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    project = "vgwtest" + secrets.token_hex(4)
    command = [
        *compose, "-p", project, "--env-file", str(env_file),
        "-f", str(ROOT / "deploy/compose.yaml"), "-f", str(HERE / "compose.test.yaml"),
    ]  # fmt: skip
    # Only what compose needs from this process: no stray VGW_/image variables leak in.
    env = {key: os.environ[key] for key in ("PATH", "HOME", "DOCKER_HOST") if key in os.environ}
    live = Stack(compose=command, base_url=f"http://127.0.0.1:{port}", env=env)
    try:
        live("up", "-d", "--no-build")
        yield live
    finally:
        subprocess.run(
            [*command, "down", "-v", "--remove-orphans", "-t", "5"],
            env=env,
            capture_output=True,
            check=False,
        )


def wait_for(check: Any, what: str, rounds: int = 240) -> None:
    for _ in range(rounds):
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"never happened: {what}")


def accepted_by(stack: Stack, service: str) -> set[str]:
    return set(re.findall(r"task (vt_[0-9a-f]+) accepted", stack.logs(service)))


def test_tasks_survive_a_killed_gateway_and_are_paid_once(stack: Stack) -> None:
    for service in ("gateway-1", "gateway-2"):
        wait_for(lambda s=service: stack.health(s) == "healthy", f"{service} healthy")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=stack.base_url, headers=headers, timeout=90) as http:
        wait_for(lambda: http.get("/healthz").status_code == 200, "nginx passes /healthz")

        ids = []
        for n in range(TASKS):
            created = http.post(
                "/v1/tasks",
                json={"prompt": f"compose test {n}: a paper boat on a river"},
                headers={"Idempotency-Key": f"compose-{n}"},
            )
            assert created.status_code == 202, created.text
            ids.append(created.json()["id"])

        # nginx spread them; kill the first gateway while its tasks are at the provider.
        victims = accepted_by(stack, "gateway-1") & set(ids)
        assert victims, "gateway-1 accepted none of the tasks"
        wait_for(
            lambda: all(http.get(f"/v1/tasks/{i}").json()["status"] == "running" for i in victims),
            "gateway-1's tasks submitted to the provider",
        )
        run(["docker", "kill", stack.container("gateway-1")])

        tasks: dict[str, dict[str, Any]] = {}
        for task_id in ids:
            for _ in range(30):
                try:
                    answer = http.get(f"/v1/tasks/{task_id}", params={"wait_s": 20})
                except httpx.TransportError:
                    continue  # the connection that nginx had open to the dead gateway
                if answer.status_code == 200 and answer.json()["status"] not in (
                    "queued",
                    "running",
                ):
                    tasks[task_id] = answer.json()
                    break
        assert sorted(tasks) == sorted(ids), "some tasks never ended"
        assert {t["status"] for t in tasks.values()} == {"succeeded"}, tasks

        # Exactly one provider job per task, the gateway's ids are the emulator's.
        jobs = stack.emulator_jobs()
        assert jobs["creates"] == TASKS
        assert sorted(j["id"] for j in jobs["jobs"]) == sorted(
            t["provider_task_id"] for t in tasks.values()
        )
        assert sorted(j["prompt"] for j in jobs["jobs"]) == sorted(
            t["prompt"] for t in tasks.values()
        )

        # The killed gateway's tasks were finished by the other one, and the video URLs (S3
        # presigned, through nginx's /media/) serve the provider's MP4.
        assert victims <= set(tasks)
        for task_id in victims:
            video = http.get(tasks[task_id]["video_url"])
            assert video.status_code == 200 and video.content[4:8] == b"ftyp"
            assert tasks[task_id]["video_url"].startswith(f"{stack.base_url}/media/videos/")
