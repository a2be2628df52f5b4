"""Run the shipped Dify DSL files on Dify's engine (graphon's GraphEngine) against the live gateway.

The LLM node answers with hostile text (quotes, backslashes, newlines and a JSON-breaking
``x", "aspect_ratio": "1:1``); Code nodes run as Dify's sandbox would run them; HTTP Request nodes
make real requests to the gateway on 127.0.0.1 (preview provider, local storage).
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import LiveGateway
from tests.dify import engine

# What a careless LLM might answer. Templated straight into a JSON body it would truncate the
# prompt and override aspect_ratio; built by a Code node it must reach the gateway unchanged.
HOSTILE_TEXT = (
    'A "cheerful" robot paints C:\\temp\\new_folder and writes \\n literally;\n'
    "second line, tab\there.\n"
    'x", "aspect_ratio": "1:1'
)
FAST = {"duration_ms": 1000, "fps": 8}  # 8 frames: renders in well under a second
FRAMES = 8


def _quick_retries(path: Path, tmp_path: Path) -> Path:
    """A copy whose HTTP retries pause 50 ms instead of 1 s: a 4xx is retried like any failure
    before the fail branch, and the tests need not sleep through that."""
    text = path.read_text(encoding="utf-8")
    assert "retry_interval: 1000" in text
    copy = tmp_path / f"quick_{path.name}"
    copy.write_text(text.replace("retry_interval: 1000", "retry_interval: 50"), encoding="utf-8")
    return copy


def _task(gateway: LiveGateway, task_id: str) -> dict[str, object]:
    response = gateway.client.get(f"/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    task: dict[str, object] = response.json()
    return task


def test_workflow_delivers_a_playable_video_and_the_llm_text_verbatim(
    live_gateway: LiveGateway, tmp_path: Path
) -> None:
    result = engine.run(
        engine.MAIN,
        base_url=live_gateway.base_url,
        token=live_gateway.token,
        inputs={"prompt": "小男孩踢足球", "aspect_ratio": "9:16", **FAST},
        fake_llm_text=HOSTILE_TEXT,
    )

    assert result.status == "succeeded", result.describe()
    assert result.last("end_success")["status"] == "succeeded"
    outputs = result.outputs
    assert set(outputs) >= {"video_title", "video_url", "tips", "expanded_prompt"}
    assert outputs["video_title"].startswith("视频生成结果:")
    assert outputs["expanded_prompt"] == HOSTILE_TEXT
    width, height = engine.assert_playable_mp4(
        outputs["video_url"], tmp_dir=tmp_path, frames=FRAMES
    )
    assert width < height  # 9:16 from the Start form, not the "1:1" smuggled in the LLM text
    task = _task(live_gateway, outputs["task_id"])
    assert task["prompt"] == HOSTILE_TEXT
    # The LLM saw the user's idea through {{#start.prompt#}}, not a literal reference.
    system_prompt = result.raw["llm_calls"][0][0]["content"]
    assert "小男孩踢足球" in system_prompt
    assert "{{#" not in system_prompt


def test_workflow_gateway_error_takes_the_fail_branch_with_a_readable_message(
    live_gateway: LiveGateway, tmp_path: Path
) -> None:
    result = engine.run(
        _quick_retries(engine.MAIN, tmp_path),
        base_url=live_gateway.base_url,
        token=live_gateway.token,
        inputs={"prompt": "a cat", "duration_ms": -5, "fps": 8},  # gateway: 422
        fake_llm_text="A cat on a sofa.",
    )

    assert result.status == "partial-succeeded", result.describe()
    call = result.last("call_gateway")
    assert call["status"] == "exception"
    assert call["edge_source_handle"] == "fail-branch"
    assert len(result.ran("call_gateway")) == 4  # three retries, then the fail branch
    assert not result.ran("parse_response")
    message = result.outputs["message"]
    assert "HTTP 422" in message
    assert "duration_ms" in message


def test_workflow_tells_the_user_to_poll_when_the_gateway_answers_202(
    live_gateway: LiveGateway, tmp_path: Path
) -> None:
    # Same file, but the gateway may not wait at all: it answers 202 with the task.
    no_wait = tmp_path / "no_wait.yml"
    text = engine.MAIN.read_text(encoding="utf-8")
    assert "WAIT_S = 240" in text
    no_wait.write_text(text.replace("WAIT_S = 240", "WAIT_S = 0"), encoding="utf-8")

    result = engine.run(
        no_wait,
        base_url=live_gateway.base_url,
        token=live_gateway.token,
        inputs={"prompt": "a cat", **FAST},
        fake_llm_text="A cat on a sofa.",
    )

    assert result.status == "succeeded", result.describe()
    assert result.last("call_gateway")["outputs"]["status_code"] == 202
    assert result.last("route_outcome")["edge_source_handle"] == "pending"
    task_id = result.outputs["task_id"]
    assert task_id
    assert task_id in result.outputs["message"]
    assert "video_async_polling.yml" in result.outputs["message"]
    assert _task(live_gateway, task_id)["prompt"] == "A cat on a sofa."


def test_gateway_expands_variant_runs_without_an_llm_node(
    live_gateway: LiveGateway, tmp_path: Path
) -> None:
    result = engine.run(
        engine.GATEWAY_EXPANDS,
        base_url=live_gateway.base_url,
        token=live_gateway.token,
        inputs={"prompt": 'a "red" kite\\over the sea', **FAST},
    )

    assert result.status == "succeeded", result.describe()
    assert result.raw["llm_calls"] == []
    assert result.outputs["expanded_prompt"]
    engine.assert_playable_mp4(result.outputs["video_url"], tmp_dir=tmp_path, frames=FRAMES)
    task = _task(live_gateway, result.outputs["task_id"])
    assert task["prompt"] == 'a "red" kite\\over the sea'
    assert '"expand_prompt": true' in result.last("call_gateway")["request"]


def test_polling_variant_loops_until_the_task_is_done(
    live_gateway: LiveGateway, tmp_path: Path
) -> None:
    result = engine.run(
        engine.POLLING,
        base_url=live_gateway.base_url,
        token=live_gateway.token,
        inputs={"prompt": "a cat", **FAST},
        fake_llm_text=HOSTILE_TEXT,
    )

    assert result.status == "succeeded", result.describe()
    assert result.last("submit_task")["outputs"]["status_code"] == 202
    polls = result.ran("poll_task")
    assert polls and all(poll["in_loop_id"] == "poll_loop" for poll in polls)
    assert result.raw["loop_rounds"]["poll_loop"] == len(polls)
    assert result.last("update_state")["status"] == "succeeded"
    assert result.last("route_outcome")["edge_source_handle"] == "succeeded"
    engine.assert_playable_mp4(result.outputs["video_url"], tmp_dir=tmp_path, frames=FRAMES)
    assert _task(live_gateway, result.outputs["task_id"])["prompt"] == HOSTILE_TEXT


def test_polling_variant_keeps_polling_while_the_task_runs(
    live_gateway: LiveGateway, tmp_path: Path
) -> None:
    # With wait_s=0.1 each poll answers before the render ends: the loop has to go round.
    eager = tmp_path / "eager_polling.yml"
    text = engine.POLLING.read_text(encoding="utf-8")
    assert "params: wait_s:25" in text
    eager.write_text(text.replace("params: wait_s:25", "params: wait_s:0.1"), encoding="utf-8")

    result = engine.run(
        eager,
        base_url=live_gateway.base_url,
        token=live_gateway.token,
        inputs={"prompt": "a slow cat", "duration_ms": 4000, "fps": 24},  # 96 frames
        fake_llm_text="A slow cat.",
    )

    assert result.status == "succeeded", result.describe()
    assert result.raw["loop_rounds"]["poll_loop"] >= 2, result.describe()
    statuses = [poll["outputs"]["status"] for poll in result.ran("parse_poll")]
    assert statuses[-1] == "succeeded"
    assert set(statuses[:-1]) <= {"queued", "running"}


def test_polling_variant_stops_when_the_task_cannot_be_polled(
    live_gateway: LiveGateway, tmp_path: Path
) -> None:
    # Poll a URL the gateway answers 404: the loop must end with a message, not spin 40 rounds.
    broken = tmp_path / "broken_poll.yml"
    text = engine.POLLING.read_text(encoding="utf-8")
    poll_url = "/v1/tasks/{{#parse_submit.task_id#}}'"
    assert poll_url in text
    gone = text.replace(poll_url, "/v1/tasks/{{#parse_submit.task_id#}}_gone'")
    broken.write_text(gone, encoding="utf-8")

    result = engine.run(
        _quick_retries(broken, tmp_path),
        base_url=live_gateway.base_url,
        token=live_gateway.token,
        inputs={"prompt": "a cat", **FAST},
        fake_llm_text="A cat.",
    )

    assert result.status == "partial-succeeded", result.describe()
    assert result.raw["loop_rounds"]["poll_loop"] == 1
    assert result.last("route_outcome")["edge_source_handle"] == "false"
    assert "404" in result.outputs["message"]


def test_polling_variant_reports_a_rejected_token(
    live_gateway: LiveGateway, tmp_path: Path
) -> None:
    result = engine.run(
        _quick_retries(engine.POLLING, tmp_path),
        base_url=live_gateway.base_url,
        token="not-a-valid-token",
        inputs={"prompt": "a cat", **FAST},
        fake_llm_text="A cat.",
    )

    assert result.status == "partial-succeeded", result.describe()
    assert result.last("submit_task")["edge_source_handle"] == "fail-branch"
    assert not result.ran("poll_loop")
    assert "HTTP 403" in result.outputs["message"]
    assert "GATEWAY_TOKEN" in result.outputs["message"]


def test_chatflow_answers_in_the_seed_style(live_gateway: LiveGateway, tmp_path: Path) -> None:
    result = engine.run(
        engine.CHATFLOW,
        base_url=live_gateway.base_url,
        token=live_gateway.token,
        inputs=FAST,
        query="小男孩踢足球",
        fake_llm_text=HOSTILE_TEXT,
    )

    assert result.status == "succeeded", result.describe()
    answer = result.raw["answer"]
    lines = answer.splitlines()
    assert lines[0] == "🎉 视频生成成功!"
    assert lines[1].startswith("标题:视频生成结果:")
    assert lines[2].startswith("访问链接:http")
    assert "请及时保存" in answer
    video_url = lines[2].removeprefix("访问链接:")
    engine.assert_playable_mp4(video_url, tmp_dir=tmp_path, frames=FRAMES)
    assert "小男孩踢足球" in result.raw["llm_calls"][0][0]["content"]
