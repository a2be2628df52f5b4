"""``/v1/videos`` driven by the real ``openai`` SDK against a live gateway."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from fastapi import FastAPI
from openai import OpenAI
from PIL import Image

from app.api.errors import install_error_handlers
from app.errors import RateLimitedError
from tests.conftest import GatewayFactory, LiveGateway, eventually
from tests.emulators.server import serve_in_thread
from tests.fakes import ControlledProvider
from tests.mp4 import probe

# The SDK marks its videos resource deprecated (OpenAI's own Sora API closes); ours stays.
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")


class ImageProvider(ControlledProvider):
    """The fake provider, able to take a first frame."""

    def __init__(self) -> None:
        super().__init__("fake")
        self.capabilities = type(self.capabilities)(max_concurrency=1000, image_input=True)


@pytest.fixture
def fake() -> ImageProvider:
    return ImageProvider()


_CLIENTS: list[OpenAI] = []


@pytest.fixture
def gateway(gateway_factory: GatewayFactory, fake: ImageProvider) -> Iterator[LiveGateway]:
    with gateway_factory(extra_providers={"fake": fake}) as gateway:
        yield gateway
        while _CLIENTS:
            _CLIENTS.pop().close()
    fake.release()


def sdk(gateway: LiveGateway, token: str | None = None) -> OpenAI:
    """The SDK as a user sets it up (no retries: one call is one request here)."""
    client = OpenAI(
        base_url=f"{gateway.base_url}/v1", api_key=token or gateway.token, max_retries=0
    )
    _CLIENTS.append(client)
    return client


def png(width: int = 320, height: int = 320) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 90)).save(out, format="PNG")
    return out.getvalue()


def test_create_and_poll_makes_a_real_mp4(gateway: LiveGateway, tmp_path: Path) -> None:
    client = sdk(gateway)
    video = client.videos.create_and_poll(
        prompt="a paper boat on a pond", seconds="4", size="720x1280"
    )
    assert video.status == "completed" and video.progress == 100, video
    assert video.id.startswith("video_") and video.model == "preview"
    assert video.seconds == "4" and video.size == "720x1280" and video.error is None
    assert video.completed_at is not None and video.completed_at >= video.created_at

    # The same video through the native API: one task, same hex, the facade's settings.
    task = gateway.client.get(f"/v1/tasks/vt_{video.id.removeprefix('video_')}").json()
    assert task["status"] == "succeeded" and task["params"]["frames"] == 4 * 24
    assert task["params"]["width"] < task["params"]["height"]  # 9:16

    path = tmp_path / "out.mp4"
    client.videos.download_content(video.id).write_to_file(path)
    info = probe(path)
    assert info.codec == "h264" and info.frames == 96 and info.width < info.height

    # Every video has a poster frame (made just after it); no sprite sheets: 404.
    eventually(lambda: bool(gateway.client.get(f"/v1/tasks/{task['id']}").json()["thumbnail_url"]))
    poster = client.videos.download_content(video.id, variant="thumbnail").read()
    assert Image.open(io.BytesIO(poster)).format == "JPEG"
    with pytest.raises(openai.NotFoundError) as missing:
        client.videos.download_content(video.id, variant="spritesheet")
    assert missing.value.body["param"] == "variant"  # type: ignore[index]


def test_retrieve_while_running_says_when_to_poll_again(
    gateway: LiveGateway, fake: ImageProvider
) -> None:
    client = sdk(gateway)
    video = client.videos.create(prompt="slow one", model="fake", seconds="8", size="1280x720")
    assert video.status == "queued" and video.model == "fake"
    task_id = "vt_" + video.id.removeprefix("video_")
    gateway.wait_task(task_id, lambda t: t["provider_status"] == "cooking")

    raw = client.videos.with_raw_response.retrieve(video.id)
    assert raw.headers["openai-poll-after-ms"] == "1000"
    running = raw.parse()
    assert running.status == "in_progress" and running.progress == 40
    assert running.seconds == "8" and running.size == "1280x720"

    with pytest.raises(openai.ConflictError) as not_ready:
        client.videos.download_content(video.id)
    assert not_ready.value.response.headers["x-should-retry"] == "false"

    fake.release()
    done = client.videos.poll(video.id, poll_interval_ms=50)
    assert done.status == "completed" and done.progress == 100
    assert "openai-poll-after-ms" not in client.videos.with_raw_response.retrieve(video.id).headers
    assert client.videos.download_content(video.id).content == fake.video
    assert len(fake.submits) == 1


def test_list_pages_with_after_limit_and_order(gateway: LiveGateway, fake: ImageProvider) -> None:
    client = sdk(gateway)
    ids = [client.videos.create(prompt=f"clip {i}", model="fake").id for i in range(5)]

    first = client.videos.list(limit=2)
    assert [v.id for v in first.data] == ids[:-3:-1] and first.has_more
    second = client.videos.list(limit=2, after=first.data[-1].id)
    assert [v.id for v in second.data] == [ids[2], ids[1]] and second.has_more
    assert [v.id for v in client.videos.list(limit=2, after=ids[1]).data] == [ids[0]]

    oldest_first = client.videos.list(order="asc", limit=3)
    assert [v.id for v in oldest_first.data] == ids[:3]
    # The SDK's auto-pagination follows last_id until has_more is false.
    assert [v.id for v in client.videos.list(limit=2, order="asc")] == ids

    with pytest.raises(openai.NotFoundError):
        client.videos.list(after="video_0000")
    # Another token sees none of them.
    assert list(sdk(gateway, gateway.other_token).videos.list()) == []


def test_delete_cancels_a_running_video_and_hides_it(
    gateway: LiveGateway, fake: ImageProvider
) -> None:
    client = sdk(gateway)
    keep = client.videos.create(prompt="keep me", model="fake")
    gone = client.videos.create(prompt="delete me", model="fake")
    task_id = "vt_" + gone.id.removeprefix("video_")
    gateway.wait_task(task_id, lambda t: t["provider_task_id"] is not None)

    deleted = client.videos.delete(gone.id)
    assert deleted.id == gone.id and deleted.deleted and deleted.object == "video.deleted"
    assert fake.cancelled == [f"fake-{task_id}"]  # the paid job is stopped at the provider

    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(gone.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.delete(gone.id)
    assert [v.id for v in client.videos.list()] == [keep.id]
    assert gateway.client.get(f"/v1/tasks/{task_id}").status_code == 404
    assert task_id not in [t["id"] for t in gateway.client.get("/v1/tasks").json()["data"]]

    # The record is kept: cancelled, provider job id and all.
    row = asyncio.run(gateway.app.state.store.get(task_id))
    assert row is not None and row.deleted_at is not None
    assert row.status.value == "cancelled" and row.provider_task_id == f"fake-{task_id}"


def test_delete_of_a_finished_video_removes_its_file(
    gateway: LiveGateway, fake: ImageProvider
) -> None:
    client = sdk(gateway)
    fake.release()
    video = client.videos.poll(client.videos.create(prompt="done", model="fake").id)
    url = gateway.client.get(f"/v1/tasks/vt_{video.id.removeprefix('video_')}").json()["video_url"]
    assert httpx.get(url).status_code == 200
    client.videos.delete(video.id)
    assert httpx.get(url).status_code == 404


def test_remix_makes_a_new_video_pointing_at_the_source(
    gateway: LiveGateway, fake: ImageProvider
) -> None:
    client = sdk(gateway)
    source = client.videos.create(prompt="a fox", model="fake", seconds="8", size="1792x1024")
    remix = client.videos.remix(source.id, prompt="a fox in the snow")
    assert remix.id != source.id and remix.remixed_from_video_id == source.id
    assert remix.prompt == "a fox in the snow" and remix.model == "fake"
    assert (remix.seconds, remix.size) == ("8", "1792x1024")
    fake.release()
    assert client.videos.poll(remix.id, poll_interval_ms=50).status == "completed"
    assert [r.prompt for r in fake.submits] == ["a fox", "a fox in the snow"]

    with pytest.raises(openai.NotFoundError):
        sdk(gateway, gateway.other_token).videos.remix(source.id, prompt="mine now")


def test_an_uploaded_input_reference_reaches_the_provider_by_signed_url(
    gateway: LiveGateway, fake: ImageProvider
) -> None:
    image = png()
    video = sdk(gateway).videos.create(
        prompt="animate this", model="fake", input_reference=("first.png", image, "image/png")
    )
    assert video.status in ("queued", "in_progress")
    task = gateway.wait_task(
        "vt_" + video.id.removeprefix("video_"), lambda t: t["provider_task_id"] is not None
    )
    sent = fake.submits[0].image_url
    assert sent is not None and sent.startswith(f"{gateway.base_url}/files/inputs/")
    fetched = httpx.get(sent)
    assert fetched.content == image and fetched.headers["content-type"] == "image/png"
    assert task["status"] == "running"


def test_our_own_upload_link_passes_the_url_guard_that_refuses_loopback(
    gateway_factory: GatewayFactory, fake: ImageProvider
) -> None:
    """Without an allow-list a loopback image_url is refused, but the link the gateway made for
    an upload (signed, on its own storage) is its own file, not a caller's URL."""
    guarded = {"security": {"private_url_allowlist": ""}}
    with gateway_factory(guarded, extra_providers={"fake": fake}) as gateway:
        client = sdk(gateway)
        video = client.videos.create(
            prompt="animate this", model="fake", input_reference=("a.png", png(), "image/png")
        )
        gateway.wait_task("vt_" + video.id.removeprefix("video_"), lambda t: bool(fake.submits))
        with pytest.raises(openai.UnprocessableEntityError) as refused:
            client.videos.create(
                prompt="sneaky",
                model="fake",
                extra_body={"input_reference": {"image_url": f"{gateway.base_url}/admin"}},
            )
    assert fake.submits[0].image_url and "/files/inputs/" in fake.submits[0].image_url
    assert refused.value.code == "invalid_url"


def test_create_as_json_with_an_image_url(gateway: LiveGateway, fake: ImageProvider) -> None:
    response = gateway.client.post(
        "/v1/videos",
        json={
            "prompt": "from a url",
            "model": "fake",
            "seconds": 4,
            "size": "1080x1080",
            "input_reference": {"image_url": "https://images.example.com/cat.png"},
        },
    )
    assert response.status_code == 200, response.text
    video = response.json()
    assert video["size"] == "1080x1080" and video["seconds"] == "4"
    gateway.wait_task("vt_" + video["id"].removeprefix("video_"), lambda t: bool(fake.submits))
    assert fake.submits[0].image_url == "https://images.example.com/cat.png"
    assert fake.submits[0].aspect_ratio == "1:1"


def test_model_names(gateway: LiveGateway) -> None:
    client = sdk(gateway)
    # OpenAI's own names (and any other unknown name) are left to the routing rules.
    assert client.videos.create(prompt="routed", model="sora-2").model == "preview"
    assert client.videos.create(prompt="named", model="preview").model == "preview"
    with pytest.raises(openai.UnprocessableEntityError) as unconfigured:
        client.videos.create(prompt="x", model="seedance")
    assert "seedance" in unconfigured.value.message


def test_errors_come_in_openai_shape_with_the_sdk_exception_classes(
    gateway: LiveGateway,
) -> None:
    client = sdk(gateway)
    with pytest.raises(openai.BadRequestError) as bad_size:
        client.videos.create(prompt="x", size="1000x300")
    body = bad_size.value.body
    assert isinstance(body, dict) and "1000x300" in body["message"]
    assert {k: body[k] for k in ("type", "code", "param")} == {
        "type": "invalid_request_error",
        "code": "bad_request",
        "param": "size",
    }
    with pytest.raises(openai.BadRequestError) as bad_seconds:
        client.videos.create(prompt="x", seconds="ten")  # type: ignore[arg-type]
    assert bad_seconds.value.body["param"] == "seconds"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as not_an_image:
        client.videos.create(prompt="x", input_reference=("a.png", b"not an image", "image/png"))
    assert not_an_image.value.body["param"] == "input_reference"  # type: ignore[index]
    with pytest.raises(openai.UnprocessableEntityError) as blank:
        client.videos.create(prompt="   ")
    assert blank.value.body["param"] == "prompt"  # type: ignore[index]
    assert blank.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(openai.PermissionDeniedError):
        sdk(gateway, "not-a-known-token").videos.list()
    with pytest.raises(openai.NotFoundError) as other_tenant:
        own = client.videos.create(prompt="mine")
        sdk(gateway, gateway.other_token).videos.retrieve(own.id)
    assert other_tenant.value.body["code"] == "not_found"  # type: ignore[index]

    # Plain HTTP: the shape, and 401 without a token; other routes keep the native shape.
    no_token = httpx.get(f"{gateway.base_url}/v1/videos")
    assert no_token.status_code == 401
    assert set(no_token.json()["error"]) == {"message", "type", "code", "param"}
    assert no_token.json()["error"]["type"] == "authentication_error"
    native = httpx.get(f"{gateway.base_url}/v1/tasks")
    assert (
        set(native.json()) == {"error", "detail"} and native.json()["error"]["retryable"] is False
    )
    unknown_route = gateway.client.get("/v1/videos/x/nothing-here")
    assert unknown_route.status_code == 404 and "type" in unknown_route.json()["error"]
    huge = gateway.client.post("/v1/videos", json={"prompt": "x" * 2_000_000})
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"


def test_a_429_reaches_the_sdk_as_rate_limit_error() -> None:
    """No limiter is configured in the other tests; the renderer is the one the gateway uses."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/v1/videos/limited")
    async def limited() -> None:
        raise RateLimitedError("slow down", headers={"Retry-After": "0"})

    with (
        serve_in_thread(app) as url,
        OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as client,
        pytest.raises(openai.RateLimitError) as caught,
    ):
        client.get("/videos/limited", cast_to=httpx.Response)
    assert caught.value.body == {  # type: ignore[comparison-overlap]
        "message": "slow down",
        "type": "rate_limit_error",
        "code": "rate_limited",
        "param": None,
    }
    assert caught.value.response.headers["retry-after"] == "0"
    assert caught.value.response.headers["x-should-retry"] == "true"
