"""Subtitles: one cue per shot, as WebVTT for players and burned into the picture on request.

Timing follows the joined video (:class:`~app.media.join.JoinResult`): a cue shows while its
shot is on screen; across a crossfade the next cue takes over halfway through the overlap,
so cues never overlap and never leave a gap.

Burning in uses the bundled ffmpeg's ``ass`` filter (libass: shaping, outline, line layout).
The cues are written as an ASS script whose style names the font :mod:`app.media.fonts`
chose for the text — a CJK font for Chinese — and that font file is handed to libass through
``fontsdir``, so what is burned in is the same font the gateway checked, not whatever libass's
own fallback finds (or boxes). Lines are wrapped beforehand with that font's metrics, since
libass only breaks lines at spaces and Chinese has none.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import ValidationError
from app.media.ffmpeg import run_ffmpeg, scratch_dir, source_arg
from app.media.fonts import find_font, wrap_text
from app.media.probe import probe

if TYPE_CHECKING:
    from app.media.join import JoinResult


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str


def shot_cues(joined: JoinResult, texts: Sequence[str]) -> list[Cue]:
    """One cue per clip of ``joined``, switching halfway through each crossfade."""
    if len(texts) != len(joined.starts_s):
        raise ValidationError("one subtitle text per shot is needed")
    half = joined.fade_s / 2
    n = len(texts)
    cues = []
    for i, text in enumerate(texts):
        start = 0.0 if i == 0 else joined.starts_s[i] + half
        end = joined.duration_s if i == n - 1 else joined.starts_s[i + 1] + half
        cues.append(Cue(round(start, 3), round(end, 3), text.strip()))
    return cues


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _vtt_text(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    body = "\n".join(lines) or " "
    # Escaping ">" also keeps "-->" (the timing arrow) out of cue text.
    return body.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_webvtt(cues: Sequence[Cue]) -> str:
    """A WebVTT file: numbered cues, HTML-special characters escaped, no empty lines inside."""
    parts = ["WEBVTT", ""]
    for number, cue in enumerate(cues, start=1):
        parts += [str(number), f"{_vtt_time(cue.start_s)} --> {_vtt_time(cue.end_s)}"]
        parts += [_vtt_text(cue.text), ""]
    return "\n".join(parts)


# --- burning in --------------------------------------------------------------------------


def _ass_time(seconds: float) -> str:
    cs = round(seconds * 100)
    return f"{cs // 360_000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


def _ass_text(lines: list[str]) -> str:
    safe = [line.replace("\\", "＼").replace("{", "｛").replace("}", "｝") for line in lines]
    return r"\N".join(safe)


def ass_script(cues: Sequence[Cue], width: int, height: int) -> tuple[str, Path | None]:
    """The ASS script for ``cues`` on a ``width``×``height`` video and the font file it
    names. Runs fontconfig: call it off the event loop."""
    font = find_font("".join(cue.text for cue in cues) or "A")
    size = max(12, round(min(width, height) * 0.06))
    margin = max(8, round(width * 0.05))
    bottom = max(8, round(height * 0.06))
    outline = max(1, math.ceil(size / 16))
    metrics = font.load(size)
    family = font.family.replace(",", " ")
    lines = [
        "[Script Info]",
        "ScriptType: v4.00+",
        f"PlayResX: {width}",
        f"PlayResY: {height}",
        "WrapStyle: 2",  # we break lines ourselves
        "ScaledBorderAndShadow: yes",
        "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
        "BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, "
        "BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding",
        f"Style: Default,{family},{size},&H00FFFFFF,&H000000FF,&H00000000,&H80000000,"
        f"0,0,0,0,100,100,0,0,1,{outline},0,2,{margin},{margin},{bottom},1",
        "",
        "[Events]",
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
    ]
    for cue in cues:
        if not cue.text.strip() or cue.end_s <= cue.start_s:
            continue
        wrapped = wrap_text(cue.text.strip(), metrics, (width - 2 * margin) * 0.92)[:3]
        lines.append(
            f"Dialogue: 0,{_ass_time(cue.start_s)},{_ass_time(cue.end_s)},Default,,0,0,0,,"
            + _ass_text(wrapped)
        )
    return "\n".join(lines) + "\n", font.path


def burn_filter(cues: Sequence[Cue], work: Path, width: int, height: int) -> str:
    """Write the ASS script (and a link to its font) into ``work``; return the filter that
    burns it in. ``work`` must be ffmpeg's working directory. Runs in a thread."""
    script, font_path = ass_script(cues, width, height)
    (work / "subs.ass").write_text(script, encoding="utf-8")
    fonts = work / "fonts"
    fonts.mkdir(exist_ok=True)
    if font_path is not None:
        os.symlink(font_path, fonts / ("font" + font_path.suffix.lower()))
    return "ass=filename=subs.ass:fontsdir=fonts"


async def burn_subtitles(
    source: Path | str, cues: Sequence[Cue], out: Path, *, timeout_s: float | None = None
) -> Path:
    """Re-encode ``source`` into ``out`` with ``cues`` burned in (audio copied as is)."""
    from app.media.join import Encoding, encode_args

    info = await probe(source)
    part = out.with_name(f".{out.name}.part")
    limit = timeout_s if timeout_s is not None else 120 + 10 * info.duration_s
    async with scratch_dir(out.parent, "subs-") as work:
        burn = await asyncio.to_thread(burn_filter, cues, work, info.width, info.height)
        try:
            await run_ffmpeg(
                ["-v", "error", "-i", source_arg(source), "-map", "0:v:0", "-map", "0:a?",
                 "-vf", burn, *encode_args(Encoding(), audio="copy"),
                 "-movflags", "+faststart", "-f", "mp4",
                 "file:" + str(part.resolve())],
                what="burning in subtitles",
                timeout_s=limit,
                cwd=work,
            )  # fmt: skip
            await asyncio.to_thread(os.replace, part, out)
        except BaseException:
            await asyncio.to_thread(part.unlink, missing_ok=True)
            raise
    return out
