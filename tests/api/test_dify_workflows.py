"""``/dify/workflows``: the shipped DSL files with the gateway URL filled in, nothing else."""

from __future__ import annotations

import difflib
from typing import Any

import httpx
import yaml

from app.api.routes.dify_workflows import PROJECT_DIR, with_base_url, workflow_files
from tests.conftest import LiveGateway

SHIPPED = {"dify_workflow.yml", "video_async_polling.yml", "video_chatflow.yml"}


def env_vars(text: str) -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(text)
    return {var["name"]: var for var in doc["workflow"]["environment_variables"]}


def test_lists_every_shipped_file(live_gateway: LiveGateway) -> None:
    # No token: a browser download link cannot send one, and the files hold no secret.
    response = httpx.get(f"{live_gateway.base_url}/dify/workflows")
    assert response.status_code == 200
    listed = {item["filename"]: item for item in response.json()["data"]}
    assert set(listed) == set(workflow_files()) and set(listed) >= SHIPPED
    assert listed["video_chatflow.yml"]["mode"] == "advanced-chat"
    assert listed["dify_workflow.yml"]["name"].startswith("Video Gateway")
    assert listed["dify_workflow.yml"]["takes_base_url"] is True
    assert listed["video_plugin.yml"]["takes_base_url"] is False


def test_download_sets_only_the_base_url(live_gateway: LiveGateway) -> None:
    base = "http://host.docker.internal:9000/gw"
    for filename, path in workflow_files().items():
        response = httpx.get(
            f"{live_gateway.base_url}/dify/workflows/{filename}", params={"base_url": base + "/"}
        )
        assert response.status_code == 200
        assert response.headers["content-disposition"] == f'attachment; filename="{filename}"'
        original = path.read_text(encoding="utf-8")
        if "GATEWAY_BASE_URL" not in original:  # the plugin workflow: nothing to fill in
            assert response.text == original and filename == "video_plugin.yml"
            continue
        variables = env_vars(response.text)
        assert variables["GATEWAY_BASE_URL"]["value"] == base  # trailing slash dropped
        assert variables["GATEWAY_TOKEN"]["value"] == "" and "test-token" not in response.text
        changed = [
            line
            for line in difflib.ndiff(original.splitlines(), response.text.splitlines())
            if line.startswith(("+ ", "- "))
        ]
        assert len(changed) == 2, filename  # one line out, one line in
        # Everything else parses to the same document.
        ours, theirs = yaml.safe_load(response.text), yaml.safe_load(original)
        for doc in (ours, theirs):
            for var in doc["workflow"]["environment_variables"]:
                if var["name"] == "GATEWAY_BASE_URL":
                    var["value"] = None
        assert ours == theirs, filename


def test_default_base_url_is_the_gateways(live_gateway: LiveGateway) -> None:
    text = httpx.get(f"{live_gateway.base_url}/dify/workflows/dify_workflow.yml").text
    assert env_vars(text)["GATEWAY_BASE_URL"]["value"] == live_gateway.base_url


def test_bad_base_urls_and_unknown_files_are_refused(live_gateway: LiveGateway) -> None:
    for base_url in (
        "javascript:alert(1)",
        "http://evil.example/x' y",
        "http://a.example/\nname: injected",
        "http://a.example/?q=1",
        "ftp://files.example",
    ):
        response = httpx.get(
            f"{live_gateway.base_url}/dify/workflows/dify_workflow.yml",
            params={"base_url": base_url},
        )
        assert response.status_code == 422, base_url
        assert response.json()["error"]["code"] == "validation_error"
    for name in ("nope.yml", "..%2Fconfig.ini.example", "Makefile"):
        response = httpx.get(f"{live_gateway.base_url}/dify/workflows/{name}")
        assert response.status_code == 404, name
        assert response.json()["error"]["code"] == "not_found"


def test_rewrite_handles_other_layouts() -> None:
    text = (
        "workflow:\r\n"
        "  environment_variables:\r\n"
        "  - name: GATEWAY_BASE_URL\r\n"
        "    value_type: string\r\n"
        "    value: http://old:8000\r\n"
        "  - name: OTHER\r\n"
        "    value: keep\r\n"
    )
    out = with_base_url(text, "https://gw.example")
    assert "    value: 'https://gw.example'\r\n" in out and "value: keep" in out
    assert env_vars(out.replace("\r\n", "\n"))["OTHER"]["value"] == "keep"
    assert with_base_url("app: {}\n", "https://gw.example") == "app: {}\n"  # nothing to fill


def test_the_files_are_where_the_route_looks() -> None:
    assert (PROJECT_DIR / "dify_workflow.yml").is_file()
