"""``join``: normalise clips and concatenate them into one MP4, with cuts or short crossfades.

Every step is an ffmpeg run on files on disk, one or two clips at a time, so memory is that
of one small ffmpeg process whatever the number and length of the clips (a single filter
graph over all clips would hold ~100 MiB of frames per extra 720p input with ``xfade``;
``bench/long_video.py`` measures this design). Each clip is normalised the same way::

    video: scale to fit W×H, pad (letterbox), SAR 1, fps F, yuv420p,
           exactly round(duration × F) frames (the last frame held if a clip runs short)
    audio: 48 kHz stereo, padded with silence or cut to the video's length;
           silence for a clip without audio (no audio track at all when no clip has one)

The steps (each frame is encoded once):

1. per clip, its *body* — the clip without the frames that take part in a crossfade —
   encoded as its own H.264 segment (identical x264 settings, so segments concatenate);
2. per crossfade, a short segment: the tail of one clip ``xfade``-d into the head of the next
   (the tail is reached by seeking, not by decoding the whole clip again);
3. all audio in one run (audio is small): ``concat`` or ``acrossfade`` of the clips' sound;
4. the segments are concatenated without re-encoding (ffmpeg's concat demuxer, stream copy)
   and muxed with the audio, ``+faststart``.

W×H and F default to the first clip's. Every clip is cut to whole frames of F, so where each
clip starts in the result is known before ffmpeg runs: :class:`JoinResult` carries it for the
subtitles (``app.media.subtitles.shot_cues``); burned-in captions are drawn per segment on
the joined timeline. A crossfade of ``fade_s`` overlaps the end of one clip with the start of
the next, so the result is ``(n − 1) × fade_s`` shorter than the sum of the clips; it is
shortened for very short clips (at most a third of the shortest clip).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

from app.errors import MediaError, ValidationError
from app.media.ffmpeg import run_ffmpeg, scratch_dir, source_arg
from app.media.probe import MediaInfo, probe
from app.media.subtitles import burn_filter, shot_cues

Transition = Literal["cut", "fade"]
TRANSITIONS: tuple[Transition, ...] = ("cut", "fade")
DEFAULT_FADE_S = 0.5
SAMPLE_RATE = 48000
MAX_CLIPS = 64
#: How far before a crossfade's tail the transition step seeks (then decodes forward).
SEEK_MARGIN_S = 1.0


@dataclass(frozen=True, kw_only=True)
class Encoding:
    """x264/AAC settings of a join (see ``bench/long_video.py`` for their speed)."""

    preset: str = "veryfast"
    crf: int = 20
    audio_bitrate: str = "128k"
    threads: int | None = None


@dataclass(frozen=True, kw_only=True)
class JoinPlan:
    """The geometry of a join, known before ffmpeg runs."""

    width: int
    height: int
    fps: Fraction
    frames: tuple[int, ...]  # of each clip, at ``fps``
    fade_frames: int  # overlap between neighbours (0 for cuts)
    audio: tuple[bool, ...]  # which clips have audio

    @property
    def has_audio(self) -> bool:
        return any(self.audio)

    @property
    def transition(self) -> Transition:
        return "fade" if self.fade_frames else "cut"

    @property
    def fade_s(self) -> float:
        return float(self.fade_frames / self.fps)

    def start_frames(self) -> list[int]:
        """Where each clip starts in the joined video (frames)."""
        starts, at = [], 0
        for count in self.frames:
            starts.append(at)
            at += count - self.fade_frames
        return starts

    @property
    def total_frames(self) -> int:
        return sum(self.frames) - self.fade_frames * (len(self.frames) - 1)

    def seconds(self, frames: int) -> float:
        return float(Fraction(frames) / self.fps)

    def samples(self, frames: int) -> int:
        return round(frames * SAMPLE_RATE / self.fps)

    def body(self, index: int) -> tuple[int, int]:
        """Frames ``[first, end)`` of clip ``index`` outside any crossfade."""
        first = self.fade_frames if index > 0 else 0
        end = self.frames[index] - (self.fade_frames if index < len(self.frames) - 1 else 0)
        return first, end


@dataclass(frozen=True, kw_only=True)
class JoinResult:
    """The joined file and where each clip sits in it (seconds)."""

    path: Path
    width: int
    height: int
    fps: Fraction
    duration_s: float
    has_audio: bool
    transition: Transition
    fade_s: float
    starts_s: tuple[float, ...]
    clip_durations_s: tuple[float, ...]
    size: int = 0


def _even(value: float | Fraction) -> int:
    return max(2, 2 * round(value / 2))


def plan_join(
    infos: Sequence[MediaInfo],
    *,
    transition: Transition = "cut",
    fade_s: float = DEFAULT_FADE_S,
    width: int | None = None,
    height: int | None = None,
    fps: Fraction | int | None = None,
) -> JoinPlan:
    """The output geometry for clips described by ``infos`` (see the module docstring)."""
    if not infos:
        raise ValidationError("nothing to join: no clips")
    if len(infos) > MAX_CLIPS:
        raise ValidationError(f"at most {MAX_CLIPS} clips can be joined")
    if transition not in TRANSITIONS:
        raise ValidationError(f"transition must be one of {', '.join(TRANSITIONS)}")
    first = infos[0]
    rate = Fraction(fps) if fps else (first.fps or Fraction(24))
    if width is None or height is None:
        width, height = _even(first.width * first.sar), _even(first.height)
    frames = tuple(max(1, round(info.video_duration_s * rate)) for info in infos)
    fade = 0
    if transition == "fade" and len(infos) > 1 and fade_s > 0:
        fade = min(round(fade_s * rate), min(frames) // 3)
    return JoinPlan(
        width=_even(width),
        height=_even(height),
        fps=rate,
        frames=frames,
        fade_frames=fade,
        audio=tuple(info.has_audio for info in infos),
    )


def result_for(plan: JoinPlan, out: Path) -> JoinResult:
    """What joining by ``plan`` into ``out`` produces (``size`` still 0)."""
    return JoinResult(
        path=out,
        width=plan.width,
        height=plan.height,
        fps=plan.fps,
        duration_s=plan.seconds(plan.total_frames),
        has_audio=plan.has_audio,
        transition=plan.transition,
        fade_s=plan.fade_s,
        starts_s=tuple(plan.seconds(s) for s in plan.start_frames()),
        clip_durations_s=tuple(plan.seconds(f) for f in plan.frames),
    )


# --- filter chains ------------------------------------------------------------------------


def _rate(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def _sec(value: float) -> str:
    return f"{value:.6f}"


def normalise_video(plan: JoinPlan, info: MediaInfo, first: int, end: int) -> str:
    """Filters taking one clip's video to frames ``[first, end)`` at the plan's geometry
    (frame 0 being the first frame of the input as opened)."""
    w, h = plan.width, plan.height
    square = "" if info.sar == 1 else "scale=trunc(iw*sar/2)*2:ih,setsar=1,"
    return (
        f"setpts=PTS-STARTPTS,{square}scale={w}:{h}:force_original_aspect_ratio=decrease,"
        f"pad={w}:{h}:-1:-1:color=black,setsar=1,fps={_rate(plan.fps)},format=yuv420p,"
        f"tpad=stop_mode=clone:stop=-1,trim=start_frame={first}:end_frame={end},"
        "setpts=PTS-STARTPTS"
    )


def _with_burn(chain: str, burn: str | None, at_s: float) -> str:
    """``chain`` then the captions, drawn as at ``at_s`` on the joined timeline."""
    if burn is None:
        return chain
    return f"{chain},setpts=PTS+{_sec(at_s)}/TB,{burn},setpts=PTS-STARTPTS"


def audio_graph(plan: JoinPlan, inputs: dict[int, int]) -> str:
    """The audio of the join: ``inputs`` maps clip index → ffmpeg input index (clips with
    audio); the others get silence. Output label ``[aout]``."""
    chains = []
    for i, frames in enumerate(plan.frames):
        samples = plan.samples(frames)
        fmt = "aformat=sample_fmts=fltp:channel_layouts=stereo"
        if i in inputs:
            chains.append(
                f"[{inputs[i]}:a:0]asetpts=PTS-STARTPTS,aresample={SAMPLE_RATE},{fmt},"
                f"apad,atrim=end_sample={samples}[a{i}]"
            )
        else:
            chains.append(
                f"anullsrc=r={SAMPLE_RATE}:cl=stereo,atrim=end_sample={samples},{fmt}[a{i}]"
            )
    n = len(plan.frames)
    if n == 1:
        chains.append("[a0]anull[aout]")
    elif not plan.fade_frames:
        chains.append("".join(f"[a{i}]" for i in range(n)) + f"concat=n={n}:v=0:a=1[aout]")
    else:
        overlap = plan.samples(plan.fade_frames)
        sound = "[a0]"
        for i in range(1, n):
            out = "[aout]" if i == n - 1 else f"[ax{i}]"
            chains.append(f"{sound}[a{i}]acrossfade=ns={overlap}:c1=tri:c2=tri{out}")
            sound = out
    return ";".join(chains)


def encode_args(encoding: Encoding, *, audio: Literal["aac", "copy"] | None) -> list[str]:
    """Output options of a video re-encode: H.264 High, yuv420p (plus AAC or copied audio)."""
    args = ["-c:v", "libx264", "-preset", encoding.preset, "-crf", str(encoding.crf)]
    args += ["-pix_fmt", "yuv420p", "-profile:v", "high"]
    if encoding.threads:
        args += ["-threads", str(encoding.threads)]
    if audio == "aac":
        args += ["-c:a", "aac", "-b:a", encoding.audio_bitrate, "-ar", str(SAMPLE_RATE)]
    elif audio == "copy":
        args += ["-c:a", "copy"]
    return args


# --- the steps ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    what: str
    args: list[str]
    frames: int  # output frames this step encodes (for progress)


def plan_steps(
    plan: JoinPlan,
    infos: Sequence[MediaInfo],
    clips: Sequence[Path | str],
    encoding: Encoding,
    burn: str | None,
) -> tuple[list[_Step], list[str]]:
    """The ffmpeg runs of a join (in a scratch directory) and the segment files, in order."""
    steps: list[_Step] = []
    segments: list[str] = []
    starts = plan.start_frames()
    video = [*encode_args(encoding, audio=None), "-an", "-f", "mp4"]
    fade = plan.fade_frames
    n = len(clips)
    for i, (clip, info) in enumerate(zip(clips, infos, strict=True)):
        first, end = plan.body(i)
        if end > first:
            name = f"body{i}.mp4"
            at = plan.seconds(starts[i] + first)
            chain = _with_burn(normalise_video(plan, info, first, end), burn, at)
            args = ["-i", source_arg(clip), "-filter_complex", f"[0:v:0]{chain}[v]",
                    "-map", "[v]", *video, name]  # fmt: skip
            steps.append(_Step(f"clip {i + 1} of {n}", args, end - first))
            segments.append(name)
        if fade and i < n - 1:
            # The tail of clip i (seek to a whole frame a little before it) into the head of
            # clip i + 1 (read no further than needed).
            tail_first = plan.frames[i] - fade
            skip = max(0, tail_first - math.floor(SEEK_MARGIN_S * plan.fps))
            tail = normalise_video(plan, info, tail_first - skip, plan.frames[i] - skip)
            head = normalise_video(plan, infos[i + 1], 0, fade)
            xfade = f"[t][h]xfade=transition=fade:duration={_sec(plan.fade_s)}:offset=0"
            mixed = _with_burn(xfade, burn, plan.seconds(starts[i + 1]))
            name = f"fade{i}.mp4"
            args = ["-ss", _sec(plan.seconds(skip)), "-i", source_arg(clip),
                    "-t", _sec(plan.seconds(fade) + SEEK_MARGIN_S), "-i", source_arg(clips[i + 1]),
                    "-filter_complex", f"[0:v:0]{tail}[t];[1:v:0]{head}[h];{mixed}[v]",
                    "-map", "[v]", *video, name]  # fmt: skip
            steps.append(_Step(f"crossfade {i + 1} of {n - 1}", args, fade))
            segments.append(name)
    if plan.has_audio:
        inputs: dict[int, int] = {}
        args = []
        for i, clip in enumerate(clips):
            if plan.audio[i]:
                inputs[i] = len(inputs)
                args += ["-vn", "-i", source_arg(clip)]
        args += ["-filter_complex", audio_graph(plan, inputs), "-map", "[aout]",
                 "-c:a", "aac", "-b:a", encoding.audio_bitrate, "-ar", str(SAMPLE_RATE),
                 "-f", "mp4", "audio.m4a"]  # fmt: skip
        steps.append(_Step("audio", args, 0))
    return steps, segments


async def join(
    clips: Sequence[Path | str],
    out: Path,
    *,
    transition: Transition = "cut",
    fade_s: float = DEFAULT_FADE_S,
    width: int | None = None,
    height: int | None = None,
    fps: Fraction | int | None = None,
    captions: Sequence[str] | None = None,
    encoding: Encoding | None = None,
    infos: Sequence[MediaInfo] | None = None,
    on_progress: Callable[[float], None] | None = None,
    timeout_s: float | None = None,
) -> JoinResult:
    """Join ``clips`` (files, or URLs ffmpeg can read) into ``out``, written atomically.

    ``captions`` (one text per clip) are burned in, timed like ``shot_cues``. ``infos``
    skips probing clips already probed. ``on_progress`` gets the fraction done (0–1) after
    each step. ``timeout_s`` bounds each ffmpeg run (default: generous for the length).
    ``MediaError`` when a clip cannot be read or ffmpeg fails; ``ValidationError`` for a
    bad ``transition``, no clips, or a caption count that does not match.
    """
    if infos is None:
        infos = await asyncio.gather(*(probe(clip) for clip in clips))
    if len(infos) != len(clips):
        raise ValidationError("one MediaInfo per clip is needed")
    if captions is not None and len(captions) != len(clips):
        raise ValidationError("one caption per clip is needed")
    plan = plan_join(
        infos, transition=transition, fade_s=fade_s, width=width, height=height, fps=fps
    )
    result = result_for(plan, out)
    limit = timeout_s if timeout_s is not None else 120 + 10 * result.duration_s
    part = out.with_name(f".{out.name}.part")
    async with scratch_dir(out.parent, ".join-") as work:
        burn = None
        if captions is not None:
            cues = shot_cues(result, captions)
            burn = await asyncio.to_thread(burn_filter, cues, work, plan.width, plan.height)
        steps, segments = plan_steps(plan, infos, clips, encoding or Encoding(), burn)
        total = plan.total_frames + len(steps)
        done = 0
        for step in steps:
            await run_ffmpeg(
                ["-v", "error", *step.args], what=f"joining: {step.what}", timeout_s=limit, cwd=work
            )
            done += step.frames + 1
            if on_progress is not None:
                on_progress(min(0.99, done / total))
        listing = "".join(f"file '{name}'\n" for name in segments)
        await asyncio.to_thread((work / "segments.txt").write_text, listing, encoding="utf-8")
        sound = ["-i", "audio.m4a"] if plan.has_audio else []
        maps = ["-map", "0:v:0", "-map", "1:a:0"] if plan.has_audio else ["-map", "0:v:0"]
        try:
            await run_ffmpeg(
                ["-v", "error", "-f", "concat", "-safe", "0", "-i", "segments.txt", *sound,
                 *maps, "-c", "copy", "-movflags", "+faststart", "-f", "mp4",
                 "file:" + str(part.resolve())],
                what="joining: writing the video",
                timeout_s=limit,
                cwd=work,
            )  # fmt: skip
            size = await asyncio.to_thread(os.path.getsize, part)
            if size == 0:
                raise MediaError("joining produced an empty file", retryable=False)
            await asyncio.to_thread(os.replace, part, out)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(part.unlink, missing_ok=True))
            raise
    if on_progress is not None:
        on_progress(1.0)
    return dataclasses.replace(result, size=size)
