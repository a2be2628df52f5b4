"""The Dify plugin (``integrations/dify-plugin``): its package, its tools against the live gateway,
and the workflow that uses its tool node, run on Dify's engine.

The plugin runs as Dify's plugin daemon runs a local plugin: unpacked from the ``.difypkg`` that
``make dify-plugin`` builds, started in its own environment (``.venv-plugin``: the dify_plugin
SDK, as the package's requirements.txt pins it) and driven over the SDK's stdio protocol
(``tests/dify/plugin_daemon.py``). Everything on the plugin's side of that pipe is the SDK's and
the plugin's own code.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import io
import json
import shutil
import subprocess
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from PIL import Image

from app.providers.base import Capabilities
from tests.conftest import GatewayFactory, LiveGateway, eventually
from tests.dify import engine
from tests.dify.plugin_daemon import (
    PLUGIN_DIR,
    PLUGIN_PYTHON,
    SETUP_HINT,
    PluginInvokeError,
    PluginProcess,
)
from tests.emulators.server import free_port, serve_handler
from tests.fakes import ControlledProvider
from tests.mp4 import probe

PACKAGER = engine.ROOT / "scripts" / "package_dify_plugin.py"
FAST = {"duration": 1}  # the preview renders one second (24 frames) quickly


def _package(plugin_dir: Path, out_dir: Path) -> subprocess.CompletedProcess[str]:
    if not PLUGIN_PYTHON.exists():
        raise AssertionError(SETUP_HINT)
    return subprocess.run(
        [str(PLUGIN_PYTHON), str(PACKAGER), "--plugin", str(plugin_dir), "--out", str(out_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``make dify-plugin``'s result: the package, its identifier, and where it was unpacked."""
    out = tmp_path_factory.mktemp("dist")
    built = _package(PLUGIN_DIR, out)
    assert built.returncode == 0, built.stderr
    result: dict[str, Any] = json.loads(built.stdout)
    unpacked = tmp_path_factory.mktemp("installed")
    with zipfile.ZipFile(result["package"]) as archive:
        archive.extractall(unpacked)
    result["unpacked"] = unpacked
    return result


@pytest.fixture(scope="module")
def plugin(package: dict[str, Any]) -> Iterator[PluginProcess]:
    """The installed plugin, running (one process for the module, as the daemon keeps it)."""
    with PluginProcess(plugin_dir=package["unpacked"]) as process:
        yield process


def _credentials(gateway: LiveGateway, token: str | None = None) -> dict[str, str]:
    return {"base_url": gateway.base_url, "token": token or gateway.token}


def _variables(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        m["message"]["variable_name"]: m["message"]["variable_value"]
        for m in messages
        if m["type"] == "variable"
    }


def _of_type(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m["message"] for m in messages if m["type"] == kind]


# --- the package ------------------------------------------------------------------------------


def test_package_contains_what_the_manifest_names(package: dict[str, Any]) -> None:
    with zipfile.ZipFile(package["package"]) as archive:
        names = set(archive.namelist())

        def load(name: str) -> dict[str, Any]:
            assert name in names, f"{name} is named but not packaged"
            loaded: dict[str, Any] = yaml.safe_load(archive.read(name))
            return loaded

        manifest = load("manifest.yaml")
        named = {
            f"_assets/{manifest['icon']}",
            manifest["privacy"],
            f"{manifest['meta']['runner']['entrypoint']}.py",
            "README.md",
            "requirements.txt",
        }
        for declaration in manifest["plugins"]["tools"]:
            provider = load(declaration)
            named |= {
                f"_assets/{provider['identity']['icon']}",
                provider["extra"]["python"]["source"],
            }
            for tool_file in provider["tools"]:
                named.add(tool_file)
                tool = load(tool_file)
                named.add(tool["extra"]["python"]["source"])
                assert tool["identity"]["name"] in {"generate_video", "get_video", "expand_prompt"}
        requirements = archive.read("requirements.txt").decode()

    assert named <= names, named - names
    assert not [n for n in names if "__pycache__" in n or n.startswith(".")]
    assert "dify_plugin==0.7.4" in requirements.splitlines()
    author, name, version = manifest["author"], manifest["name"], manifest["version"]
    assert package["identifier"].startswith(f"{author}/{name}:{version}@")


def test_the_workflow_pins_the_plugin_it_was_built_for(package: dict[str, Any]) -> None:
    """Dify matches a DSL's plugin dependency by identifier (its checksum covers every file)."""
    doc = yaml.safe_load(engine.PLUGIN_WORKFLOW.read_text(encoding="utf-8"))
    pinned = {d["value"]["plugin_unique_identifier"] for d in doc["dependencies"]}
    nodes = doc["workflow"]["graph"]["nodes"]
    used = {n["data"]["plugin_unique_identifier"] for n in nodes if n["data"]["type"] == "tool"}

    assert pinned == used == {package["identifier"]}, (
        "the plugin changed: put the identifier `make dify-plugin` prints into "
        "dify/video_plugin.yml"
    )


BREAKAGES: dict[str, tuple[str, Callable[[str], str], str]] = {
    "unknown_parameter_type": (
        "tools/get_video.yaml",
        lambda text: text.replace("type: number", "type: integer", 1),
        "tools/get_video.yaml",
    ),
    "label_without_chinese": (
        "tools/expand_prompt.yaml",
        lambda text: text.replace("      zh_Hans: 创意\n", "", 1),
        "has no zh_Hans",
    ),
    "missing_icon": ("_assets/icon.svg", lambda text: "", "_assets/icon.svg"),
    "tool_class_missing": (
        "tools/get_video.py",
        lambda text: text.replace("class GetVideoTool(Tool):", "class GetVideoTool:"),
        "no single Tool subclass",
    ),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_the_packager_refuses_a_broken_plugin(breakage: str, tmp_path: Path) -> None:
    name, change, finding = BREAKAGES[breakage]
    copy = tmp_path / "plugin"
    shutil.copytree(PLUGIN_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / name
    changed = change(target.read_text(encoding="utf-8"))
    if changed:
        target.write_text(changed, encoding="utf-8")
    else:
        target.unlink()

    built = _package(copy, tmp_path / "out")

    assert built.returncode == 1, built.stdout
    assert finding in built.stderr, built.stderr
    assert not list((tmp_path / "out").glob("*.difypkg"))


# --- the tools, through the SDK, against the live gateway ----------------------------------------


def test_credentials_are_validated_by_calling_the_gateway(
    live_gateway: LiveGateway, plugin: PluginProcess
) -> None:
    assert plugin.validate_credentials(_credentials(live_gateway)) == {"result": True}

    with pytest.raises(PluginInvokeError) as wrong:
        plugin.validate_credentials(_credentials(live_gateway, "not-a-known-token"))
    assert wrong.value.error_type == "ToolProviderCredentialValidationError"
    assert "HTTP 403 forbidden" in wrong.value.message
    assert "not-a-known-token" not in wrong.value.message

    nowhere = {"base_url": f"http://127.0.0.1:{free_port()}", "token": live_gateway.token}
    with pytest.raises(PluginInvokeError) as unreachable:
        plugin.validate_credentials(nowhere)
    assert "cannot reach the gateway" in unreachable.value.message


def _named(url: str) -> str:
    """The file a signed link names (its signature and expiry depend on when it was made)."""
    return urlsplit(url).path


def test_generate_video_returns_the_hosted_video(
    live_gateway: LiveGateway, plugin: PluginProcess, tmp_path: Path
) -> None:
    messages = plugin.invoke_tool(
        "generate_video",
        {"prompt": "a paper boat on a pond", "aspect_ratio": "9:16", **FAST},
        _credentials(live_gateway),
    )

    variables = _variables(messages)
    assert variables["status"] == "succeeded"
    [as_json] = _of_type(messages, "json")
    assert as_json["json_object"]["video_url"] == variables["video_url"]
    assert [link["text"] for link in _of_type(messages, "link")] == [variables["video_url"]]
    assert variables["video_url"] in _of_type(messages, "text")[-1]["text"]
    video = live_gateway.client.get(variables["video_url"])
    assert video.status_code == 200
    (tmp_path / "video.mp4").write_bytes(video.content)
    info = probe(tmp_path / "video.mp4")
    assert (info.codec, info.frames) == ("h264", 24)
    assert info.width < info.height
    task = live_gateway.wait_task(variables["task_id"], lambda t: t["thumbnail_url"] is not None)
    assert task["prompt"] == "a paper boat on a pond"
    # The poster is made just after the video is published; the tool waits a few seconds for
    # it (on a loaded machine it may answer before it exists: then empty, never another's).
    # Links are compared by the file they name: each is signed when it is read.
    assert _named(variables["thumbnail_url"]) in {_named(task["thumbnail_url"]), ""}
    # Once the gateway has it, the tools pass it on.
    checked = _variables(
        plugin.invoke_tool(
            "get_video", {"task_id": task["id"], "wait_s": 0}, _credentials(live_gateway)
        )
    )
    assert _named(checked["thumbnail_url"]) == _named(task["thumbnail_url"])
    poster = live_gateway.client.get(checked["thumbnail_url"])
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"


def test_a_video_past_max_wait_comes_back_as_a_task_to_check(
    live_gateway: LiveGateway, plugin: PluginProcess
) -> None:
    started = _variables(
        plugin.invoke_tool(
            "generate_video",
            {"prompt": "a slow sunrise", "max_wait": 0, **FAST},
            _credentials(live_gateway),
        )
    )
    assert started["status"] in {"queued", "running"}
    assert started["video_url"] == ""

    checked = plugin.invoke_tool(
        "get_video", {"task_id": started["task_id"], "wait_s": 30}, _credentials(live_gateway)
    )

    done = _variables(checked)
    assert (done["task_id"], done["status"]) == (started["task_id"], "succeeded")
    assert done["video_url"].startswith(live_gateway.base_url)


def test_a_refused_request_fails_the_tool_with_the_gateways_reason(
    live_gateway: LiveGateway, plugin: PluginProcess
) -> None:
    with pytest.raises(PluginInvokeError) as refused:
        plugin.invoke_tool(
            "generate_video",
            {"prompt": "a cat", "style": "no-such-style"},
            _credentials(live_gateway),
        )
    with pytest.raises(PluginInvokeError) as bad_id:
        plugin.invoke_tool("get_video", {"task_id": "../v1/tasks"}, _credentials(live_gateway))

    assert "HTTP 422 validation_error" in refused.value.message
    assert "no-such-style" in refused.value.message
    assert "is not a task id" in bad_id.value.message
    assert live_gateway.client.get("/v1/tasks").json()["data"] == []


def test_expand_prompt_answers_what_the_http_endpoint_does(
    live_gateway: LiveGateway, plugin: PluginProcess
) -> None:
    args = {"prompt": "小猫在窗台上晒太阳", "style": "cinematic", "platform": "douyin"}

    messages = plugin.invoke_tool("expand_prompt", args, _credentials(live_gateway))

    expected = live_gateway.client.post("/v1/prompts/expand", json=args).json()
    assert _of_type(messages, "json")[0]["json_object"] == expected
    assert _variables(messages)["expanded_prompt"] == expected["expanded_prompt"]


@contextlib.contextmanager
def _serve_file(data: bytes) -> Iterator[str]:
    """Dify's file server, as far as the plugin sees it: a URL that answers the file."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    with serve_handler(Handler) as address:
        yield f"http://{address}/files/frame.png"


def test_a_first_frame_image_reaches_the_provider_as_a_data_url(
    gateway_factory: GatewayFactory, plugin: PluginProcess
) -> None:
    provider = ControlledProvider("imaging")
    provider.capabilities = Capabilities(image_input=True, max_concurrency=10)
    image = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(image, format="PNG")
    with (
        gateway_factory(extra_providers={"imaging": provider}) as gateway,
        _serve_file(image.getvalue()) as url,
    ):
        dify_file = {
            "dify_model_identity": "__dify__file__",
            "url": url,
            "mime_type": "image/png",
            "type": "image",
            "filename": "frame.png",
        }
        started = _variables(
            plugin.invoke_tool(
                "generate_video",
                {
                    "prompt": "the red square grows",
                    "image": dify_file,
                    "provider": "imaging",
                    "max_wait": 0,
                },
                _credentials(gateway),
            )
        )
        assert started["task_id"]
        eventually(lambda: bool(provider.submits))
        provider.release()

    sent = provider.submits[0].image_url or ""
    assert sent.startswith("data:image/png;base64,")
    assert base64.b64decode(sent.split(",", 1)[1]) == image.getvalue()


#: Headers about one connection, which a front does not pass on.
HOP_HEADERS = {"host", "content-length", "connection", "keep-alive", "transfer-encoding"}


@contextlib.contextmanager
def _front_that_loses(
    target: str, *, creates: int = 0, reads: int = 0
) -> Iterator[tuple[str, list[str | None]]]:
    """A front for the gateway (a load balancer, a proxy) that passes every request on and every
    answer back, except the answers of the first ``creates`` creates (``POST /v1/tasks``) and the
    first ``reads`` task reads (``GET /v1/tasks/{id}``): those it cuts off after the gateway has
    handled the request. Yields its URL and, for each create it passed on, the
    ``Idempotency-Key`` it carried."""
    keys: list[str | None] = []
    cut = {"POST": creates, "GET": reads}
    upstream = httpx.Client(base_url=target, timeout=90)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            answer = upstream.request(self.command, self.path, headers=headers, content=body)
            create = self.command == "POST" and self.path == "/v1/tasks"
            read = self.command == "GET" and self.path.startswith("/v1/tasks/")
            if create:
                keys.append(self.headers.get("Idempotency-Key"))
            if (create or read) and cut[self.command] > 0:
                cut[self.command] -= 1
                self.close_connection = True  # the gateway answered; the caller never hears
                return
            self.send_response(answer.status_code)
            for name, value in answer.headers.items():
                if name.lower() not in HOP_HEADERS:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = _forward

        def log_message(self, *args: object) -> None:
            pass

    with upstream, serve_handler(Handler) as address:
        yield f"http://{address}", keys


def test_a_create_whose_answer_is_lost_is_sent_again_and_paid_once(
    gateway_factory: GatewayFactory, plugin: PluginProcess
) -> None:
    provider = ControlledProvider("paid")
    with (
        gateway_factory(extra_providers={"paid": provider}) as gateway,
        _front_that_loses(gateway.base_url, creates=2) as (front, keys),
    ):
        started = _variables(
            plugin.invoke_tool(
                "generate_video",
                {"prompt": "a kite over the dunes", "provider": "paid", "max_wait": 0},
                {"base_url": front, "token": gateway.token},
            )
        )
        eventually(lambda: bool(provider.submits))
        provider.release()
        done = gateway.wait_task(started["task_id"], lambda t: t["status"] == "succeeded")
        listed = gateway.client.get("/v1/tasks").json()["data"]

    assert len(keys) == 3 and keys[0] and len(set(keys)) == 1  # sent thrice, one key
    assert [t["id"] for t in listed] == [started["task_id"]] == [done["id"]]
    assert len(provider.submits) == 1


def test_a_dropped_poll_does_not_fail_a_video_on_its_way(
    live_gateway: LiveGateway, plugin: PluginProcess
) -> None:
    with _front_that_loses(live_gateway.base_url, reads=2) as (front, keys):
        done = _variables(
            plugin.invoke_tool(
                "generate_video",
                {"prompt": "a lantern drifting up", "max_wait": 60, **FAST},
                {"base_url": front, "token": live_gateway.token},
            )
        )

    assert done["status"] == "succeeded" and done["video_url"]
    assert len(keys) == 1
    assert [t["id"] for t in live_gateway.client.get("/v1/tasks").json()["data"]] == [
        done["task_id"]
    ]


def test_a_node_retried_with_the_run_id_as_key_gets_the_task_it_started(
    gateway_factory: GatewayFactory, plugin: PluginProcess
) -> None:
    provider = ControlledProvider("paid")
    args = {"prompt": "rain on a tin roof", "provider": "paid", "max_wait": 0}
    run_key = {"idempotency_key": "0b5d3c1e-run-of-the-workflow"}
    with (
        gateway_factory(extra_providers={"paid": provider}) as gateway,
        _front_that_loses(gateway.base_url) as (front, keys),
    ):
        credentials = {"base_url": front, "token": gateway.token}
        first = _variables(plugin.invoke_tool("generate_video", {**args, **run_key}, credentials))
        retried = _variables(plugin.invoke_tool("generate_video", {**args, **run_key}, credentials))
        with pytest.raises(PluginInvokeError) as reused:
            plugin.invoke_tool(
                "generate_video", {**args, **run_key, "prompt": "another idea"}, credentials
            )
        with pytest.raises(PluginInvokeError) as refused:
            plugin.invoke_tool("generate_video", {**args, "style": "no-such-style"}, credentials)
        eventually(lambda: bool(provider.submits))
        provider.release()
        gateway.wait_task(first["task_id"], lambda t: t["status"] == "succeeded")

    assert retried["task_id"] == first["task_id"]
    assert len(provider.submits) == 1
    assert "HTTP 409 conflict" in reused.value.message
    assert "HTTP 422 validation_error" in refused.value.message
    # The run's key three times, then one fresh key for the refused create, sent once.
    assert keys[:3] == [run_key["idempotency_key"]] * 3
    assert len(keys) == 4 and keys[3] and keys[3].startswith("dify-plugin-")


# --- the workflow on Dify's engine ----------------------------------------------------------------


def test_the_plugin_workflow_passes_graphon_validation(tmp_path: Path) -> None:
    text = engine.PLUGIN_WORKFLOW.read_text(encoding="utf-8")
    pinned = "plugin_unique_identifier: dify-video-gateway/video_gateway:"
    traps = {
        "unknown_tool": (
            text.replace("tool_name: generate_video", "tool_name: make_video"),
            "the plugin declares no tool 'make_video'",
        ),
        "form_parameter_as_input": (
            text.replace("          duration:\n", "          max_wait:\n"),
            "tool_parameters.max_wait is not an llm-form parameter",
        ),
        "undeclared_output": (
            text.replace("- generate\n          - thumbnail_url", "- generate\n          - poster"),
            "has no output 'poster'",
        ),
        "no_dependency": (
            text.replace(pinned, "plugin_unique_identifier: someone/else:", 1),
            "no entry in dependencies provides",
        ),
    }
    paths = []
    for name, (broken, _) in traps.items():
        assert broken != text, name
        paths.append(tmp_path / f"{name}.yml")
        paths[-1].write_text(broken, encoding="utf-8")

    report = engine.validate(engine.PLUGIN_WORKFLOW, *paths)

    assert report[str(engine.PLUGIN_WORKFLOW)] == {"ok": True, "problems": []}
    for path, (name, (_, finding)) in zip(paths, traps.items(), strict=True):
        item = report[str(path)]
        assert not item["ok"], name
        assert any(finding in problem for problem in item["problems"]), (name, item["problems"])


def test_the_plugin_workflow_delivers_a_playable_video(
    live_gateway: LiveGateway, package: dict[str, Any], tmp_path: Path
) -> None:
    with _front_that_loses(live_gateway.base_url) as (front, keys):
        result = engine.run(
            engine.PLUGIN_WORKFLOW,
            base_url=front,
            token=live_gateway.token,
            inputs={"prompt": "小男孩踢足球", "aspect_ratio": "9:16", **FAST},
            plugin_dir=package["unpacked"],
        )

    assert result.status == "succeeded", result.describe()
    [key] = keys
    assert key is not None and str(uuid.UUID(key)) == key  # the run's id, sys.workflow_run_id
    assert result.last("generate")["node_type"] == "tool"
    assert result.last("route_outcome")["edge_source_handle"] == "succeeded"
    outputs = result.outputs
    width, height = engine.assert_playable_mp4(outputs["video_url"], tmp_dir=tmp_path, frames=24)
    assert width < height
    task = live_gateway.client.get(f"/v1/tasks/{outputs['task_id']}").json()
    assert task["prompt"] == "小男孩踢足球"


def test_the_plugin_workflow_hands_back_the_task_when_the_video_takes_longer(
    live_gateway: LiveGateway, package: dict[str, Any], tmp_path: Path
) -> None:
    text = engine.PLUGIN_WORKFLOW.read_text(encoding="utf-8")
    assert "value: 120" in text
    no_wait = tmp_path / "no_wait.yml"
    no_wait.write_text(text.replace("value: 120", "value: 0"), encoding="utf-8")

    result = engine.run(
        no_wait,
        base_url=live_gateway.base_url,
        token=live_gateway.token,
        inputs={"prompt": "a cat", **FAST},
        plugin_dir=package["unpacked"],
    )

    assert result.status == "succeeded", result.describe()
    assert result.last("route_outcome")["edge_source_handle"] == "false"
    outputs = result.outputs
    assert outputs["status"] in {"queued", "running"}
    assert outputs["task_id"] in outputs["message"]
    assert "Get video" in outputs["message"]


def test_the_plugin_workflow_takes_the_fail_branch_with_the_gateways_reason(
    live_gateway: LiveGateway, package: dict[str, Any]
) -> None:
    result = engine.run(
        engine.PLUGIN_WORKFLOW,
        base_url=live_gateway.base_url,
        token=live_gateway.token,
        inputs={"prompt": "a cat", "duration": 999},  # the gateway takes at most 600 s
        plugin_dir=package["unpacked"],
    )

    assert result.status == "partial-succeeded", result.describe()
    generate = result.last("generate")
    assert (generate["status"], generate["edge_source_handle"]) == ("exception", "fail-branch")
    assert "HTTP 422 validation_error" in result.outputs["message"]
    assert "duration_ms" in result.outputs["message"]
