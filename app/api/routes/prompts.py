"""``/v1/prompts``: preview the prompt a task would send (screened, expanded, trimmed)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import PromptsDep, ProvidersDep, get_principal
from app.api.schemas import AUTH_ERRORS, PromptText, error_responses

router = APIRouter(
    prefix="/v1/prompts",
    tags=["prompts"],
    dependencies=[Depends(get_principal)],
    responses=error_responses(*AUTH_ERRORS),
)


class PromptExpand(BaseModel):
    """Body of ``POST /v1/prompts/expand``."""

    model_config = ConfigDict(extra="forbid")

    prompt: PromptText = Field(description="The short idea.")
    style: str | None = Field(None, max_length=64, description="A style preset name.")
    template: str | None = Field(None, max_length=64, description="A business template name.")
    platform: str | None = Field(None, max_length=64, description="A platform preset name.")
    provider: str | None = Field(
        None, max_length=32, description="Whose prompt limit applies (default: the default one)."
    )
    negative_prompt: str | None = Field(None, max_length=2000)


class PlatformFields(BaseModel):
    name: str
    aspect_ratio: str
    duration_ms: int
    resolution: str | None


class PromptExpansion(BaseModel):
    expanded_prompt: str
    expanded_by: Literal["llm", "template", "none"]
    negative_prompt: str | None = Field(
        description="What a task would send as negative prompt (null: the provider takes none)."
    )
    provider: str
    max_chars: int = Field(description="The provider's prompt limit the expansion fits in.")
    platform: PlatformFields | None = None
    warnings: list[str] = Field(default_factory=list)


class PresetInfo(BaseModel):
    name: str
    aliases: list[str]
    title: str | None = None
    style: str | None = None
    aspect_ratio: str | None = None
    duration_ms: int | None = None
    resolution: str | None = None


class PromptCatalog(BaseModel):
    templates: list[PresetInfo]
    styles: list[PresetInfo]
    platforms: list[PresetInfo]


@router.post("/expand", response_model=PromptExpansion, responses=error_responses(400, 422, 503))
async def expand_prompt(
    body: PromptExpand, prompts: PromptsDep, providers: ProvidersDep
) -> dict[str, Any]:
    """Screen and expand a prompt exactly as a task would, without generating anything."""
    name = body.provider or providers.default
    return await prompts.preview(
        body.prompt,
        provider=name,
        capabilities=providers.get(name).capabilities,
        style=body.style,
        template=body.template,
        platform=body.platform,
        negative_prompt=body.negative_prompt,
    )


@router.get("/catalog", response_model=PromptCatalog)
async def prompt_catalog(prompts: PromptsDep) -> dict[str, Any]:
    """The templates, styles and platform presets this gateway knows."""
    return prompts.listing()
