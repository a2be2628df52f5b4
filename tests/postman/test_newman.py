"""The Postman collection, run by newman against a live gateway: every assertion must pass."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import GatewayFactory
from tests.processes import REPO

POSTMAN = REPO / "postman"
COLLECTION = POSTMAN / "video-gateway.postman_collection.json"
ENVIRONMENT = POSTMAN / "video-gateway.postman_environment.json"
NEWMAN = POSTMAN / "node_modules" / ".bin" / "newman"


def test_the_collection_covers_every_folder_with_assertions() -> None:
    collection = json.loads(COLLECTION.read_text())
    assert collection["info"]["schema"].endswith("/v2.1.0/collection.json")
    assert {v["key"] for v in collection["variable"]} >= {"baseUrl", "token"}
    folders = {folder["name"]: folder["item"] for folder in collection["item"]}
    assert list(folders) == [
        "Seed: /generate-video",
        "Tasks: /v1/tasks",
        "Prompts: /v1/prompts",
        "Batches: /v1/batches",
        "OpenAI-compatible: /v1/videos",
        "Token and admin: /v1/me, /v1/admin",
        "Errors",
    ]
    for name, requests in folders.items():
        for request in requests:
            tests = "\n".join(
                line
                for event in request["event"]
                if event["listen"] == "test"
                for line in event["script"]["exec"]
            )
            where = f"{name} / {request['name']}"
            assert "pm.response.to.have.status(" in tests, where
            assert "pm.expect(" in tests, where  # body fields, not only the status
            assert request["request"]["url"]["raw"].startswith("{{baseUrl}}"), where


def test_newman_runs_the_collection_against_a_live_gateway(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    assert NEWMAN.exists(), "newman is missing: run `npm ci --prefix postman` (make test does)"
    report = tmp_path / "newman.json"
    with gateway_factory() as gw:
        run = subprocess.run(
            [
                str(NEWMAN), "run", str(COLLECTION),
                "--environment", str(ENVIRONMENT),
                "--env-var", f"baseUrl={gw.base_url}",
                "--env-var", f"token={gw.token}",
                "--working-dir", str(POSTMAN),
                "--reporters", "cli,json",
                "--reporter-json-export", str(report),
                "--timeout-request", "60000",
                "--color", "off",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    stats = json.loads(report.read_text())["run"]["stats"]
    assert stats["assertions"]["failed"] == 0 and stats["requests"]["failed"] == 0
    assert stats["assertions"]["total"] >= 50
