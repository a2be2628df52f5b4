"""Screening before any credit is spent: a sensitive-word list and an optional moderation API.

The word-list file (``[prompts] sensitive_words_file``; the default is
``app/prompts/builtin/sensitive_words.txt``, which documents the format) has ``[category]``
headers and one term per line. Text and terms are normalised the same way before matching:

* NFKC (full-width ``ＰＯＲＮ`` → ``PORN``, ideographic spaces → spaces) and case folding;
* format characters (zero-width spaces and joiners, soft hyphens) removed;
* everything that is not a letter or digit (spaces, punctuation, emoji) dropped, so
  ``冰 毒``, ``冰.毒`` and ``p-o-r-n`` read as the terms they spell.

Chinese characters match anywhere. A term's Latin-script ends must sit on word boundaries
and, spread over several words of the text, those words must be the term's own words or
letter-by-letter pieces (at most two characters each): ``heroine`` and ``the hero in`` do not
match ``heroin``; ``h e r o i n`` does. Rejections name the category, never the term.

The moderation hook posts ``{"input": text, "model"?: ...}`` to an OpenAI-compatible
``/v1/moderations`` endpoint and rejects when a result is ``flagged``, naming its categories.
Finished videos are screened the same way, frame by frame, as image inputs
(``[{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,…"}}]``, the
``omni-moderation`` form); ``app.media.moderation`` samples the frames.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.config import ConfigError, PromptsSettings
from app.errors import ContentRejectedError, UnavailableError
from app.prompts.text import is_han
from app.tls import tls_context

logger = logging.getLogger(__name__)

DEFAULT_WORDS_FILE = Path(__file__).parent / "builtin" / "sensitive_words.txt"
DEFAULT_CATEGORY = "sensitive"


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() and not is_han(ch)


#: Chinese characters, as ``app.prompts.text.is_han`` counts them.
_HAN = "\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\U00020000-\U0003ffff"
#: One Chinese character, or a run of other letters and digits (``[^\W_]`` is ``isalnum``).
_TOKEN = re.compile(f"[{_HAN}]|[^\\W_{_HAN}]+")


def tokens(text: str) -> list[str]:
    """Normalised tokens: runs of Latin letters/digits, and single Chinese characters.

    A regular expression rather than a loop over characters: every prompt and every expanded
    prompt is screened, and the loop was a tenth of the event loop's time under load.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    if not text.isascii():  # ASCII has no format characters (zero-width joiners and such)
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class _Term:
    compact: str
    words: tuple[str, ...]
    category: str
    latin_start: bool
    latin_end: bool
    latin_only: bool


@dataclass
class _Text:
    """A normalised text: its tokens, glued, and which token each character came from."""

    words: list[str]
    compact: str = ""
    owner: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        offset = 0
        for index, word in enumerate(self.words):
            self.starts.append(offset)
            self.owner.extend([index] * len(word))
            offset += len(word)
        self.compact = "".join(self.words)


class WordList:
    """Sensitive terms by category; :meth:`match` returns the first matching category."""

    def __init__(self, terms: dict[str, list[str]]) -> None:
        self.categories = sorted(terms)
        self._index: dict[str, list[_Term]] = defaultdict(list)
        self.size = 0
        for category, entries in terms.items():
            for entry in entries:
                words = tuple(tokens(entry))
                compact = "".join(words)
                if not compact:
                    continue
                term = _Term(
                    compact=compact,
                    words=words,
                    category=category,
                    latin_start=_is_word_char(compact[0]),
                    latin_end=_is_word_char(compact[-1]),
                    latin_only=all(_is_word_char(ch) for ch in compact),
                )
                self._index[compact[0]].append(term)
                self.size += 1
        for bucket in self._index.values():
            bucket.sort(key=lambda t: -len(t.compact))

    @classmethod
    def parse(cls, text: str, *, source: str = "word list") -> WordList:
        terms: dict[str, list[str]] = defaultdict(list)
        category = DEFAULT_CATEGORY
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("[") and line.endswith("]"):
                category = line[1:-1].strip()
                if not category:
                    raise ConfigError(f"{source}, line {number}: empty category name")
                continue
            terms[category].append(line)
        return cls(dict(terms))

    @classmethod
    def load(cls, path: Path) -> WordList:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"[prompts] sensitive_words_file = {path}: cannot read: {exc}"
            ) from exc
        return cls.parse(text, source=str(path))

    def match(self, text: str) -> str | None:
        """The category of the first term found in ``text``, or ``None``."""
        if not self.size:
            return None
        norm = _Text(tokens(text))
        compact = norm.compact
        for pos, ch in enumerate(compact):
            for term in self._index.get(ch, ()):
                if compact.startswith(term.compact, pos) and self._fits(norm, term, pos):
                    return term.category
        return None

    @staticmethod
    def _fits(norm: _Text, term: _Term, pos: int) -> bool:
        end = pos + len(term.compact)
        first, last = norm.owner[pos], norm.owner[end - 1]
        if term.latin_start and norm.starts[first] != pos:
            return False
        if term.latin_end and norm.starts[last] + len(norm.words[last]) != end:
            return False
        if term.latin_only and first != last:
            spanned = tuple(norm.words[first : last + 1])
            return spanned == term.words or all(len(word) <= 2 for word in spanned)
        return True


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class ModerationClient:
    """An OpenAI-compatible ``/v1/moderations`` endpoint, for operators who have one."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None,
        model: str | None,
        timeout_s: float,
        fail_open: bool,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = (
            url if url.rstrip("/").endswith("/moderations") else url.rstrip("/") + "/moderations"
        )
        self._model = model
        self._fail_open = fail_open
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = http or httpx.AsyncClient(
            verify=tls_context(),
            timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)),
            headers=headers,
        )

    async def flagged_categories(self, text: str) -> list[str] | None:
        """The flagged categories (possibly ``["flagged"]``), or ``None`` when not flagged."""
        return await self._ask(text, what="prompt")

    async def flagged_image_categories(
        self, images: Sequence[bytes], *, mime: str = "image/jpeg"
    ) -> list[str] | None:
        """Like :meth:`flagged_categories` for images: one request per image (the
        endpoint's multi-modal input takes one image at a time), sent concurrently."""
        answers = await asyncio.gather(
            *(
                self._ask(
                    [{"type": "image_url", "image_url": {"url": data_url(image, mime)}}],
                    what="video",
                )
                for image in images
            )
        )
        found = sorted({name for answer in answers if answer for name in answer})
        return found or None

    async def _ask(self, moderated: str | list[dict[str, Any]], *, what: str) -> list[str] | None:
        payload: dict[str, Any] = {"input": moderated}
        if self._model:
            payload["model"] = self._model
        try:
            response = await self._http.post(self.url, json=payload)
            response.raise_for_status()
            results = response.json()["results"]
            flagged = [r for r in results if r.get("flagged")]
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
            reason = (
                f"HTTP {exc.response.status_code}"
                if isinstance(exc, httpx.HTTPStatusError)
                else type(exc).__name__
            )
            if self._fail_open:
                logger.warning("moderation endpoint failed (%s); letting the %s pass", reason, what)
                return None
            raise UnavailableError(f"the moderation endpoint failed ({reason})") from exc
        if not flagged:
            return None
        categories = sorted(
            {
                str(name)
                for result in flagged
                for name, hit in (result.get("categories") or {}).items()
                if hit
            }
        )
        return categories or ["flagged"]

    async def aclose(self) -> None:
        await self._http.aclose()


class Screener:
    def __init__(self, words: WordList, moderation: ModerationClient | None = None) -> None:
        self.words = words
        self.moderation = moderation

    @classmethod
    def from_settings(cls, settings: PromptsSettings) -> Screener:
        words = WordList.load(settings.sensitive_words_file or DEFAULT_WORDS_FILE)
        moderation = None
        if settings.moderation_url:
            key = settings.moderation_api_key
            moderation = ModerationClient(
                settings.moderation_url,
                api_key=key.get_secret_value() if key else None,
                model=settings.moderation_model,
                timeout_s=settings.moderation_timeout_s,
                fail_open=settings.moderation_fail_open,
            )
        return cls(words, moderation)

    async def screen(self, text: str, *, what: str = "prompt") -> None:
        category = self.words.match(text)
        if category is not None:
            raise ContentRejectedError(
                f"the {what} was rejected by content screening (category: {category})"
            )
        if self.moderation is not None:
            flagged = await self.moderation.flagged_categories(text)
            if flagged:
                raise ContentRejectedError(
                    f"the {what} was rejected by moderation (categories: {', '.join(flagged)})"
                )

    async def aclose(self) -> None:
        if self.moderation is not None:
            await self.moderation.aclose()
