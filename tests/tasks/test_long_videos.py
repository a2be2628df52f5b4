"""Long videos through the whole gateway: shots as tasks of their own, joined into one video.

The preview provider makes the six-shot video (decoded and measured here); the Ark emulator,
which records every create, shows the chained path — each shot asked of Seedance with the
previous shot's last frame — and what happens when a shot fails or the video is cancelled.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from app import media
from tests.conftest import TOKEN, GatewayFactory, LiveGateway, eventually
from tests.emulators.ark import ArkState, EmulatedTask
from tests.emulators.llm import LlmEmulator
from tests.emulators.server import serve_in_thread
from tests.media.conftest import make_clip
from tests.mp4 import frame_rgb, probe
from tests.processes import GatewayProcess, running
from tests.prompts.conftest import LlmServer
from tests.providers.conftest import Emulator
from tests.tasks.conftest import ArkFactory, seedance_overrides

FPS = 8
SMALL = {"preview": {"height": 120}}
# Lengths a 8 fps preview makes exactly: 4, 6, 8, 5, 4 and 7 frames.
SIX = [500, 750, 1000, 625, 500, 875]
FLOWER = ["a seed in dark soil", "a sprout breaks through", "leaves unfold in the rain",
          "a bud forms", "the flower opens at dawn", "petals fall in the wind"]  # fmt: skip
TERMINAL = ("succeeded", "failed", "cancelled")
CUE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})$", re.M)


def ended(task: dict[str, Any]) -> bool:
    return task["status"] in TERMINAL


def seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def cues(vtt: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of each cue of a WebVTT file."""
    assert vtt.startswith("WEBVTT")
    found = []
    for block in vtt.split("\n\n")[1:]:
        lines = block.strip().splitlines()
        if not lines:
            continue
        match = CUE.match(lines[1])
        assert match, block
        times = match.groups()
        found.append((seconds(*times[:4]), seconds(*times[4:]), "\n".join(lines[2:])))
    return found


def fetch(url: str, path: Path) -> Path:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, response.text
    path.write_bytes(response.content)
    return path


# --- the six-shot video on the preview provider --------------------------------------------


def test_six_shots_make_one_video_with_subtitles_and_a_poster(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    shots = [{"prompt": p, "duration_ms": d} for p, d in zip(FLOWER, SIX, strict=True)]
    body = {"prompt": "the life of a flower", "shots": shots, "fps": FPS}
    with gateway_factory(SMALL) as gw:
        created = gw.client.post("/v1/tasks", json=body)
        assert created.status_code == 202, created.text
        task = gw.wait_task(created.json()["id"], ended)
        assert task["status"] == "succeeded", task
        listed = gw.client.get("/v1/tasks").json()["data"]
        child = gw.client.get(f"/v1/tasks/{task['shots'][2]['task_id']}").json()

        video = probe(fetch(task["video_url"], tmp_path / "long.mp4"))
        assert (video.width, video.height) == (214, 120)  # 16:9 at the preview's 120 lines
        assert video.frames == sum(round(d * FPS / 1000) for d in SIX) == 34
        assert video.codec == "h264" and video.pix_fmt == "yuv420p" and video.faststart
        assert task["params"]["duration_ms"] == 4250

        vtt = httpx.get(task["subtitles_url"], timeout=30)
        assert vtt.headers["content-type"].startswith("text/vtt")
        timed = cues(vtt.text)
        starts = [sum(SIX[:k]) / 1000 for k in range(6)]
        assert [c[2] for c in timed] == FLOWER  # one cue per shot, the shot's words
        assert [c[0] for c in timed] == starts
        assert [c[1] for c in timed] == [*starts[1:], 4.25]

        poster = Image.open(io.BytesIO(httpx.get(task["thumbnail_url"], timeout=30).content))
        assert poster.format == "JPEG" and poster.size == (214, 120)

        assert [s["index"] for s in task["shots"]] == list(range(6))
        assert [s["prompt"] for s in task["shots"]] == FLOWER
        assert [s["duration_ms"] for s in task["shots"]] == SIX
        assert {s["status"] for s in task["shots"]} == {"succeeded"}
        clip = probe(fetch(task["shots"][2]["video_url"], tmp_path / "shot3.mp4"))
        assert clip.frames == 8  # the shot's own clip, 1000 ms at 8 fps

    # The list shows the long video once; its shots are reached through it.
    assert [t["id"] for t in listed] == [task["id"]]
    assert child["parent_id"] == task["id"] and child["shot_index"] == 2
    assert child["prompt"] == FLOWER[2] and child["status"] == "succeeded"
    assert task["params"]["storyboard"]["planned_by"] == "given"
    assert task["params"]["storyboard"]["continuity"] == "independent"  # preview: no frames in


# --- the chained path on Seedance ------------------------------------------------------------


@pytest.fixture(scope="module")
def colour_clips(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Three 1 s clips whose last frames differ (a different colour each)."""
    folder = tmp_path_factory.mktemp("colours")
    return [
        make_clip(folder / f"{c}.mp4", color=c, size=(320, 240), fps="8", tone=None).read_bytes()
        for c in ("red", "green", "blue")
    ]


def job_number(state: ArkState, task: EmulatedTask) -> int:
    return list(state.tasks).index(task.id)


def frame_png(number: int) -> bytes:
    """The last frame Seedance hands back for its ``number``-th job (a colour of its own)."""
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (40 * number, 200 - 40 * number, 90)).save(out, format="PNG")
    return out.getvalue()


def last_frame_png(clip: bytes, tmp_path: Path, name: str) -> bytes:
    source = tmp_path / f"{name}.mp4"
    source.write_bytes(clip)
    out = asyncio.run(media.last_frame(source, tmp_path / f"{name}.png"))
    return out.read_bytes()


@pytest.fixture
def chained_ark(ark_server: ArkFactory, colour_clips: list[bytes]) -> Iterator[Emulator[ArkState]]:
    """Ark whose n-th job serves the n-th colour clip, and (asked with return_last_frame) a
    last frame of its own."""
    with ark_server(queued_s=0.05, running_s=0.2) as emu:
        state = emu.state
        state.video_of = lambda task: colour_clips[job_number(state, task) % len(colour_clips)]
        state.frame_of = lambda task: frame_png(job_number(state, task))
        yield emu


@pytest.mark.parametrize("frames", ["from Seedance", "by ffmpeg"])
def test_chained_shots_start_from_the_previous_shots_last_frame(
    gateway_factory: GatewayFactory,
    chained_ark: Emulator[ArkState],
    colour_clips: list[bytes],
    tmp_path: Path,
    frames: str,
) -> None:
    # Seedance hands back each job's last frame when asked; when it cannot be fetched, the
    # gateway takes it from the stored clip with ffmpeg (the route for every provider).
    chained_ark.state.frames_gone = frames == "by ffmpeg"
    body = {"prompt": "a day in a harbour town from dawn to night", "duration_ms": 30000}
    with gateway_factory(seedance_overrides(chained_ark.url)) as gw:
        created = gw.client.post("/v1/tasks", json=body).json()
        task = gw.wait_task(created["id"], ended)
        assert task["status"] == "succeeded", task
        bodies = chained_ark.state.create_bodies
        firsts = [
            [item for item in b["content"] if item.get("role") == "first_frame"] for b in bodies
        ]
        images = [httpx.get(f[0]["image_url"]["url"], timeout=30) for f in firsts[1:]]
        video = probe(fetch(task["video_url"], tmp_path / "harbour.mp4"))

    # Exactly one job per shot, none longer than Seedance's 12 s.
    assert len(bodies) == 3 and len(chained_ark.state.jobs()) == 3
    assert [b["duration"] for b in bodies] == [10, 10, 10]
    assert [bool(b.get("return_last_frame")) for b in bodies] == [True, True, False]
    # The first shot starts from nothing; each other from the previous shot's last frame,
    # served by the gateway's signed /files URL.
    assert firsts[0] == []
    assert all(len(f) == 1 for f in firsts[1:])
    assert firsts[1][0]["image_url"]["url"].startswith(f"{gw.base_url}/files/")
    for k, image in enumerate(images):
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        if frames == "from Seedance":
            assert image.content == frame_png(k) != frame_png(k + 1)
        else:
            assert image.content == last_frame_png(colour_clips[k], tmp_path, f"clip{k}")
            assert image.content != last_frame_png(colour_clips[k + 1], tmp_path, f"next{k}")
    storyboard = task["params"]["storyboard"]
    assert storyboard["continuity"] == "chain" and storyboard["planned_by"] == "split"
    assert [s["duration_ms"] for s in task["shots"]] == [10000] * 3
    assert video.frames == 24  # three 1 s clips at 8 fps: what the emulator made


def test_a_failed_shot_is_tried_once_more_then_fails_the_video(
    gateway_factory: GatewayFactory, ark_server: ArkFactory
) -> None:
    shots = [{"prompt": "calm sea"}, {"prompt": "FAIL_ME storm"}, {"prompt": "quiet dawn"}]
    body = {"prompt": "weather", "shots": shots, "continuity": "independent"}
    with (
        ark_server(queued_s=0.05, running_s=0.3) as emu,
        gateway_factory(seedance_overrides(emu.url)) as gw,
    ):
        task = gw.wait_task(gw.client.post("/v1/tasks", json=body).json()["id"], ended)
        second = gw.client.get(f"/v1/tasks/{task['shots'][1]['task_id']}").json()
    assert task["status"] == "failed"
    assert task["error"]["code"] == "provider_error"
    assert task["error"]["message"].startswith("shot 2 of 3 failed: ")
    assert task["video_url"] is None
    # Retryable (Ark's InternalServiceError): one more job, then no more.
    assert len(emu.state.jobs_for("FAIL_ME storm")) == 2
    assert second["id"].endswith("-01-1") and second["status"] == "failed"
    # The others: made once at most (cancelled when the video failed, if still queued).
    assert len(emu.state.jobs_for("calm sea")) <= 1 and len(emu.state.jobs_for("quiet dawn")) <= 1


def test_a_rejected_shot_is_never_tried_again(
    gateway_factory: GatewayFactory, ark_server: ArkFactory
) -> None:
    shots = [{"prompt": "calm sea"}, {"prompt": "BLOCKED_OUTPUT storm"}]
    with (
        ark_server(queued_s=0.05, running_s=0.2) as emu,
        gateway_factory(seedance_overrides(emu.url)) as gw,
    ):
        created = gw.client.post("/v1/tasks", json={"prompt": "weather", "shots": shots})
        task = gw.wait_task(created.json()["id"], ended)
    assert task["status"] == "failed" and task["error"]["code"] == "content_rejected"
    assert "OutputVideoSensitiveContentDetected" in task["error"]["message"]
    assert len(emu.state.jobs_for("BLOCKED_OUTPUT storm")) == 1


def test_cancelling_a_long_video_cancels_its_shots_and_their_jobs(
    gateway_factory: GatewayFactory, ark_server: ArkFactory
) -> None:
    shots = [{"prompt": f"slow shot {n}"} for n in range(3)]
    body = {"prompt": "slow", "shots": shots, "continuity": "independent"}
    with (
        ark_server(queued_s=600, running_s=1) as emu,  # queued: Ark can still cancel them
        gateway_factory(seedance_overrides(emu.url)) as gw,
    ):
        task_id = gw.client.post("/v1/tasks", json=body).json()["id"]

        def all_submitted(task: dict[str, Any]) -> bool:
            ids = [shot["task_id"] for shot in task["shots"]]
            return len(ids) == 3 and all(
                i and gw.client.get(f"/v1/tasks/{i}").json()["provider_task_id"] for i in ids
            )

        gw.wait_task(task_id, all_submitted)
        cancelled = gw.client.delete(f"/v1/tasks/{task_id}").json()
        children = [gw.client.get(f"/v1/tasks/{s['task_id']}").json() for s in cancelled["shots"]]
    assert cancelled["status"] == "cancelled"
    assert [s["status"] for s in cancelled["shots"]] == ["cancelled"] * 3
    assert [c["status"] for c in children] == ["cancelled"] * 3
    jobs = {c["provider_task_id"] for c in children}
    assert len(jobs) == 3 and set(emu.state.deletes) == jobs
    assert all(job.cancelled for job in emu.state.jobs())
    assert {c["provider_status"] for c in children} == {"cancel requested"}


def test_a_gateway_killed_mid_video_resumes_it_and_makes_no_shot_twice(
    chained_ark: Emulator[ArkState], colour_clips: list[bytes], tmp_path: Path
) -> None:
    chained_ark.state.running_s = 2.0
    settings = {
        **seedance_overrides(chained_ark.url),
        "auth": {"valid_tokens": f'["{TOKEN}"]'},
        # Hour-long leases: the restarted gateway takes over through the dead one's lock.
        "queue": {"lease_s": 3600, "takeover_check_s": 0.2},
    }
    shots = [{"prompt": f"harbour at {hour}"} for hour in ("dawn", "noon", "night")]
    with (
        running(GatewayProcess(tmp_path / "data", settings)) as (first,),
        first.client(TOKEN) as client,
    ):
        task_id = client.post("/v1/tasks", json={"prompt": "harbour", "shots": shots}).json()["id"]

        def second_shot_submitted() -> bool:
            task = client.get(f"/v1/tasks/{task_id}").json()
            shot = task["shots"][1] if len(task["shots"]) == 3 else {}
            if not shot.get("task_id"):
                return False
            return bool(client.get(f"/v1/tasks/{shot['task_id']}").json()["provider_task_id"])

        eventually(second_shot_submitted)
        first.kill()
    assert len(chained_ark.state.jobs()) == 2  # killed mid-video: the third shot not begun

    # The same port, so the frame URLs handed out before the crash still work.
    with (
        running(GatewayProcess(tmp_path / "data", settings, port=first.port)) as (second,),
        second.client(TOKEN) as client,
    ):
        for _ in range(60):
            task = client.get(f"/v1/tasks/{task_id}", params={"wait_s": 5}).json()
            if ended(task):
                break
        bodies = chained_ark.state.create_bodies
        urls = [
            next(i["image_url"]["url"] for i in b["content"] if i.get("role") == "first_frame")
            for b in bodies[1:]
        ]
        frames = [httpx.get(url, timeout=30).content for url in urls]
    assert task["status"] == "succeeded", task
    assert [len(chained_ark.state.jobs_for(s["prompt"])) for s in shots] == [1, 1, 1]
    assert [s["task_id"] for s in task["shots"]] == [f"{task_id}-{k:02d}" for k in range(3)]
    # The shot begun after the restart still starts from the shot before it.
    assert frames == [frame_png(0), frame_png(1)]


# --- /generate-video, bad input, and what every video gets -----------------------------------


def test_generate_video_answers_202_then_the_same_key_gets_the_video(
    live_gateway: LiveGateway,
) -> None:
    shots = [
        {"prompt": "一只小猫醒来", "duration_ms": 500},
        {"prompt": "小猫伸懒腰", "duration_ms": 750},
    ]
    body = {"prompt": "小猫的早晨", "shots": shots, "fps": FPS}
    headers = {"Idempotency-Key": "long-morning"}
    first = live_gateway.client.post("/generate-video", json={**body, "wait_s": 0}, headers=headers)
    assert first.status_code == 202, first.text
    assert first.json()["status_url"].endswith(f"/v1/tasks/{first.json()['task_id']}")
    done = live_gateway.client.post("/generate-video", json={**body, "wait_s": 60}, headers=headers)
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["task_id"] == first.json()["task_id"]
    assert result["duration_ms"] == 1250
    assert result["thumbnail_url"] and result["subtitles_url"]
    vtt = httpx.get(result["subtitles_url"], timeout=30).text
    assert [c[2] for c in cues(vtt)] == ["一只小猫醒来", "小猫伸懒腰"]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"shots": [{"prompt": f"s{n}"} for n in range(21)]}, "shots"),
        ({"shots": [{"prompt": "fine"}, {"prompt": "  "}]}, "shots.1.prompt"),
        ({"shots": [{"prompt": "a", "duration_ms": 12000}] * 11}, "shots"),
        ({"duration_ms": 130000}, "duration_ms"),
        ({"shots": [{"prompt": "a"}], "continuity": "chain"}, "continuity"),
        ({"burn_subtitles": True}, "burn_subtitles"),
    ],
)
def test_bad_long_videos_are_refused_naming_the_field(
    live_gateway: LiveGateway, extra: dict[str, Any], field: str
) -> None:
    response = live_gateway.client.post("/v1/tasks", json={"prompt": "a story", **extra})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert field in response.json()["error"]["message"]
    assert live_gateway.client.get("/v1/tasks").json()["data"] == []


def test_shot_prompts_are_screened_like_the_prompt(live_gateway: LiveGateway) -> None:
    shots = [{"prompt": "a quiet street"}, {"prompt": "a cocaine deal"}]
    response = live_gateway.client.post("/v1/tasks", json={"prompt": "a city", "shots": shots})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "content_rejected"
    assert "shots[1].prompt" in response.json()["error"]["message"]


def poster_of(gw: LiveGateway, task_id: str) -> str:
    """The task's thumbnail_url, which appears a moment after the video (made afterwards)."""
    found: list[str] = []

    def made() -> bool:
        url = gw.client.get(f"/v1/tasks/{task_id}").json()["thumbnail_url"]
        found[:] = [url] if url else []
        return bool(url)

    eventually(made)
    return found[0]


def test_every_video_gets_a_poster_and_on_request_a_caption(
    gateway_factory: GatewayFactory,
) -> None:
    body = {"prompt": "a lighthouse at night", "duration_ms": 1000, "fps": FPS}
    with gateway_factory(SMALL) as gw:
        plain = gw.client.post("/v1/tasks", json=body).json()
        packaged = gw.client.post(
            "/v1/tasks", json={**body, "caption": True, "platform": "douyin", "subtitles": True}
        ).json()
        plain = gw.wait_task(plain["id"], ended)
        packaged = gw.wait_task(packaged["id"], ended)
        poster = httpx.get(poster_of(gw, plain["id"]), timeout=30)
        vtt = httpx.get(packaged["subtitles_url"], timeout=30).text
    assert plain["status"] == "succeeded" and plain["shots"] is None
    image = Image.open(io.BytesIO(poster.content))
    assert poster.headers["content-type"] == "image/jpeg" and image.format == "JPEG"
    assert image.size == (214, 120)
    assert plain["caption"] is None and plain["subtitles_url"] is None
    # What was asked for comes with the video itself: the caption and the subtitles.
    assert packaged["status"] == "succeeded"
    assert packaged["hashtags"] and all(tag.startswith("#") for tag in packaged["hashtags"])
    assert packaged["caption"].endswith(" ".join(packaged["hashtags"]))
    assert cues(vtt) == [(0.0, 1.0, "a lighthouse at night")]


def test_a_video_without_a_poster_still_succeeds(
    gateway_factory: GatewayFactory, ark_server: ArkFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with ark_server(queued_s=0.05, running_s=0.1) as emu:
        emu.state.videos.data = b"these bytes are not a video"
        with gateway_factory(seedance_overrides(emu.url)) as gw:
            created = gw.client.post("/v1/tasks", json={"prompt": "undecodable"}).json()
            task = gw.wait_task(created["id"], ended)
            eventually(lambda: f"task {created['id']}: no thumbnail" in caplog.text)
            after = gw.client.get(f"/v1/tasks/{created['id']}").json()
    assert task["status"] == "succeeded" and task["video_url"]
    assert after["status"] == "succeeded" and after["thumbnail_url"] is None


# --- the LLM's storyboard, and subtitles burned in -------------------------------------------


@pytest.fixture(scope="module")
def llm_server() -> Iterator[LlmServer]:
    emulator = LlmEmulator()
    with serve_in_thread(emulator.app) as base_url:
        yield LlmServer(emulator, base_url)


def storyboard_answer(*prompts: str) -> str:
    shots = [{"prompt": p, "subtitle": f"line {n}"} for n, p in enumerate(prompts, start=1)]
    return json.dumps({"characters": "a fox", "setting": "a harbour", "style": "", "shots": shots})


def test_the_llm_writes_the_storyboard_and_its_shots_are_what_the_provider_gets(
    gateway_factory: GatewayFactory, llm_server: LlmServer, tmp_path: Path
) -> None:
    llm_server.emulator.reset()
    llm_server.emulator.reply(storyboard_answer("a fox wakes by the harbour", "the fox naps"))
    body = {"prompt": "a fox's day at the harbour", "duration_ms": 14000, "fps": 2}
    with gateway_factory({**SMALL, "llm": llm_server.settings()}) as gw:
        task = gw.wait_task(gw.client.post("/v1/tasks", json=body).json()["id"], ended)
        shots = [gw.client.get(f"/v1/tasks/{s['task_id']}").json() for s in task["shots"]]
        vtt = httpx.get(task["subtitles_url"], timeout=30).text
    assert task["status"] == "succeeded", task
    assert task["params"]["storyboard"]["planned_by"] == "llm"
    assert [s["prompt"] for s in shots] == ["a fox wakes by the harbour", "the fox naps"]
    assert [s["duration_ms"] for s in task["shots"]] == [7000, 7000]
    assert [c[2] for c in cues(vtt)] == ["line 1", "line 2"]
    [request] = llm_server.emulator.requests()  # the storyboard; the shots are not expanded
    system, user = (m["content"] for m in request.body["messages"])
    assert "storyboard" in system and "Shots: 2" in user


def test_a_storyboard_shot_that_fails_screening_fails_the_video(
    gateway_factory: GatewayFactory, llm_server: LlmServer
) -> None:
    llm_server.emulator.reset()
    llm_server.emulator.reply(storyboard_answer("a quiet harbour", "a cocaine deal on the pier"))
    body = {"prompt": "a night at the harbour", "duration_ms": 14000, "fps": 2}
    with gateway_factory({**SMALL, "llm": llm_server.settings()}) as gw:
        task = gw.wait_task(gw.client.post("/v1/tasks", json=body).json()["id"], ended)
    assert task["status"] == "failed" and task["error"]["code"] == "content_rejected"
    assert "shot 2 prompt" in task["error"]["message"]
    assert task["shots"] == []  # nothing was made


def test_burned_in_chinese_subtitles_are_drawn_into_the_picture(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    shots = [
        {"prompt": "晨雾中的港口", "duration_ms": 1000},
        {"prompt": "夜色里的灯塔", "duration_ms": 1000},
    ]
    body = {"prompt": "港口", "shots": shots, "fps": FPS, "burn_subtitles": True}
    with gateway_factory(SMALL) as gw:
        task = gw.wait_task(gw.client.post("/v1/tasks", json=body).json()["id"], ended)
        assert task["status"] == "succeeded", task
        joined = fetch(task["video_url"], tmp_path / "burned.mp4")
        plain = fetch(task["shots"][0]["video_url"], tmp_path / "plain.mp4")
    width, height = 214, 120
    burned_frame = frame_rgb(joined, 4, width, height)
    plain_frame = frame_rgb(plain, 4, width, height)

    def difference(rows: range, columns: range) -> float:
        total = 0
        for y in rows:
            for x in columns:
                at = (y * width + x) * 3
                total += sum(
                    abs(a - b)
                    for a, b in zip(
                        burned_frame[at : at + 3], plain_frame[at : at + 3], strict=True
                    )
                )
        return total / (len(rows) * len(columns) * 3)

    # The subtitle sits at the bottom centre; the top of the picture is untouched.
    assert difference(range(96, 112), range(60, 154)) > 12
    assert difference(range(0, 20), range(60, 154)) < 4
