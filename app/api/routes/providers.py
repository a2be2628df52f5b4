"""``GET /v1/providers``: the video providers configured on this gateway and what each takes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.deps import PrincipalDep, ProvidersDep
from app.api.schemas import AUTH_ERRORS, error_responses
from app.providers.base import ASPECT_RATIOS

router = APIRouter(
    prefix="/v1/providers", tags=["providers"], responses=error_responses(*AUTH_ERRORS)
)


class ProviderCapabilities(BaseModel):
    image_input: bool = Field(description="Takes a first frame (image_url).")
    last_frame: bool = Field(description="Takes a last frame too (last_frame_url).")
    reference_images: int = Field(0, description="How many reference_images it takes (0: none).")
    negative_prompt: bool
    max_prompt_chars: int
    aspect_ratios: list[str]


class ProviderPublic(BaseModel):
    name: str = Field(description="What the request's `provider` field takes.")
    default: bool = Field(description="Used when a request names no provider and no rule matches.")
    capabilities: ProviderCapabilities
    circuit: str = Field(
        "closed",
        description="Its circuit breaker here: closed, open (passed by for now) or half_open.",
    )


class ProviderList(BaseModel):
    default: str
    data: list[ProviderPublic]


@router.get("", response_model=ProviderList)
async def list_providers(_: PrincipalDep, providers: ProvidersDep) -> dict[str, Any]:
    """The providers a request may name here, the default one first."""
    names = sorted(providers.names(), key=lambda name: (name != providers.default, name))
    data = []
    for name in names:
        caps = providers.get(name).capabilities
        data.append(
            {
                "name": name,
                "default": name == providers.default,
                "capabilities": {
                    "image_input": caps.image_input,
                    "last_frame": caps.last_frame,
                    "reference_images": caps.reference_images,
                    "negative_prompt": caps.negative_prompt,
                    "max_prompt_chars": caps.max_prompt_chars,
                    "aspect_ratios": [r for r in ASPECT_RATIOS if r in caps.aspect_ratios],
                },
                "circuit": providers.breaker(name).current().value,
            }
        )
    return {"default": providers.default, "data": data}
