"""deploy/compose.yaml as shipped: two gateways behind nginx, PostgreSQL, Redis, SeaweedFS.

The image names are overridden through the variables the file reads; the Ark (Seedance)
emulator joins the stack (tests/deploy/compose.test.yaml) as the provider, and
deploy/compose.dify.yaml joins it to a network standing in for a self-hosted Dify's.

* Beside Dify: through a strict Squid on that network (Dify's ssrf_proxy), a client reaches
  ``http://video-gateway:8000`` once deploy/dify/ssrf_proxy/30-video-gateway.conf is mounted,
  and is refused without it.
* A managed token's request limit holds across both replicas (buckets in Redis).
* Tasks go in through nginx and on one gateway directly, that gateway is killed while its tasks
  run, and every task must still end with exactly one job at the provider: the other gateway
  takes the orphans over instead of paying twice.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
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

# The first run on a machine builds every image (minutes); later runs find them cached.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]

TOKEN = "compose-test-token-" + secrets.token_hex(8)
ARK_KEY = "ark-compose-key-" + secrets.token_hex(8)
TASKS = 6


@dataclass
class Stack:
    compose: list[str]
    base_url: str
    env: dict[str, str]
    dify_network: str

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


@pytest.fixture(scope="module")
def stack(
    images: Images, compose: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp_path = tmp_path_factory.mktemp("stack")
    project = "vgwtest" + secrets.token_hex(4)
    dify_network = f"{project}_dify"
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
        "DIFY_NETWORK": dify_network,
    }
    env_file = tmp_path / "stack.env"
    values["GATEWAY_ENV_FILE"] = str(env_file)  # the gateways' VGW_ variables: the same file
    env_file.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    command = [
        *compose, "-p", project, "--env-file", str(env_file),
        "-f", str(ROOT / "deploy/compose.yaml"), "-f", str(ROOT / "deploy/compose.dify.yaml"),
        "-f", str(HERE / "compose.test.yaml"),
    ]  # fmt: skip
    # Only what compose needs from this process: no stray VGW_/image variables leak in.
    env = {key: os.environ[key] for key in ("PATH", "HOME", "DOCKER_HOST") if key in os.environ}
    live = Stack(
        compose=command, base_url=f"http://127.0.0.1:{port}", env=env, dify_network=dify_network
    )
    run(["docker", "network", "create", dify_network])
    try:
        live("up", "-d", "--no-build")
        for service in ("gateway-1", "gateway-2"):
            wait_for(lambda s=service: live.health(s) == "healthy", f"{service} healthy")
        yield live
    finally:
        subprocess.run(
            [*command, "down", "-v", "--remove-orphans", "-t", "5"],
            env=env,
            capture_output=True,
            check=False,
        )
        subprocess.run(["docker", "network", "rm", dify_network], capture_output=True, check=False)


def wait_for(check: Any, what: str, rounds: int = 240) -> None:
    for _ in range(rounds):
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"never happened: {what}")


# Creates tasks on one replica directly (inside its container): that replica works on them.
CREATE_HERE = """
import httpx, json, sys
token, count = sys.argv[1], int(sys.argv[2])
ids = []
for n in range(count):
    answer = httpx.post(
        "http://127.0.0.1:8000/v1/tasks",
        json={"prompt": f"compose test, gateway-1 {n}: a paper boat on a river"},
        headers={"Authorization": "Bearer " + token},
        timeout=30,
    )
    answer.raise_for_status()
    ids.append(answer.json()["id"])
print(json.dumps(ids))
"""


PROXY_CLIENT = """
import httpx, sys
proxy, token = sys.argv[1], sys.argv[2]
with httpx.Client(proxy=proxy, headers={"Authorization": "Bearer " + token}, timeout=60) as http:
    health = http.get("http://video-gateway:8000/healthz")
    print(health.status_code)
    if health.status_code == 200:
        body = {"prompt": "from Dify", "provider": "preview", "duration_ms": 1000, "fps": 8}
        created = http.post("http://video-gateway:8000/generate-video", json=body)
        print(created.status_code, created.json().get("status"))
"""


def test_dify_reaches_the_gateway_through_a_strict_ssrf_proxy(
    stack: Stack, images: Images, tmp_path: Path, container_names: list[str]
) -> None:
    strict, allowing = tmp_path / "strict", tmp_path / "allowing"
    strict.mkdir()
    (strict / "00-nothing.conf").write_text("# no exceptions\n")
    allowing.mkdir()
    shutil.copy(ROOT / "deploy/dify/ssrf_proxy/30-video-gateway.conf", allowing)
    for alias, conf_d in (("ssrf_proxy_strict", strict), ("ssrf_proxy", allowing)):
        name = f"{stack.dify_network}-{alias}"
        container_names.append(name)
        run(
            [
                "docker", "run", "-d", "--name", name,
                "--network", stack.dify_network, "--network-alias", alias,
                "-v", f"{HERE / 'ssrf_proxy.conf'}:/etc/squid/squid.conf:ro",
                "-v", f"{conf_d}:/etc/squid/conf.d:ro",
                images.squid,
            ]
        )  # fmt: skip

    def through(proxy: str) -> list[str]:
        # The HTTP node's view: a container on Dify's network, every request via the proxy.
        done = run(
            [
                "docker", "run", "--rm", "--network", stack.dify_network,
                "--entrypoint", "python", images.gateway, "-c", PROXY_CLIENT,
                f"http://{proxy}:3128", TOKEN,
            ]
        )  # fmt: skip
        return done.stdout.split()

    wait_for(lambda: through("ssrf_proxy")[:1] == ["200"], "the proxy passes the gateway")
    assert through("ssrf_proxy") == ["200", "200", "succeeded"]
    assert through("ssrf_proxy_strict") == ["403"]


def test_a_managed_tokens_limits_hold_across_both_replicas(stack: Stack) -> None:
    """Managed tokens live in PostgreSQL and their request buckets in Redis: through nginx,
    which alternates the replicas, a burst of 3 lets 3 requests through, not 3 per replica."""
    created = run(
        [
            "docker", "exec", stack.container("gateway-1"), "python", "-m", "app",
            "tokens", "create", "--name", "limited", "--rate", "0.01", "--burst", "3",
        ]
    )  # fmt: skip
    token = created.stdout.split("shown once; store it now):", 1)[1].split()[0]
    statuses = []
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        for _ in range(6):
            answer = http.get("/v1/tasks", headers={"Authorization": f"Bearer {token}"})
            statuses.append(answer.status_code)
    assert statuses == [200, 200, 200, 429, 429, 429]


def test_tasks_survive_a_killed_gateway_and_are_paid_once(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=stack.base_url, headers=headers, timeout=90) as http:
        wait_for(lambda: http.get("/healthz").status_code == 200, "nginx passes /healthz")

        # Half through nginx (either replica), half on gateway-1 itself.
        ids = []
        for n in range(TASKS // 2):
            created = http.post(
                "/v1/tasks",
                json={"prompt": f"compose test {n}: a paper boat on a river"},
                headers={"Idempotency-Key": f"compose-{n}"},
            )
            assert created.status_code == 202, created.text
            ids.append(created.json()["id"])
        here = [stack.container("gateway-1"), "python", "-c", CREATE_HERE, TOKEN, str(TASKS // 2)]
        victims = set(json.loads(run(["docker", "exec", *here]).stdout))
        ids += sorted(victims)

        # Kill gateway-1 while its tasks are at the provider.
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
