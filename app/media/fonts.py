"""Fonts for text drawn into videos (preview frames, burned-in subtitles), chosen at run time.

Pillow's built-in font has Latin glyphs only, so Chinese prompts came out as rows of empty
boxes. :func:`find_font` asks fontconfig (the ``fc-list`` / ``fc-match`` tools, present
wherever fonts are installed the Debian way) for a font that covers every character of the
text, in the system's order of preference for sans-serif; failing that, for text in Chinese,
Japanese or Korean, the preferred font for that language (a rare ideograph may then miss, the
rest is right). Text without CJK characters falls back to the best partial match, then to
Pillow's built-in font. Text that needs CJK glyphs when no CJK font is installed raises
:class:`MissingFontError` naming the package to install — never a video full of boxes.

Answers are cached per set of characters; the lookups run ``fc-*`` as subprocesses, so call
these from a worker thread (the preview renderer does) or through ``asyncio.to_thread``.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageFont

from app.errors import MediaError
from app.prompts.text import is_han

FcFont = ImageFont.FreeTypeFont | ImageFont.ImageFont

INSTALL_HINT = "install a CJK font (Debian/Ubuntu: apt-get install fonts-noto-cjk)"
_CLOSING = set("，。、！？；：）」』》〉】”’,.!?;:)]}")


class MissingFontError(MediaError):
    """No installed font can draw the text's script (raised instead of drawing boxes)."""


@dataclass(frozen=True)
class FontChoice:
    """A font file (``path`` ``None``: Pillow's built-in font) and its face index in a
    collection (``.ttc``); ``family`` is the name libass and fontconfig know it by."""

    path: Path | None
    index: int = 0
    family: str = "sans-serif"

    def load(self, size: int) -> FcFont:
        if self.path is None:
            try:
                return ImageFont.load_default(size=size)
            except (OSError, TypeError):  # Pillow without FreeType
                return ImageFont.load_default()
        return ImageFont.truetype(str(self.path), size, index=self.index)


def cjk_lang(text: str) -> str | None:
    """The fontconfig language whose fonts ``text`` needs (``zh-cn``, ``ja``, ``ko``), or
    ``None`` when Latin-script fonts will do."""
    found = None
    for ch in text:
        code = ord(ch)
        if 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
            return "ko"
        if 0x3040 <= code <= 0x30FF:
            found = "ja"
        elif found is None and (
            is_han(ch)
            or 0x3000 <= code <= 0x303F  # CJK punctuation
            or 0x3100 <= code <= 0x312F  # bopomofo
            or 0xFF00 <= code <= 0xFFEF  # full-width forms
            or 0xFE30 <= code <= 0xFE4F
        ):
            found = "zh-cn"
    return found


def _fc(tool: str, *args: str) -> list[str]:
    exe = shutil.which(tool)
    if exe is None:
        return []
    try:
        done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return (
        [line for line in done.stdout.splitlines() if line.strip()] if not done.returncode else []
    )


_FORMAT = "%{file}\t%{index}\t%{family[0]}\n"


def _ranked(pattern: str) -> list[FontChoice]:
    fonts = []
    for line in _fc("fc-match", "-s", "--format", _FORMAT, pattern):
        file, _, rest = line.partition("\t")
        index, _, family = rest.partition("\t")
        if file and index.isdigit():
            fonts.append(FontChoice(Path(file), int(index), family or "sans-serif"))
    return fonts


def _having(pattern: str) -> set[tuple[str, int]]:
    found = set()
    for line in _fc("fc-list", "--format", "%{file}\t%{index}\n", pattern):
        file, _, index = line.partition("\t")
        if index.isdigit():
            found.add((file, int(index)))
    return found


def _first(ranked: list[FontChoice], allowed: set[tuple[str, int]]) -> FontChoice | None:
    return next((f for f in ranked if (str(f.path), f.index) in allowed), None)


@functools.lru_cache(maxsize=256)
def _choose(chars: str, lang: str | None) -> FontChoice:
    charset = " ".join(f"{ord(ch):x}" for ch in chars)
    ranked = _ranked(f"sans-serif:charset={charset}") if chars else _ranked("sans-serif")
    found = _first(ranked, _having(f":charset={charset}")) if chars else None
    if found is None and lang is not None:
        found = _first(_ranked(f"sans-serif:lang={lang}"), _having(f":lang={lang}"))
        if found is None:
            script = {"ko": "Korean", "ja": "Japanese"}.get(lang, "Chinese")
            raise MissingFontError(
                f"no installed font can draw {script} text; {INSTALL_HINT}", retryable=False
            )
    if found is not None:
        return found
    return ranked[0] if ranked else FontChoice(None)


def find_font(text: str) -> FontChoice:
    """The font to draw ``text`` with (see the module docstring); ``MissingFontError`` when
    ``text`` needs CJK glyphs and no installed font has them."""
    chars = "".join(
        sorted({ch for ch in text if not ch.isspace() and unicodedata.category(ch)[0] != "C"})
    )
    return _choose(chars, cjk_lang(text))


def load_font(text: str, size: int) -> FcFont:
    """A font of ``size`` pixels able to draw ``text``."""
    return find_font(text).load(size)


def clear_cache() -> None:
    """Forget earlier answers (fonts were installed or removed while running)."""
    _choose.cache_clear()


def _units(text: str) -> list[str]:
    """Break opportunities: a CJK character stands alone, Latin words keep their spaces."""
    return re.findall(r"[\u1100-\u11ff\u2e80-\ua4cf\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]|"
                      r"[^\s\u1100-\u11ff\u2e80-\ua4cf\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]+\s*|"
                      r"\s+", text)  # fmt: skip


def wrap_text(text: str, font: FcFont, max_width: float) -> list[str]:
    """``text`` in lines no wider than ``max_width`` pixels: Latin breaks at spaces, CJK
    between characters, closing punctuation never starts a line, over-long words are cut."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for unit in _units(paragraph):
            candidate = line + unit
            alone = not line.strip()
            if alone or font.getlength(candidate.rstrip()) <= max_width:
                line = candidate
            elif unit[0] in _CLOSING:
                line = candidate  # keep 。 and , with the text they close
            else:
                lines.append(line.rstrip())
                line, alone = unit.lstrip(), True
            while alone and font.getlength(line.rstrip()) > max_width and len(line.rstrip()) > 1:
                cut = len(line) - 1  # one word wider than the line: cut it
                while cut > 1 and font.getlength(line[:cut]) > max_width:
                    cut -= 1
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line.rstrip())
    return [line for line in lines if line] or [""]
