"""CSV batches end to end: spreadsheet encodings, bad rows, bounded feeding, results, restarts."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from tests.conftest import GatewayFactory, LiveGateway, eventually
from tests.emulators.server import serve_in_thread
from tests.fakes import ControlledProvider

CONCURRENCY = {"batches": {"concurrency": 2}}


def excel_csv(rows: list[list[str]], *, encoding: str = "utf-8-sig") -> bytes:
    """What Excel writes: CRLF line ends; "CSV UTF-8" adds a BOM, Chinese "CSV" is GB18030."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode(encoding)


def upload(gw: LiveGateway, data: bytes, name: str = "ideas.csv") -> httpx.Response:
    return gw.client.post("/v1/batches", files={"file": (name, data, "text/csv")})


def results(gw: LiveGateway, batch_id: str) -> tuple[bytes, list[list[str]]]:
    response = gw.client.get(f"/v1/batches/{batch_id}/results.csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    raw = response.content
    return raw, list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def wait_batch(gw: LiveGateway, batch_id: str, until: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def check() -> bool:
        nonlocal found
        found = gw.client.get(f"/v1/batches/{batch_id}").json()
        return bool(until(found))

    eventually(check, rounds=600)
    return found


def batch_tasks(gw: LiveGateway, batch_id: str) -> list[dict[str, Any]]:
    listed = gw.client.get("/v1/tasks", params={"group_id": batch_id, "limit": 100})
    data: list[dict[str, Any]] = listed.json()["data"]
    return data


@pytest.fixture
def fake() -> ControlledProvider:
    return ControlledProvider()


@pytest.fixture
def gateway(gateway_factory: GatewayFactory, fake: ControlledProvider) -> Iterator[LiveGateway]:
    with gateway_factory(CONCURRENCY, extra_providers={"fake": fake}) as gateway:
        yield gateway
    fake.release()


SHEET = [
    ["prompt", "aspect_ratio", "duration_ms", "provider", "metadata.customer"],
    ["a red kite over the sea", "9:16", "3000", "fake", "acme"],
    ["", "16:9", "3000", "fake", "blank prompt"],
    ["a lighthouse at dusk", "5:4", "3000", "fake", "bad ratio"],
    ["a bakery at dawn", "1:1", "soon", "fake", "bad duration"],
    ["a cat on a piano", "", "", "fake", "defaults"],
    ["a paper boat", "16:9", "2000", "fake", ""],
    ["snow on a bamboo forest", "4:3", "4000", "fake", "last"],
]


def test_an_excel_utf8_bom_crlf_sheet_runs_two_at_a_time_and_results_keep_the_order(
    gateway: LiveGateway, fake: ControlledProvider
) -> None:
    created = upload(gateway, excel_csv(SHEET))
    assert created.status_code == 202, created.text
    batch = created.json()
    assert batch["id"].startswith("vb_") and batch["status"] == "running"
    assert batch["counts"]["total"] == 7 and batch["counts"]["failed"] == 3
    assert batch["columns"] == SHEET[0]
    assert batch["results_url"] == f"{gateway.base_url}/v1/batches/{batch['id']}/results.csv"

    # Bounded: the fake holds every job, so exactly two of the four valid rows have tasks.
    eventually(lambda: len(fake.submits) == 2)
    held = wait_batch(gateway, batch["id"], lambda b: b["counts"]["running"] == 2)
    assert held["counts"] == {
        "total": 7, "queued": 2, "running": 2, "succeeded": 0, "failed": 3, "cancelled": 0,
    }  # fmt: skip
    assert len(batch_tasks(gateway, batch["id"])) == 2

    fake.release()
    done = wait_batch(gateway, batch["id"], lambda b: b["status"] != "running")
    assert done["status"] == "completed" and done["finished_at"] is not None
    assert done["counts"]["succeeded"] == 4 and done["counts"]["failed"] == 3
    assert len(fake.submits) == 4  # one provider job per valid row

    raw, sheet = results(gateway, batch["id"])
    assert raw.startswith(codecs.BOM_UTF8) and b"\r\n" in raw
    assert sheet[0] == [*SHEET[0], "task_id", "status", "video_url", "error"]
    assert [row[:5] for row in sheet[1:]] == SHEET[1:]  # the input, in order
    by_prompt = {row[0]: row for row in sheet[1:]}
    assert [row[6] for row in sheet[1:]] == [
        "succeeded", "failed", "failed", "failed", "succeeded", "succeeded", "succeeded",
    ]  # fmt: skip
    assert "prompt" in sheet[2][8] and "aspect_ratio" in sheet[3][8]
    assert "duration_ms" in sheet[4][8] and sheet[2][5] == ""
    kite = by_prompt["a red kite over the sea"]
    assert kite[8] == "" and httpx.get(kite[7]).content == fake.video
    task = gateway.client.get(f"/v1/tasks/{kite[5]}").json()
    assert task["metadata"] == {"customer": "acme"} and task["group_id"] == batch["id"]
    assert {r.prompt: (r.aspect_ratio, r.duration_ms) for r in fake.submits} == {
        "a red kite over the sea": ("9:16", 3000),
        "a cat on a piano": ("16:9", 5000),
        "a paper boat": ("16:9", 2000),
        "snow on a bamboo forest": ("4:3", 4000),
    }


def test_a_gb18030_sheet_from_chinese_excel(gateway: LiveGateway, fake: ControlledProvider) -> None:
    rows = [
        ["prompt", "style", "provider", "metadata.备注"],
        ["一只小猫在弹钢琴", "", "fake", "第一行"],
        ["西湖边的日落，航拍", "", "fake", "第二行"],
    ]
    data = excel_csv(rows, encoding="gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # really not UTF-8
    fake.release()
    batch = upload(gateway, data, "想法.csv").json()
    assert batch["filename"] == "想法.csv" and batch["columns"] == [
        "prompt",
        "style",
        "provider",
        "metadata.备注",
    ]
    done = wait_batch(gateway, batch["id"], lambda b: b["status"] == "completed")
    assert done["counts"]["succeeded"] == 2
    assert sorted(r.prompt for r in fake.submits) == sorted(
        ["一只小猫在弹钢琴", "西湖边的日落，航拍"]
    )
    _, sheet = results(gateway, batch["id"])
    assert [row[:4] for row in sheet[1:]] == rows[1:]
    task = gateway.client.get(f"/v1/tasks/{sheet[1][4]}").json()
    assert task["metadata"] == {"备注": "第一行"}


def test_bad_files_are_refused_with_the_reason(gateway_factory: GatewayFactory) -> None:
    overrides = {"batches": {"max_rows": 3}, "server": {"max_upload_bytes": 4096}}
    with gateway_factory(overrides) as gw:

        def refused(data: bytes, status: int, *words: str) -> None:
            response = upload(gw, data)
            assert response.status_code == status, response.text
            message = response.json()["error"]["message"]
            for word in words:
                assert word in message, message

        refused(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", 400, "not a text CSV")
        refused(b"PK\x03\x04\x14\x00\x06\x00", 400, ".xlsx")
        refused(b"prompt\r\n\xff\xfe\xfa\xff\r\n", 400, "UTF-8", "GB18030")
        refused(excel_csv([["idea", "style"], ["a cat", "anime"]]), 400, "'idea'")
        refused(excel_csv([["style"], ["anime"]]), 400, "no 'prompt' column")
        refused(excel_csv([["prompt", "promt"], ["a", "b"]]), 400, "'promt'")
        refused(excel_csv([["prompt", "Prompt"], ["a", "b"]]), 400, "twice")
        refused(excel_csv([["prompt"]]), 400, "no rows")
        refused(b"", 400, "empty")
        refused(excel_csv([["prompt"]] + [[f"idea {i}"] for i in range(4)]), 400, "4 rows", "3")
        refused(excel_csv([["prompt"]] + [["x" * 1500] for _ in range(3)]), 413, "4096")
        missing = gw.client.post("/v1/batches", data={"nothing": "here"})
        assert missing.status_code == 422 and missing.json()["error"]["code"] == "validation_error"
        assert gw.client.get("/v1/batches").json()["data"] == []


def test_semicolon_sheets_blank_lines_and_ragged_rows(
    gateway: LiveGateway, fake: ControlledProvider
) -> None:
    fake.release()
    data = (
        "prompt;provider;options.camera_fixed\n\n"
        "a quiet harbour;fake;true\n;;\nwaves;fake;false;extra\n"
    )
    batch = upload(gateway, data.encode()).json()
    assert batch["counts"]["total"] == 2  # the blank and all-empty lines are not rows
    done = wait_batch(gateway, batch["id"], lambda b: b["status"] == "completed")
    assert done["counts"] == {
        "total": 2, "queued": 0, "running": 0, "succeeded": 1, "failed": 1, "cancelled": 0,
    }  # fmt: skip
    _, sheet = results(gateway, batch["id"])
    assert sheet[2][4] == "failed" and "4 cells" in sheet[2][6]
    task = gateway.client.get(f"/v1/tasks/{sheet[1][3]}").json()
    assert task["request"]["options"] == {"camera_fixed": True}


def test_cancel_stops_the_rest_and_tenancy_hides_batches(
    gateway: LiveGateway, fake: ControlledProvider
) -> None:
    rows = [["prompt", "provider"]] + [[f"clip {i}", "fake"] for i in range(5)]
    batch = upload(gateway, excel_csv(rows)).json()
    eventually(lambda: len(fake.submits) == 2)

    other = gateway.client_for(gateway.other_token)
    assert other.get(f"/v1/batches/{batch['id']}").status_code == 404
    assert other.delete(f"/v1/batches/{batch['id']}").status_code == 404
    assert other.get(f"/v1/batches/{batch['id']}/results.csv").status_code == 404
    assert other.get("/v1/batches").json()["data"] == []
    other.close()
    assert [b["id"] for b in gateway.client.get("/v1/batches").json()["data"]] == [batch["id"]]

    cancelled = gateway.client.delete(f"/v1/batches/{batch['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["counts"]["cancelled"] == 5
    assert sorted(fake.cancelled) == sorted(
        f"fake-{t['id']}" for t in batch_tasks(gateway, batch["id"])
    )
    _, sheet = results(gateway, batch["id"])
    assert [row[3] for row in sheet[1:]] == ["cancelled"] * 5
    assert len(fake.submits) == 2  # nothing fed after the cancel


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_restart_mid_batch_resumes_feeding_and_every_row_ends_once(
    gateway_factory: GatewayFactory, tmp_path: Any, database: str, request: pytest.FixtureRequest
) -> None:
    fake = ControlledProvider()
    data_dir = tmp_path / "shared-data"
    url = (
        request.getfixturevalue("fresh_postgres_url")
        if database == "postgresql"
        else f"sqlite:///{data_dir / 'gateway.db'}"
    )
    overrides = {**CONCURRENCY, "database": {"url": url}}
    rows = [["prompt", "provider"]] + [[f"scene {i}", "fake"] for i in range(6)]
    with gateway_factory(overrides, data_dir=data_dir, extra_providers={"fake": fake}) as first:
        batch = upload(first, excel_csv(rows)).json()
        eventually(lambda: len(fake.submits) == 2)
        fed = {t["prompt"]: t["id"] for t in batch_tasks(first, batch["id"])}
    assert len(fed) == 2

    # A process that died between creating a row's task and recording it on the row.
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        lost = conn.execute(
            sa.text(
                "SELECT idx, task_id FROM vgw_batch_rows WHERE batch_id = :b AND status = 'fed' "
                "ORDER BY idx LIMIT 1"
            ),
            {"b": batch["id"]},
        ).one()
        conn.execute(
            sa.text(
                "UPDATE vgw_batch_rows SET status = 'pending', task_id = NULL "
                "WHERE batch_id = :b AND idx = :i"
            ),
            {"b": batch["id"], "i": lost[0]},
        )
    engine.dispose()

    fake.release()
    with gateway_factory(overrides, data_dir=data_dir, extra_providers={"fake": fake}) as second:
        done = wait_batch(second, batch["id"], lambda b: b["status"] != "running")
        assert done["status"] == "completed" and done["counts"]["succeeded"] == 6
        _, sheet = results(second, batch["id"])
        tasks = batch_tasks(second, batch["id"])
    assert [row[0] for row in sheet[1:]] == [f"scene {i}" for i in range(6)]
    task_ids = [row[2] for row in sheet[1:]]
    assert len(set(task_ids)) == 6 and len(tasks) == 6
    assert task_ids[lost[0]] == lost[1]  # re-fed, the row found its task again
    assert sorted(r.prompt for r in fake.submits) == [f"scene {i}" for i in range(6)]


def test_a_row_refused_for_a_passing_reason_waits_and_runs_later(
    gateway_factory: GatewayFactory,
) -> None:
    """A 503 (here: the moderation endpoint is down) or a 429 at create leaves the row pending."""
    calls: list[int] = []
    moderation = FastAPI()

    @moderation.post("/v1/moderations")
    async def moderate() -> JSONResponse:
        calls.append(1)
        if len(calls) <= 2:
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        return JSONResponse({"results": [{"flagged": False, "categories": {}}]})

    fake = ControlledProvider()
    fake.release()
    with serve_in_thread(moderation) as url:
        overrides = {"prompts": {"moderation_url": f"{url}/v1/moderations"}}
        with gateway_factory(overrides, extra_providers={"fake": fake}) as gw:
            batch = upload(gw, excel_csv([["prompt", "provider"], ["a calm sea", "fake"]])).json()
            assert batch["counts"]["failed"] == 0
            done = wait_batch(gw, batch["id"], lambda b: b["status"] != "running")
            _, sheet = results(gw, batch["id"])
    assert done["counts"]["succeeded"] == 1 and sheet[1][3] == "succeeded"
    assert len(calls) >= 3 and len(fake.submits) == 1


def test_a_batch_keeps_to_its_tokens_quota_and_providers(
    gateway: LiveGateway, fake: ControlledProvider
) -> None:
    """Rows are created for the batch's tenant as it is now: its active-task cap makes rows
    wait (not fail), and a provider it may not use fails that row alone."""
    made = gateway.client.post(
        "/v1/admin/tokens",
        json={"name": "sheet-team", "max_active_tasks": 1, "providers": ["fake"]},
    )
    assert made.status_code == 201, made.text
    with gateway.client_for(made.json()["token"]) as team:
        sheet = [["prompt", "provider"], ["one", "fake"], ["two", "fake"], ["three", "preview"]]
        batch = team.post(
            "/v1/batches", files={"file": ("ideas.csv", excel_csv(sheet), "text/csv")}
        ).json()
        eventually(lambda: len(fake.submits) == 1)
        waiting = team.get(f"/v1/batches/{batch['id']}").json()
        assert len(fake.submits) == 1  # the cap holds the second row back
        fake.release()
        done = None

        def finished() -> bool:
            nonlocal done
            done = team.get(f"/v1/batches/{batch['id']}").json()
            return done["status"] != "running"

        eventually(finished, rounds=600)
    assert waiting["counts"]["running"] + waiting["counts"]["succeeded"] <= 1
    assert done is not None and done["counts"]["succeeded"] == 2 and done["counts"]["failed"] == 1
    assert len(fake.submits) == 2
