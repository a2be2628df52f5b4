"""Prompt preparation: screening before any credit is spent, then expansion.

The pipeline and the routes only talk to :class:`PromptService`:

* ``screen(text)`` raises ``ContentRejectedError`` (naming the matched category) or returns;
  it runs on the user's prompt (at task creation) and on the expansion (in the pipeline).
* ``expand(prompt, ...)`` returns an :class:`Expansion`::

      use_llm and [llm] configured ──► LLM ──► cleaned, trimmed       expanded_by = "llm"
              │ fails (unreachable, slow, HTTP error, empty/refused answer)
              ├── [llm] required = true ──► UnavailableError (503, the task fails with it)
              └──────────────────────────► template expansion         expanded_by = "template"
      no LLM, template/style/platform asked ─► template expansion     expanded_by = "template"
      nothing asked ─────────────────────────► the prompt, trimmed    expanded_by = "none"

  It never takes longer than ``[llm] timeout_s``. The result always fits ``max_chars`` (the
  target provider's ``capabilities.max_prompt_chars``) and ends on a sentence when it can.
* ``platform_preset(name)`` / ``apply_platform(...)`` fill aspect ratio, duration and
  resolution from a platform preset, with warnings for what a provider cannot honour.
* ``storyboard(prompt, total_ms, limits)`` plans a long video's shots (``storyboard.py``);
  ``caption(prompt, platform=...)`` writes a caption with hashtags (``captions.py``). Both use
  the LLM when configured and fall back to deterministic versions.

Unknown style, template or platform names raise ``ValidationError`` (422) naming the known ones.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from app.errors import UnavailableError
from app.prompts.captions import Caption, write_caption
from app.prompts.catalog import Catalog, PlatformPreset, StylePreset, Template
from app.prompts.expander import Brief, LlmError, LlmExpander
from app.prompts.platforms import apply_platform, platform_warnings
from app.prompts.screening import Screener
from app.prompts.storyboard import ClipLimits, Storyboard, plan_storyboard
from app.prompts.text import Lang, compose, prompt_language, trim_prompt

if TYPE_CHECKING:
    from app.config import Settings
    from app.providers.base import Capabilities

logger = logging.getLogger(__name__)

ExpandedBy = Literal["llm", "template", "none"]

#: The deterministic expansion when the LLM failed and no template was asked for: the seed's
#: ingredients (subject, scene, camera) in neutral words.
GENERIC_TEXT: dict[Lang, str] = {
    "en": "{prompt}, detailed subject, clear scene with natural lighting, smooth camera movement",
    "zh": "{prompt}，主体细节清晰，场景光线自然，镜头平稳推进",
}
_DISABLED = frozenset({"none", "off", "false", "no"})


@dataclass(frozen=True, kw_only=True)
class Expansion:
    expanded_prompt: str
    expanded_by: ExpandedBy
    negative_prompt: str | None = None
    #: Why the LLM was not used although it was asked for (``None`` when it was, or not asked).
    fallback_reason: str | None = None


class PromptService:
    def __init__(
        self,
        *,
        catalog: Catalog,
        screener: Screener,
        llm: LlmExpander | None = None,
        llm_required: bool = False,
        expand_by_default: bool = True,
        default_negative_prompt: str | None = None,
    ) -> None:
        self.catalog = catalog
        self.screener = screener
        self.llm = llm
        self._llm_required = llm_required
        self._expand_by_default = expand_by_default
        self._default_negative = default_negative_prompt

    @classmethod
    def from_settings(cls, settings: Settings) -> PromptService:
        """Load templates and the word list (``ConfigError`` naming a broken file), make clients."""
        negative = settings.prompts.default_negative_prompt.strip()
        return cls(
            catalog=Catalog.load(settings.prompts.templates_dir),
            screener=Screener.from_settings(settings.prompts),
            llm=LlmExpander.from_settings(settings.llm),
            llm_required=settings.llm.required,
            expand_by_default=settings.llm.expand_by_default,
            default_negative_prompt=None if negative.lower() in _DISABLED else negative or None,
        )

    @property
    def expands_by_default(self) -> bool:
        return self.llm is not None and self._expand_by_default

    # --- screening -----------------------------------------------------------------------

    async def screen(self, text: str, *, what: str = "prompt") -> None:
        """Reject text that must not reach a provider (``ContentRejectedError``, 400)."""
        await self.screener.screen(text, what=what)

    # --- presets ---------------------------------------------------------------------------

    def template(self, name: str) -> Template:
        return self.catalog.templates.lookup(name)

    def style(self, name: str) -> StylePreset:
        return self.catalog.styles.lookup(name)

    def platform_preset(self, name: str) -> PlatformPreset:
        return self.catalog.platforms.lookup(name)

    def list_templates(self) -> list[Template]:
        return self.catalog.templates.listing()

    def list_styles(self) -> list[StylePreset]:
        return self.catalog.styles.listing()

    def list_platforms(self) -> list[PlatformPreset]:
        return self.catalog.platforms.listing()

    def validate(
        self, *, style: str | None = None, template: str | None = None, platform: str | None = None
    ) -> None:
        """Raise ``ValidationError`` (422) for an unknown name — call it before storing a task."""
        if style:
            self.style(style)
        if template:
            self.template(template)
        if platform:
            self.platform_preset(platform)

    def apply_platform(
        self,
        body: Mapping[str, Any],
        *,
        explicit: Collection[str] | None = None,
        capabilities: Capabilities | None = None,
        provider: str = "the provider",
    ) -> tuple[dict[str, Any], list[str]]:
        """``body`` with its ``platform``'s fields filled in (see ``platforms.apply_platform``)."""
        name = body.get("platform")
        if not name:
            return dict(body), []
        return apply_platform(
            body,
            self.platform_preset(str(name)),
            explicit=explicit,
            capabilities=capabilities,
            provider=provider,
        )

    def negative_prompt(self, requested: str | None = None, *, template: str | None = None) -> str:
        """The negative prompt to send where the provider takes one: the request's, else the
        template's, else ``[prompts] default_negative_prompt`` (``""`` when switched off)."""
        if requested:
            return requested
        if template:
            found = self.template(template).negative_prompt
            if found:
                return found
        return self._default_negative or ""

    # --- expansion -------------------------------------------------------------------------

    async def expand(
        self,
        prompt: str,
        *,
        style: str | None = None,
        template: str | None = None,
        platform: str | None = None,
        max_chars: int = 2000,
        negative_prompt: str | None = None,
        use_llm: bool = True,
    ) -> Expansion:
        tpl = self.template(template) if template else None
        style_name = style or (tpl.style if tpl else None)
        sty = self.style(style_name) if style_name else None
        plat = self.platform_preset(platform) if platform else None
        lang = prompt_language(prompt)
        negative = self.negative_prompt(negative_prompt, template=template) or None

        reason: str | None = None
        if use_llm and self.llm is not None:
            brief = Brief(
                prompt=prompt.strip(),
                lang=lang,
                max_chars=max_chars,
                scenario=(tpl.hint or tpl.title).get(lang) if tpl else None,
                style=sty.text.get(lang) if sty else None,
                framing=plat.framing.get(lang) if plat else None,
            )
            try:
                text = trim_prompt(await self.llm.expand(brief), max_chars)
            except LlmError as exc:
                if self._llm_required:
                    raise UnavailableError(
                        f"prompt expansion failed: {exc.reason} ([llm] required = true)",
                        retryable=exc.retryable,
                    ) from exc
                reason = exc.reason
                logger.warning("LLM expansion failed (%s); using the template expansion", reason)
            else:
                return Expansion(expanded_prompt=text, expanded_by="llm", negative_prompt=negative)
        elif not (tpl or sty or plat or use_llm):
            # Nothing asked: the user's words go to the provider as written.
            return Expansion(
                expanded_prompt=prompt.strip(), expanded_by="none", negative_prompt=negative
            )
        elif use_llm and not (tpl or sty or plat):
            # Asked to expand with nothing to go on but the idea: the generic expansion.
            reason = "no LLM is configured ([llm] base_url and model)"

        text = self.template_expansion(
            prompt, tpl, sty, plat, lang=lang, max_chars=max_chars, generic=reason is not None
        )
        return Expansion(
            expanded_prompt=text,
            expanded_by="template",
            negative_prompt=negative,
            fallback_reason=reason,
        )

    def template_expansion(
        self,
        prompt: str,
        template: Template | None,
        style: StylePreset | None,
        platform: PlatformPreset | None,
        *,
        lang: Lang,
        max_chars: int,
        generic: bool = False,
    ) -> str:
        """The deterministic expansion: the template's text (or, with ``generic``, the generic
        one; else the prompt itself) with the style's and the platform's words appended,
        within ``max_chars``."""
        if template is not None:
            core = template.render(prompt, lang)
        elif generic:
            core = GENERIC_TEXT[lang].replace("{prompt}", prompt.strip().rstrip("。.!！?？"))
        else:
            core = prompt
        extras = [p.text.get(lang) for p in (style,) if p] + [
            p.framing.get(lang) for p in (platform,) if p
        ]
        return compose(core, extras, lang, max_chars)

    # --- long videos and content packages ----------------------------------------------------

    async def storyboard(
        self,
        prompt: str,
        total_ms: int,
        limits: ClipLimits,
        *,
        style: str | None = None,
        platform: str | None = None,
        max_chars: int = 2000,
        shots: int | None = None,
        use_llm: bool = True,
    ) -> Storyboard:
        """Shots for a long video of ``prompt`` (``app.prompts.storyboard``): the LLM's
        storyboard when one is configured (and ``use_llm``), else (or when it fails) the
        deterministic split. With ``[llm] required = true`` an LLM failure is
        ``UnavailableError`` instead."""
        lang = prompt_language(prompt)
        extras = []
        if style:
            extras.append(self.style(style).text.get(lang))
        if platform:
            extras.append(self.platform_preset(platform).framing.get(lang))
        board = await plan_storyboard(
            prompt,
            total_ms,
            limits,
            llm=self.llm if use_llm else None,
            max_chars=max_chars,
            extras=extras,
            shots=shots,
        )
        if board.fallback_reason and self._llm_required:
            raise UnavailableError(
                f"storyboard failed: {board.fallback_reason} ([llm] required = true)"
            )
        return board

    async def caption(
        self, prompt: str, *, platform: str | None = None, style: str | None = None
    ) -> Caption:
        """A platform-ready caption with hashtags in the prompt's language
        (``app.prompts.captions``); the template when there is no LLM or it fails."""
        return await write_caption(
            prompt,
            platform=self.platform_preset(platform) if platform else None,
            style=self.style(style) if style else None,
            llm=self.llm,
        )

    async def preview(
        self,
        prompt: str,
        *,
        provider: str,
        capabilities: Capabilities,
        style: str | None = None,
        template: str | None = None,
        platform: str | None = None,
        negative_prompt: str | None = None,
    ) -> dict[str, Any]:
        """Screen and expand ``prompt`` exactly as a task for ``provider`` would, without
        generating anything (``POST /v1/prompts/expand``, the MCP and plugin tools)."""
        self.validate(style=style, template=template, platform=platform)
        await self.screen(prompt)
        expansion = await self.expand(
            prompt,
            style=style,
            template=template,
            platform=platform,
            max_chars=capabilities.max_prompt_chars,
            negative_prompt=negative_prompt,
        )
        await self.screen(expansion.expanded_prompt, what="expanded prompt")
        warnings: list[str] = []
        if expansion.fallback_reason:
            warnings.append(f"{expansion.fallback_reason}; used the template expansion")
        fields: dict[str, Any] | None = None
        if platform:
            preset = self.platform_preset(platform)
            fields = {"name": preset.name, **preset.fields()}
            fields.setdefault("resolution", None)
            warnings.extend(platform_warnings(preset, capabilities, provider=provider))
        if negative_prompt and not capabilities.negative_prompt:
            warnings.append(f"{provider} takes no negative prompt; it would be ignored")
        return {
            "expanded_prompt": expansion.expanded_prompt,
            "expanded_by": expansion.expanded_by,
            "negative_prompt": expansion.negative_prompt if capabilities.negative_prompt else None,
            "provider": provider,
            "max_chars": capabilities.max_prompt_chars,
            "platform": fields,
            "warnings": warnings,
        }

    def listing(self) -> dict[str, list[dict[str, Any]]]:
        """The templates, styles and platform presets, as ``GET /v1/prompts/catalog`` lists them."""
        return {
            "templates": [
                {"name": t.name, "aliases": list(t.aliases), "title": t.title.en, "style": t.style}
                for t in self.list_templates()
            ],
            "styles": [{"name": s.name, "aliases": list(s.aliases)} for s in self.list_styles()],
            "platforms": [
                {"name": p.name, "aliases": list(p.aliases), **p.fields()}
                for p in self.list_platforms()
            ],
        }

    async def aclose(self) -> None:
        if self.llm is not None:
            await self.llm.aclose()
        await self.screener.aclose()
