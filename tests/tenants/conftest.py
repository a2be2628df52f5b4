"""Helpers for tenants: the token CLI run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m app --config CONFIG …`` in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VGW_")}
    return subprocess.run(
        [sys.executable, "-m", "app", "--config", str(config), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def issued_token(output: str) -> str:
    """The token a ``tokens create`` / ``rotate`` printed (its own indented line)."""
    lines = [line.strip() for line in output.splitlines() if line.strip().startswith("vgw_")]
    assert len(lines) == 1, output
    return lines[0]
