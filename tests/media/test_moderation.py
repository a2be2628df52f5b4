"""Output screening: sampled frames go to the moderation endpoint (the LLM emulator, over real
HTTP) before a CogVideoX or preview video is published; a flagged video is never stored."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.errors import ContentRejectedError, UnavailableError
from app.media.files import FileStream, store_file
from app.media.moderation import OutputScreen
from app.prompts.screening import ModerationClient
from app.storage.local import LocalStorage
from tests.conftest import GatewayFactory
from tests.emulators.llm import API_KEY, LlmEmulator, decode_data_url, mostly_red
from tests.emulators.server import serve_in_thread
from tests.media.conftest import ClipMaker

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[tuple[LlmEmulator, str]]:
    emulator = LlmEmulator()
    with serve_in_thread(emulator.app) as base_url:
        yield emulator, base_url


@pytest.fixture
def moderation(emulator_url: tuple[LlmEmulator, str]) -> Iterator[LlmEmulator]:
    emulator, _ = emulator_url
    emulator.reset()
    emulator.image_flagger = mostly_red
    yield emulator
    emulator.reset()
    emulator.image_flagger = mostly_red


Client = Callable[..., ModerationClient]


@pytest.fixture
async def client(emulator_url: tuple[LlmEmulator, str]) -> AsyncIterator[Client]:
    """``client(fail_open=False)``: a ModerationClient on the emulator, closed after."""
    made: list[ModerationClient] = []

    def build(*, fail_open: bool = False) -> ModerationClient:
        made.append(
            ModerationClient(
                emulator_url[1] + "/v1",
                api_key=API_KEY,
                model=None,
                timeout_s=5,
                fail_open=fail_open,
            )
        )
        return made[-1]

    yield build
    for each in made:
        await each.aclose()


def storage(root: Path) -> LocalStorage:
    return LocalStorage(root, base_url="http://127.0.0.1:9", signing_key=b"k" * 32)


async def test_a_flagged_frame_rejects_the_video(
    moderation: LlmEmulator, client: Client, clip_maker: ClipMaker
) -> None:
    screen = OutputScreen(client(), frames=3)
    red = clip_maker("mod-red", color="red", size=(640, 360), seconds=1.0, tone=None)
    with pytest.raises(ContentRejectedError, match=r"video was rejected .*sexual"):
        await screen.screen_video(red)

    requests = moderation.requests("moderations")
    assert len(requests) == 3 and all(r.status == 200 for r in requests)
    for request in requests:
        [part] = request.body["input"]  # one image per request, as the endpoint wants
        assert part["type"] == "image_url"
        image = decode_data_url(part["image_url"]["url"])
        assert image is not None and image.format == "JPEG" and image.size == (512, 288)


async def test_clean_frames_pass(
    moderation: LlmEmulator, client: Client, clip_maker: ClipMaker
) -> None:
    screen = OutputScreen(client(), frames=4)
    await screen.screen_video(clip_maker("mod-blue", color="blue", seconds=1.0, tone=None))
    assert len(moderation.requests("moderations")) == 4


async def test_a_failing_endpoint_refuses_unless_fail_open(
    moderation: LlmEmulator, client: Client, clip_maker: ClipMaker
) -> None:
    blue = clip_maker("mod-blue", color="blue", seconds=1.0, tone=None)
    moderation.script(*[_fail()] * 2)
    with pytest.raises(UnavailableError, match="HTTP 500"):
        await OutputScreen(client(), frames=1).screen_video(blue)
    moderation.script(_fail())
    await OutputScreen(client(fail_open=True), frames=1).screen_video(blue)


def _fail() -> object:
    from tests.emulators.llm import Reply

    return Reply(status=500, op="moderations")


async def test_put_screened_stores_only_what_passed(
    moderation: LlmEmulator, client: Client, clip_maker: ClipMaker, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    screen = OutputScreen(client(), frames=2, work_dir=work)
    store = storage(tmp_path / "files")
    blue = clip_maker("mod-blue", color="blue", seconds=1.0, tone=None)
    stored = await screen.put_screened(store, "videos/ok.mp4", FileStream(blue))
    assert stored.size == blue.stat().st_size and await store.exists("videos/ok.mp4")

    red = clip_maker("mod-red", color="red", size=(640, 360), seconds=1.0, tone=None)
    with pytest.raises(ContentRejectedError):
        await screen.put_screened(store, "videos/bad.mp4", FileStream(red))
    assert not await store.exists("videos/bad.mp4")
    assert list(work.iterdir()) == []  # the spooled copy is gone too


async def test_store_file_streams_a_result(clip_maker: ClipMaker, tmp_path: Path) -> None:
    clip = clip_maker("mod-blue", color="blue", seconds=1.0, tone=None)
    store = storage(tmp_path / "files")
    stored = await store_file(store, "videos/x.mp4", clip)
    assert stored.content_type == "video/mp4" and stored.size == clip.stat().st_size
    url = await store.url("videos/x.mp4", expires_s=60)
    assert "sig=" in url


def test_the_gateway_rejects_a_flagged_preview_and_keeps_nothing(
    gateway_factory: GatewayFactory,
    moderation: LlmEmulator,
    emulator_url: tuple[LlmEmulator, str],
) -> None:
    moderation.image_flagger = lambda image: ["violence"]  # every frame is "bad"
    overrides = {
        "prompts": {
            "moderation_url": emulator_url[1] + "/v1",
            "moderation_api_key": API_KEY,
            "moderate_output": "true",
            "moderate_output_frames": "2",
        }
    }
    with gateway_factory(overrides) as gateway:
        created = gateway.client.post(
            "/v1/tasks", json={"prompt": "a quiet lake", "duration_ms": 500, "fps": 8}
        )
        assert created.status_code == 202
        task = gateway.wait_task(created.json()["id"], lambda t: t["status"] == "failed")
        assert task["error"]["code"] == "content_rejected"
        assert "violence" in task["error"]["message"] and task["video_url"] is None
        files = gateway.data_dir / "files"
        assert not files.exists() or not [p for p in files.rglob("*") if p.is_file()]
        images = [
            r for r in moderation.requests("moderations") if isinstance(r.body["input"], list)
        ]
        assert len(images) == 2

        moderation.image_flagger = mostly_red  # the preview's blue frames pass
        created = gateway.client.post(
            "/v1/tasks", json={"prompt": "a quiet lake", "duration_ms": 500, "fps": 8}
        )
        task = gateway.wait_task(created.json()["id"], lambda t: t["status"] == "succeeded")
        assert httpx.get(task["video_url"]).status_code == 200
