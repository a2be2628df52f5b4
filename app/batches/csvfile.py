"""CSV files as spreadsheets save them, in and out.

Reading: UTF-8 with or without a BOM (Excel's "CSV UTF-8"), GB18030 (Excel's "CSV" on a Chinese
Windows; GBK and GB2312 are subsets), UTF-16 with a BOM ("Unicode text"); CRLF or LF line ends;
comma, semicolon (Excel in many European locales) or tab as the separator, guessed from the
header line. The header names request fields: ``prompt``, ``aspect_ratio``, …, plus
``metadata.<key>`` (a string in the task's metadata) and ``options.<key>`` (a provider option;
``true``/``false``/numbers/JSON are read as such). Unknown columns are refused by name.

Each data row becomes a request body, validated like ``POST /v1/tasks``; a row that fails keeps
its reason and fails alone. Writing: UTF-8 with a BOM and CRLF, so Excel opens it as it is.

Hand-written on the standard ``csv`` module: the work here is the spreadsheet conventions
(encodings, separators, dotted columns), which no CSV library decides for us.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from app.api.schemas import VideoCreate
from app.errors import BadRequestError

#: Request fields a column may name (variants and waiting make no sense per row).
FIELDS = tuple(name for name in VideoCreate.model_fields if name not in ("n", "styles", "wait_s"))
PREFIXES = ("metadata.", "options.")
SEPARATORS = (",", ";", "\t")
_CONTROL = {chr(c) for c in range(32)} - {"\t", "\n", "\r"}


@dataclass(frozen=True)
class Row:
    """One data row: its cells as written, and the request body or why there is none."""

    index: int  # 0-based among the data rows, in file order
    cells: list[str]
    body: dict[str, Any] | None
    error: str | None


@dataclass(frozen=True)
class Sheet:
    columns: list[str]
    rows: list[Row]
    encoding: str


def decode(data: bytes) -> tuple[str, str]:
    """The text of a CSV file and the encoding it was read with; 400 when it is not text."""
    if data.startswith(b"PK\x03\x04"):
        raise BadRequestError(
            "this is an Excel workbook (.xlsx), not a CSV: save it as CSV (UTF-8)", param="file"
        )
    candidates: list[str]
    if data.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8", "gb18030"]
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _CONTROL.intersection(text[:65536]):
            break  # binary: NULs and control characters do not occur in a spreadsheet's CSV
        return text, encoding
    raise BadRequestError(
        "the file is not a text CSV in UTF-8, GB18030 or UTF-16 (save it as CSV UTF-8)",
        param="file",
    )


def _separator(header_line: str) -> str:
    counts = {sep: header_line.count(sep) for sep in SEPARATORS}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _column(name: str) -> str:
    """Field names are case-insensitive; a metadata/options key keeps its own spelling."""
    name = name.strip()
    head, dot, key = name.partition(".")
    return head.lower() + dot + key


def check_columns(columns: Sequence[str]) -> None:
    """A header must name ``prompt`` and only known fields, each once."""
    unknown = [
        name
        for name in columns
        if name not in FIELDS and not (name.startswith(PREFIXES) and name.partition(".")[2])
    ]
    if unknown:
        raise BadRequestError(
            f"unknown column(s): {', '.join(repr(n) for n in unknown)}; columns name request "
            f"fields ({', '.join(FIELDS)}) or metadata.<key> / options.<key>",
            param="file",
        )
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise BadRequestError(f"column {name!r} appears twice", param="file")
        seen.add(name)
    if "prompt" not in seen:
        raise BadRequestError("the header has no 'prompt' column", param="file")


def _option_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def row_body(columns: Sequence[str], cells: Sequence[str]) -> dict[str, Any]:
    """The request body a row asks for (empty cells are left out)."""
    body: dict[str, Any] = {}
    for name, cell in zip(columns, cells, strict=False):
        value = cell.strip()
        if not value:
            continue
        if name.startswith("metadata."):
            body.setdefault("metadata", {})[name.partition(".")[2]] = value
        elif name.startswith("options."):
            body.setdefault("options", {})[name.partition(".")[2]] = _option_value(value)
        elif name == "callback_events":
            body[name] = [word for word in value.replace(",", " ").split() if word]
        elif name in ("metadata", "options"):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = value  # validation says it must be an object
            existing = body.get(name)
            body[name] = {**parsed, **existing} if isinstance(existing, dict) else parsed
        else:
            body[name] = value
    return body


def _reason(exc: PydanticValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "row"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def validated(body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(the body as ``POST /v1/tasks`` would store it, None) or (None, why not)."""
    try:
        model = VideoCreate.model_validate(body)
    except PydanticValidationError as exc:
        return None, _reason(exc)
    return model.model_dump(exclude_none=True, exclude={"n", "styles"}), None


def parse(data: bytes, *, max_rows: int) -> Sheet:
    """Read an uploaded CSV; 400 for a file that cannot be a batch (each row is judged alone)."""
    text, encoding = decode(data)
    text = text.lstrip("\ufeff")
    lines = text.splitlines()
    header_line = next((line for line in lines if line.strip()), "")
    if not header_line:
        raise BadRequestError("the file is empty: the first line names the columns", param="file")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_separator(header_line))
    try:
        records = [record for record in reader]
    except csv.Error as exc:
        raise BadRequestError(f"not a valid CSV file: {exc}", param="file") from None
    records = [record for record in records if any(cell.strip() for cell in record)]
    columns = [_column(name) for name in records[0]]
    while columns and not columns[-1]:
        columns.pop()  # Excel writes trailing separators for empty columns
    check_columns(columns)
    data_rows = records[1:]
    if not data_rows:
        raise BadRequestError("the file has a header but no rows", param="file")
    if len(data_rows) > max_rows:
        raise BadRequestError(
            f"the file has {len(data_rows)} rows; a batch takes at most {max_rows}", param="file"
        )
    rows = []
    for index, record in enumerate(data_rows):
        extra = [cell for cell in record[len(columns) :] if cell.strip()]
        cells = record[: len(columns)] + [""] * (len(columns) - len(record))
        if extra:
            rows.append(
                Row(
                    index,
                    cells,
                    None,
                    f"the row has {len(record)} cells, the header {len(columns)}",
                )
            )
            continue
        body, error = validated(row_body(columns, cells))
        rows.append(Row(index, cells, body, error))
    return Sheet(columns=columns, rows=rows, encoding=encoding)


RESULT_COLUMNS = ("task_id", "status", "video_url", "error")


def write(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A CSV for spreadsheets: UTF-8 with a BOM, CRLF line ends."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if cell is None else cell for cell in row])
    return codecs.BOM_UTF8 + out.getvalue().encode("utf-8")
