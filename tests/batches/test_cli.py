"""``python -m app batch``: a real subprocess against a live gateway, output captured."""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.batches.test_batches import excel_csv
from tests.conftest import GatewayFactory, eventually
from tests.fakes import ControlledProvider
from tests.processes import REPO

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ROWS = [["prompt", "provider"]] + [[f"shot {i}", "fake"] for i in range(4)] + [["", "fake"]]


def cli(*args: str, token: str, terminal: bool = False) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VGW_", "FORCE_COLOR"))}
    if terminal:
        env["FORCE_COLOR"] = "1"  # rich draws its live progress bar as on a terminal
    return subprocess.Popen(
        [sys.executable, "-m", "app", "batch", *args, "--token", token, "--poll-s", "0.2"],
        cwd=REPO,
        env={**env, "COLUMNS": "100"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_the_cli_runs_a_batch_with_progress_and_resumes_after_ctrl_c(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    fake = ControlledProvider()
    ideas = tmp_path / "ideas.csv"
    ideas.write_bytes(excel_csv(ROWS))
    out = tmp_path / "results.csv"
    with gateway_factory(extra_providers={"fake": fake}) as gw:
        started = cli(str(ideas), "--out", str(out), "--url", gw.base_url, token=gw.token)
        # The fake holds every job: the batch cannot end until released. Ctrl-C meanwhile.
        eventually(lambda: len(fake.submits) == 3)
        started.send_signal(signal.SIGINT)
        output, _ = started.communicate(timeout=60)
        assert started.returncode == 130, output
        batch_id = output.split("batch ", 1)[1].split(":", 1)[0]
        assert batch_id.startswith("vb_")
        assert "5 rows" in output
        # Not a terminal: one line per change (the blank prompt failed at once).
        assert "\n1/5 ended: 0 succeeded, 1 failed, 0 cancelled, " in output
        assert "keeps running on the gateway" in output
        assert f"python -m app batch --batch-id {batch_id} --out {out}" in output
        assert not out.exists()
        running = gw.client.get(f"/v1/batches/{batch_id}").json()
        assert running["status"] == "running"  # Ctrl-C stopped only the following

        fake.release()
        resumed = cli(
            "--batch-id",
            batch_id,
            "--out",
            str(out),
            "--url",
            gw.base_url,
            token=gw.token,
            terminal=True,
        )
        output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output
    text = ANSI.sub("", output)
    assert f"following batch {batch_id}" in text
    assert "━" in text and "5/5" in text  # the bar, drawn to the end
    assert "5/5 ended: 4 succeeded, 1 failed, 0 cancelled, 0 running, 0 queued" in text
    assert f"results: {out} (batch completed)" in text
    sheet = list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8-sig"), newline="")))
    assert [row[0] for row in sheet[1:]] == [row[0] for row in ROWS[1:]]
    assert [row[3] for row in sheet[1:]] == ["succeeded"] * 4 + ["failed"]
    assert len(fake.submits) == 4


def test_the_cli_says_what_is_wrong(gateway_factory: GatewayFactory, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(excel_csv([["idea"], ["a cat"]]))
    with gateway_factory() as gw:
        refused = cli(
            str(bad), "--out", str(tmp_path / "r.csv"), "--url", gw.base_url, token=gw.token
        )
        output, _ = refused.communicate(timeout=60)
        assert refused.returncode == 2 and "400" in output and "'idea'" in output
        wrong = cli(
            str(bad), "--out", str(tmp_path / "r.csv"), "--url", gw.base_url, token="nope-nope"
        )
        output, _ = wrong.communicate(timeout=60)
        assert wrong.returncode == 2 and "403" in output
