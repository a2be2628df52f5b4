"""LLM expansion through any OpenAI-compatible chat-completions endpoint.

DeepSeek, Qwen (DashScope compatible mode), InternLM, Ollama and vLLM all speak this protocol;
``[llm] base_url`` points at the part before ``/chat/completions``. One ``AsyncOpenAI`` client
is shared by every task. Each call is bounded twice: the SDK's per-request timeouts and
bounded retries, and ``asyncio.timeout([llm] timeout_s)`` around the whole call (retries and
``Retry-After`` waits included), so an expansion never outlives ``timeout_s``.

Every failure — unreachable, slow, HTTP errors, an empty, refused or unusable answer — is
raised as :class:`LlmError` with a short reason that never contains the API key.

The ``openai`` SDK is imported only when an endpoint is configured (:meth:`LlmExpander.
from_settings`): importing it takes a third of a second, and a gateway restarted after a crash
should be back at its tasks, not loading an SDK it may never call.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.config import LlmSettings
from app.prompts.text import Lang, clean_answer, looks_like_refusal

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAIError

logger = logging.getLogger(__name__)

# The seed's system prompt (subject details, scene, style, camera movement; the prompt only).
SYSTEM_PROMPT_ZH = """你是文生视频提示词专家，\
需将用户输入的简短提示词扩展为适合视频生成模型的详细描述。需包含：
- 主体细节（外观、动作、表情）
- 场景环境（地点、光线、天气）
- 风格定义（写实/动画/复古等）
- 镜头运动（推/拉/摇/移等）
只输出扩写后的提示词本身：一段连贯的中文描述，不要标题、解释、引号、列表或前言。
示例：
用户输入："小男孩踢足球"
输出：画面中心是身着蓝色足球服的小男孩，脚蹬黑色球鞋，正奋力踢向黑白相间的足球。\
翠绿草坪边缘有白色边线，围栏外是蓝色观众座椅。天空湛蓝飘着白云，男孩表情专注兴奋，\
镜头跟随足球运动轨迹推进。"""

SYSTEM_PROMPT_EN = """You are an expert in writing prompts for text-to-video models. Expand the \
user's short idea into a detailed description a video generation model can follow. Include:
- subject details (appearance, action, expression)
- the scene (place, lighting, weather)
- the style (realistic, animated, vintage, ...)
- the camera movement (push in, pull out, pan, tracking, ...)
Answer with the prompt only: one coherent paragraph in English, no title, explanation, quotes, \
list or preamble.
Example:
User idea: "a boy playing football"
Answer: A young boy in a blue football kit and black boots stands at the center of the frame, \
striking a black-and-white ball with full force. Bright green grass with white touchlines, blue \
spectator seats behind the fence, a clear blue sky with drifting clouds. His face is focused \
and excited; the camera tracks the ball as it flies forward."""


def default_system_prompt(lang: Lang) -> str:
    return SYSTEM_PROMPT_ZH if lang == "zh" else SYSTEM_PROMPT_EN


class LlmError(Exception):
    """The LLM gave no usable expansion. ``retryable``: whether trying later may help."""

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True, kw_only=True)
class Brief:
    """What the LLM is asked: the user's idea, its language and the wanted shaping."""

    prompt: str
    lang: Lang
    max_chars: int
    scenario: str | None = None
    style: str | None = None
    framing: str | None = None

    def user_message(self) -> str:
        if self.lang == "zh":
            lines = [f"用户输入：{self.prompt}"]
            if self.scenario:
                lines.append(f"业务场景：{self.scenario}")
            if self.style:
                lines.append(f"画面风格：{self.style}")
            if self.framing:
                lines.append(f"发布平台与画幅：{self.framing}")
            lines.append(f"请控制在{self.max_chars}字以内。")
        else:
            lines = [f"User idea: {self.prompt}"]
            if self.scenario:
                lines.append(f"Scenario: {self.scenario}")
            if self.style:
                lines.append(f"Style: {self.style}")
            if self.framing:
                lines.append(f"Platform and framing: {self.framing}")
            lines.append(f"Keep it under {self.max_chars} characters.")
        return "\n".join(lines)


def _describe(exc: OpenAIError) -> LlmError:
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return LlmError("the LLM request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return LlmError("the LLM endpoint is unreachable")
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return LlmError(
            f"the LLM endpoint refused the credentials (HTTP {exc.status_code}); "
            "check [llm] api_key",
            retryable=False,
        )
    if isinstance(exc, openai.NotFoundError):
        return LlmError(
            "the LLM endpoint does not know the model or path (HTTP 404); "
            "check [llm] base_url and model",
            retryable=False,
        )
    if isinstance(exc, openai.RateLimitError):
        return LlmError("the LLM endpoint is rate limiting (HTTP 429)")
    if isinstance(exc, openai.APIStatusError):
        return LlmError(
            f"the LLM endpoint answered HTTP {exc.status_code}", retryable=exc.status_code >= 500
        )
    return LlmError(f"the LLM answer could not be read ({type(exc).__name__})")


class LlmExpander:
    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        model: str,
        timeout_s: float,
        temperature: float = 0.7,
        max_tokens: int | None = None,
        system_prompt: str | None = None,
    ) -> None:
        self._client = client
        self.model = model
        self.timeout_s = timeout_s
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._system_prompt = system_prompt

    @classmethod
    def from_settings(cls, settings: LlmSettings) -> LlmExpander | None:
        if not (settings.base_url and settings.model):
            return None
        import openai

        key = settings.api_key.get_secret_value() if settings.api_key else "EMPTY"
        client = openai.AsyncOpenAI(
            base_url=settings.base_url,
            api_key=key,  # Ollama and vLLM accept any key; the SDK insists on one
            timeout=openai.Timeout(settings.timeout_s, connect=min(5.0, settings.timeout_s)),
            max_retries=settings.max_retries,
        )
        return cls(
            client,
            model=settings.model,
            timeout_s=settings.timeout_s,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            system_prompt=settings.system_prompt,
        )

    def system_prompt(self, lang: Lang) -> str:
        return self._system_prompt or default_system_prompt(lang)

    async def expand(self, brief: Brief) -> str:
        """The cleaned expansion (not yet trimmed); :class:`LlmError` when there is none."""
        raw = await self.complete(
            self.system_prompt(brief.lang),
            brief.user_message(),
            max_tokens=self._max_tokens or max(256, brief.max_chars * 2),
            what="expand the prompt",
        )
        text = clean_answer(raw)
        if not text:
            raise LlmError("the LLM answered with an empty prompt")
        if looks_like_refusal(text):
            raise LlmError("the LLM refused to expand the prompt")
        return text

    async def complete(
        self,
        system: str,
        user: str,
        *,
        max_tokens: int,
        what: str,
        temperature: float | None = None,
    ) -> str:
        """One chat completion's raw text, bounded by ``timeout_s``; :class:`LlmError` when the
        call fails, is refused or comes back empty. ``what`` words the refusal ("write a
        storyboard"). Storyboards and captions use it too."""
        import openai  # loaded by now: the client is one of its objects

        try:
            async with asyncio.timeout(self.timeout_s):
                completion = await self._client.chat.completions.create(
                    model=self.model,
                    messages=[
                        {"role": "system", "content": system},
                        {"role": "user", "content": user},
                    ],
                    temperature=self._temperature if temperature is None else temperature,
                    max_tokens=max_tokens,
                )
        except TimeoutError:
            raise LlmError(f"the LLM did not answer within {self.timeout_s:g} s") from None
        except openai.OpenAIError as exc:
            raise _describe(exc) from exc
        if not completion.choices:
            raise LlmError("the LLM answered without any choice")
        choice = completion.choices[0]
        message = choice.message
        if message.refusal or choice.finish_reason == "content_filter":
            raise LlmError(f"the LLM refused to {what}")
        if not (message.content or "").strip():
            raise LlmError("the LLM answered with an empty text")
        return message.content or ""

    @property
    def max_tokens(self) -> int | None:
        """``[llm] max_tokens`` (``None``: sized per call)."""
        return self._max_tokens

    async def aclose(self) -> None:
        await self._client.close()
