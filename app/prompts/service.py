"""Prompt preparation: screening before any credit is spent, then expansion.

The pipeline and the routes only talk to :class:`PromptService`:

* ``screen(text)`` raises ``ContentRejectedError`` (with the matched category) or returns;
* ``expand(prompt, ...)`` returns an :class:`Expansion` — by the LLM when one is configured,
  else a deterministic template — never hanging longer than ``[llm] timeout_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from app.config import Settings

ExpandedBy = Literal["llm", "template", "none"]


@dataclass(frozen=True, kw_only=True)
class Expansion:
    expanded_prompt: str
    expanded_by: ExpandedBy
    negative_prompt: str | None = None


class PromptService:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @classmethod
    def from_settings(cls, settings: Settings) -> PromptService:
        return cls(settings)

    @property
    def expands_by_default(self) -> bool:
        return self._settings.llm.enabled and self._settings.llm.expand_by_default

    async def screen(self, text: str) -> None:
        """Reject text that must not reach a provider."""
        return None

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
        return Expansion(expanded_prompt=prompt[:max_chars], expanded_by="none")

    async def aclose(self) -> None:
        return None
