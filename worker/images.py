"""Input images for image-to-video: from ``image_url`` (http(s) or data: URL) or an upload."""

from __future__ import annotations

import base64
import binascii
import io
import logging

import httpx
from PIL import Image, UnidentifiedImageError

from worker.errors import ValidationFailedError

logger = logging.getLogger(__name__)


async def fetch_image(client: httpx.AsyncClient, url: str, *, max_bytes: int) -> bytes:
    """The bytes behind ``url``; any failure is the client's problem (422 naming image_url)."""
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        if not header.endswith(";base64"):
            raise ValidationFailedError(
                "image_url data: URLs must be base64-encoded", field="image_url"
            )
        try:
            data = base64.b64decode(payload, validate=True)
        except binascii.Error as exc:
            raise ValidationFailedError(
                f"image_url is not valid base64: {exc}", field="image_url"
            ) from exc
    elif url.startswith(("http://", "https://")):
        data = await _download(client, url, max_bytes=max_bytes)
    else:
        raise ValidationFailedError("image_url must be an http(s) or data: URL", field="image_url")
    if len(data) > max_bytes:
        raise ValidationFailedError(
            f"the image is larger than {max_bytes} bytes", field="image_url"
        )
    return data


#: The one thing a caller learns when a download fails: neither a status nor an error, so the
#: worker cannot be used to map what answers where on its network.
NOT_FETCHED = "the image could not be fetched"


async def _download(client: httpx.AsyncClient, url: str, *, max_bytes: int) -> bytes:
    """``client`` is the worker's guarded client (``worker.netguard``)."""
    try:
        async with client.stream("GET", url) as response:
            if response.status_code != 200:
                logger.info("image_url answered HTTP %s", response.status_code)
                raise ValidationFailedError(NOT_FETCHED, field="image_url")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise ValidationFailedError(
                        f"the image is larger than {max_bytes} bytes", field="image_url"
                    )
                chunks.append(chunk)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        logger.info("image_url could not be fetched: %s", type(exc).__name__)
        raise ValidationFailedError(NOT_FETCHED, field="image_url") from exc
    return b"".join(chunks)


def check_image(data: bytes, *, field: str) -> None:
    """Decode ``data`` (CPU work: call it in a thread) so a bad image fails before queueing."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ValidationFailedError(f"the image cannot be decoded: {exc}", field=field) from exc
