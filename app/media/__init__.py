"""Everything that runs ffmpeg, one module per job; the binary runs off the event loop.

::

    ffmpeg.py      run_ffmpeg: the one subprocess helper (timeout, bounded stderr → MediaError,
                   URLs and temp paths redacted), scratch_dir
    probe.py       probe(src) -> MediaInfo: duration, size, fps, frames, audio
    thumbnail.py   thumbnail(src, out) -> Path: a representative poster frame (JPEG/WebP/PNG)
    frames.py      last_frame(src, out) -> Path (chaining shots), sample_frames(src, n)
    join.py        join(clips, out, transition=cut|fade) -> JoinResult: normalise + concatenate
    subtitles.py   shot_cues(result, texts), to_webvtt(cues), burn_subtitles(src, cues, out)
    fonts.py       find_font(text): a font that can draw the text (CJK via fontconfig)
    files.py       store_file(storage, key, path): stream a result into any Storage
    moderation.py  OutputScreen: sampled frames → the moderation endpoint, before publishing

Sources may be local files or URLs ffmpeg can read (signed storage URLs never appear in
errors). Every failure is a :class:`~app.errors.MediaError` (500 ``media_error``; retryable
after a timeout), or ``ValidationError`` for bad arguments.
"""

from app.media.files import store_file
from app.media.fonts import MissingFontError, find_font
from app.media.frames import last_frame, sample_frames
from app.media.join import DEFAULT_FADE_S, Encoding, JoinResult, Transition, join
from app.media.probe import MediaInfo, probe
from app.media.subtitles import Cue, burn_subtitles, shot_cues, to_webvtt
from app.media.thumbnail import thumbnail

__all__ = [
    "DEFAULT_FADE_S",
    "Cue",
    "Encoding",
    "JoinResult",
    "MediaInfo",
    "MissingFontError",
    "Transition",
    "burn_subtitles",
    "find_font",
    "join",
    "last_frame",
    "probe",
    "sample_frames",
    "shot_cues",
    "store_file",
    "thumbnail",
    "to_webvtt",
]
