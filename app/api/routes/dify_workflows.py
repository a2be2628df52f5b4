"""``/dify/workflows``: the Dify DSL files this project ships, with the gateway's URL filled in.

The files (``dify_workflow.yml`` and ``dify/*.yml`` at the top of the project) declare two
environment variables: ``GATEWAY_BASE_URL`` and the secret ``GATEWAY_TOKEN``. A download here
sets the first to ``base_url`` (default: this gateway's public base URL) and leaves the token
blank, so a file is safe to pass around and the secret is set in Dify after importing. Served
without auth, like ``/dify/openapi.json``: a browser link cannot send a bearer header, and the
files hold nothing secret.

The base URL is written into the text rather than by loading and dumping the YAML, so the
file keeps its comments, key order and quoting byte for byte everywhere else.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.api.deps import SettingsDep
from app.api.schemas import error_responses
from app.errors import NotFoundError

router = APIRouter(prefix="/dify/workflows", tags=["dify"])

PROJECT_DIR = Path(__file__).resolve().parents[3]
BASE_URL_VARIABLE = "GATEWAY_BASE_URL"

BaseUrl = Annotated[
    str | None,
    Query(
        max_length=300,
        # No quotes, spaces, query or fragment: the value is written into YAML as is.
        pattern=r"^https?://[A-Za-z0-9._~:/\[\]@%+-]+$",
        description="The gateway's root URL as Dify's containers reach it (default: this "
        "gateway's public base URL).",
    ),
]


class DifyWorkflow(BaseModel):
    filename: str = Field(description="Download it from /dify/workflows/{filename}.")
    name: str
    mode: str = Field(description="workflow or advanced-chat (chatflow).")
    description: str
    takes_base_url: bool = Field(
        description="The download fills in the gateway URL (false: the file reaches the gateway "
        "through the Dify plugin, whose credentials hold it)."
    )


class DifyWorkflowList(BaseModel):
    data: list[DifyWorkflow]


def workflow_files(project_dir: Path = PROJECT_DIR) -> dict[str, Path]:
    """The shipped DSL files by download name."""
    paths = [project_dir / "dify_workflow.yml", *sorted((project_dir / "dify").glob("*.yml"))]
    return {path.name: path for path in paths if path.is_file()}


@functools.cache
def _describe(path: Path) -> dict[str, Any]:
    app = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("app") or {}
    return {
        "filename": path.name,
        "name": str(app.get("name") or path.stem),
        "mode": str(app.get("mode") or "workflow"),
        "description": " ".join(str(app.get("description") or "").split()),
        "takes_base_url": _base_url_line(path.read_text(encoding="utf-8").splitlines()) is not None,
    }


def _base_url_line(lines: list[str]) -> int | None:
    stripped = (line.strip(" -\r\n") for line in lines)
    return next(
        (i for i, line in enumerate(stripped) if line == f"name: {BASE_URL_VARIABLE}"), None
    )


def with_base_url(text: str, base_url: str) -> str:
    """``text`` with the ``GATEWAY_BASE_URL`` environment variable's value set to ``base_url``;
    unchanged when the file has none (the plugin workflow: its tool's credentials hold it)."""
    lines = text.splitlines(keepends=True)
    name_at = _base_url_line(lines)
    if name_at is None:
        return text
    column = lines[name_at].index("name:")  # where this list item's keys start

    def key_at_column(line: str, key: str) -> bool:
        return line[column:].startswith(key) and line[:column].strip(" -") == ""

    start = name_at  # back to the item's "- " (unless "- name:" opens it)
    while start > 0 and lines[start][column - 2 : column] != "- ":
        start -= 1
    end = name_at + 1  # on to the first line indented less than the item's keys
    while (
        end < len(lines)
        and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip(" -")) >= column)
        and lines[end][column - 2 : column] != "- "
    ):
        end += 1
    for at in range(start, end):
        if key_at_column(lines[at], "value:"):
            newline = "\r\n" if lines[at].endswith("\r\n") else "\n"
            lines[at] = f"{lines[at][:column]}value: '{base_url}'{newline}"
            return "".join(lines)
    raise ValueError(f"the {BASE_URL_VARIABLE} environment variable has no value key")


@router.get("", response_model=DifyWorkflowList)
async def list_workflows() -> dict[str, Any]:
    """The Dify apps (DSL files) this gateway ships."""
    files = workflow_files()
    data = await asyncio.to_thread(lambda: [_describe(path) for path in files.values()])
    return {"data": data}


@router.get("/{filename}", response_class=Response, responses=error_responses(404, 422))
async def download_workflow(
    filename: str, settings: SettingsDep, base_url: BaseUrl = None
) -> Response:
    """A DSL file with ``GATEWAY_BASE_URL`` filled in (``GATEWAY_TOKEN`` left to set in Dify)."""
    path = workflow_files().get(filename)
    if path is None:
        raise NotFoundError(f"no Dify workflow {filename!r}; GET /dify/workflows lists them")
    text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    body = with_base_url(text, (base_url or settings.server.base_url()).rstrip("/"))
    return Response(
        body.encode(),
        media_type="application/x-yaml; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
