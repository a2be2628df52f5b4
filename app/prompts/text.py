"""Pure text helpers: the prompt's language, cleaning an LLM's answer, trimming to a limit."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

Lang = Literal["en", "zh"]

SENTENCE_ENDS = "。！？!?.…"
_CLOSERS = "\"'”’」』）)】]"
_CLAUSE_ENDS = "，,；;：:、"


def is_han(ch: str) -> bool:
    """A Chinese character (CJK unified ideographs, extensions and compatibility forms)."""
    code = ord(ch)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0xF900 <= code <= 0xFAFF
        or 0x20000 <= code <= 0x3FFFF
    )


def prompt_language(text: str) -> Lang:
    """``zh`` when Chinese characters carry the text (one character weighs about a short word)."""
    han = sum(1 for ch in text if is_han(ch))
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    return "zh" if han and han * 3 >= latin else "en"


# --- cleaning an LLM's answer ------------------------------------------------------------------

_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_FENCE = re.compile(r"```[^\n`]*\n?(.*?)```", re.S)
_LEAD = (
    r"(?:sure|certainly|of course|okay|ok|absolutely|great|"
    r"好的|当然|没问题|可以)[!,.！，。～~ ]*"
)
_LABEL = re.compile(
    rf"^(?:{_LEAD})?"
    r"(?:here(?:'s| is| are)[^:：\n]{0,80}|below is[^:：\n]{0,80}|"
    r"以下是[^:：\n]{0,40}|下面是[^:：\n]{0,40}|这是[^:：\n]{0,40}|"
    r"(?:the )?(?:expanded |enhanced |improved |optimi[sz]ed |final |detailed )?"
    r"(?:video )?prompt|"
    r"(?:扩写|优化|改写)后的(?:视频)?提示词|(?:视频)?提示词|扩写结果|输出|output|answer|答案)"
    r"\s*[:：]\s*",
    re.I,
)
_PREAMBLE = re.compile(
    rf"^(?:{_LEAD}$|{_LEAD}(?:here|below|i'?ve|i have|以下|下面|这是|我)|"
    r"here(?:'s| is| are)|below is|以下是|下面是)",
    re.I,
)
_CHATTER = re.compile(
    r"^[(（]?(?:let me know|i hope|hope this|feel free|if you(?:'d| would)? like|note[:：]|"
    r"希望|如需|如果需要|如果您|注[:：]|备注|说明[:：])",
    re.I,
)
_BULLET = re.compile(r"^(?:[-*•·]\s+|\d{1,2}[.)、]\s*|#{1,6}\s+)")
_QUOTES = (
    ('"', '"'),
    ("'", "'"),
    ("“", "”"),
    ("‘", "’"),
    ("「", "」"),
    ("『", "』"),
    ("`", "`"),
    ("«", "»"),
)
_REFUSAL = re.compile(
    r"^(?:(?:i'?m sorry|i am sorry|i apologi[sz]e|i can(?:'|no)?t|"
    r"i(?:'m| am) (?:not able|unable)|i won'?t|as an ai|unfortunately,? i)\b|sorry[,.!]|"
    r"抱歉|对不起|很抱歉|不好意思|我无法|我不能|我没法|作为一个?(?:ai|人工智能|语言模型|助手))",
    re.I,
)


def _unwrap_quotes(text: str) -> str:
    changed = True
    while changed and len(text) >= 2:
        changed = False
        for left, right in _QUOTES:
            inner = text[len(left) : -len(right)]
            wrapped = text.startswith(left) and text.endswith(right)
            if wrapped and left not in inner and right not in inner:
                text, changed = inner.strip(), True
                break
    return text


def _join(lines: list[str]) -> str:
    out = ""
    for line in lines:
        if out and not out.endswith(tuple("。！？；，：、")):
            out += " "
        out += line
    return out


def clean_answer(raw: str) -> str:
    """The prompt inside an LLM's answer: no reasoning, fences, preambles, labels or quotes."""
    text = _THINK.sub("", raw.replace("\r\n", "\n"))
    if re.match(r"\s*<think>", text, re.I):  # reasoning that never ended: no answer
        return ""
    fence = _FENCE.search(text)
    if fence:
        text = fence.group(1)
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    while len(lines) > 1 and (
        (lines[0].endswith((":", "：")) and len(lines[0]) <= 80)
        or (_PREAMBLE.match(lines[0]) and len(lines[0]) <= 120)
    ):
        lines.pop(0)
    while len(lines) > 1 and _CHATTER.match(lines[-1]):
        lines.pop()
    text = _join([_BULLET.sub("", line).strip() for line in lines]).replace("**", "")
    for _ in range(3):
        before = text
        text = _unwrap_quotes(_LABEL.sub("", text, count=1).strip())
        if text == before:
            break
    return re.sub(r"[ \t\u3000]+", " ", text).strip()


def looks_like_refusal(text: str) -> bool:
    return bool(_REFUSAL.match(text.replace("’", "'").strip()))


# --- trimming --------------------------------------------------------------------------------


def _sentence_cut(text: str, limit: int) -> int:
    """End (exclusive) of the last complete sentence within ``limit`` characters; 0 if none."""
    best = 0
    for i in range(min(len(text), limit)):
        ch = text[i]
        if ch not in SENTENCE_ENDS:
            continue
        nxt = text[i + 1] if i + 1 < len(text) else ""
        # "3.5", "e.g.x" and "v1.2" are not sentence ends; ". " and ".”" and ".中" are.
        if ch == "." and nxt and not (nxt.isspace() or nxt in _CLOSERS or is_han(nxt)):
            continue
        end = i + 1
        while end < len(text) and end < limit and text[end] in _CLOSERS:
            end += 1
        best = end
    return best


def _clause_cut(text: str, limit: int) -> int:
    """Start of the last clause break or space within ``limit`` characters; 0 if none."""
    for i in range(min(len(text), limit) - 1, 0, -1):
        if text[i] in _CLAUSE_ENDS or text[i].isspace():
            return i
    return 0


def trim_prompt(text: str, max_chars: int) -> str:
    """At most ``max_chars`` characters, never cut mid-sentence when it can be helped.

    Cut after the last sentence end (。！？.!?) within the limit; when that would drop more than
    half of the allowance, cut at the last clause break or space instead and close the
    sentence; a hard cut only for text without any break (long unpunctuated Chinese).
    """
    text = text.strip()
    if len(text) <= max_chars:
        return text
    if max_chars <= 0:
        return ""
    floor = max_chars // 2
    sentence = _sentence_cut(text, max_chars)
    if sentence >= floor:
        return text[:sentence].rstrip()
    terminator = "。" if prompt_language(text) == "zh" else "."
    room = max_chars - 1
    clause = _clause_cut(text, room + 1)
    if clause >= floor:
        body = text[:clause]
    elif sentence > 0:
        return text[:sentence].rstrip()
    else:
        body = text[:room]
    body = body.rstrip(" \t\n" + _CLAUSE_ENDS + "-—–")
    return body + terminator


def sentence(text: str, lang: Lang) -> str:
    """``text`` ending on a sentence mark (``。`` for Chinese, ``.`` otherwise)."""
    text = text.strip().rstrip("，,;；:：")
    end = "。" if lang == "zh" else "."
    return text if text.endswith(("。", "！", "？", ".", "!", "?")) else text + end


def compose(core: str, extras: list[str], lang: Lang, max_chars: int) -> str:
    """``core`` followed by ``extras`` (style, framing), trimming the core first so that the
    extras survive a tight limit."""
    sep = "，" if lang == "zh" else ", "
    tail = sep.join(e.strip() for e in extras if e.strip())
    core = core.strip().rstrip("。.!！?？,，")
    full = sentence(core + (sep + tail if tail else ""), lang)
    if len(full) <= max_chars or not tail:
        return trim_prompt(full, max_chars)
    budget = max_chars - len(sep) - len(sentence(tail, lang))
    if budget < max_chars // 2:
        return trim_prompt(full, max_chars)
    short = trim_prompt(core, budget).rstrip("。.!！?？,，")
    return trim_prompt(sentence(short + sep + tail, lang), max_chars)


# --- JSON answers ----------------------------------------------------------------------------

_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def parse_json_answer(raw: str) -> Any:
    """The JSON object or list in an LLM's answer, or ``None``.

    Models wrap JSON in reasoning, code fences or a sentence, and some leave a trailing comma;
    this takes the outermost ``{…}`` (or ``[…]``) after removing ``<think>`` blocks and fences,
    and retries once without trailing commas.
    """
    text = _THINK.sub("", raw.replace("\r\n", "\n"))
    fence = _FENCE.search(text)
    if fence:
        text = fence.group(1)
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return None
    start = min(starts)
    end = text.rfind("}" if text[start] == "{" else "]")
    if end <= start:
        return None
    candidate = text[start : end + 1]
    for attempt in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
        try:
            return json.loads(attempt)
        except ValueError:
            continue
    return None
