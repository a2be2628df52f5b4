"""A headless Locust run: users create tasks and long-poll them; the report is printed and saved.

    .venv/bin/python bench/locust_run.py [--users 20] [--spawn-rate 5] [--seconds 60] [--job-s 2]
    .venv/bin/python bench/locust_run.py --host http://127.0.0.1:8000 --token TOKEN

Without ``--host`` it starts, on free loopback ports, the Ark (Seedance) emulator (each job takes
``--job-s``) and one gateway process routed to it (SQLite, local storage, Seedance's concurrency
cap raised so the emulator is not the bottleneck). With ``--host`` it drives a gateway that is
already running, e.g. the compose stack with tests/deploy/compose.test.yaml's emulator.

Locust runs from ``.venv-locust`` (made on first use from bench/requirements-locust.txt). The
table (requests/s, p50/p95/p99 and failures per endpoint) is printed and saved, with Locust's
CSV and HTML, under ``bench/out/locust-<time>/``. Always exits 0: a benchmark reports.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from concurrency import ROOT, TOKEN, free_port

LOCUST_VENV = ROOT / ".venv-locust"
ARK_KEY = "bench-ark-key-0123456789"


def locust_binary() -> Path:
    binary = LOCUST_VENV / "bin" / "locust"
    if not binary.exists():
        python = subprocess.run(
            [str(ROOT / "scripts/find-python"), "3.12"], capture_output=True, text=True, check=True
        ).stdout.strip()
        subprocess.run([python, "-m", "venv", str(LOCUST_VENV)], check=True)
        requirements = ROOT / "bench/requirements-locust.txt"
        subprocess.run(
            [str(LOCUST_VENV / "bin/pip"), "install", "-q", "-r", str(requirements)], check=True
        )
    return binary


def wait_up(url: str) -> None:
    for _ in range(300):
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextlib.contextmanager
def local_gateway(job_s: float) -> Iterator[str]:
    """The Ark emulator and a gateway routed to it, on loopback; stopped afterwards."""
    ark_port, gateway_port = free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="vgw-locust-") as data:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("VGW_")},
            "PYTHONPATH": str(ROOT),
            "VGW_SERVER__DATA_DIR": data,
            "VGW_SERVER__LOG_LEVEL": "warning",
            "VGW_AUTH__VALID_TOKENS": TOKEN,
            "VGW_PROVIDERS__DEFAULT": "seedance",
            "VGW_SEEDANCE__BASE_URL": f"http://127.0.0.1:{ark_port}",
            "VGW_SEEDANCE__API_KEY": ARK_KEY,
            "VGW_SEEDANCE__MAX_RUNNING": "100",
        }
        try:
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.emulators.serve",
                        "--port",
                        str(ark_port),
                        "--api-key",
                        ARK_KEY,
                        "--queued-s",
                        "0.2",
                        "--running-s",
                        str(job_s),
                    ],
                    cwd=ROOT,
                    env=env,
                )
            )
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "app", "serve", "--port", str(gateway_port)],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                )
            )
            wait_up(f"http://127.0.0.1:{ark_port}/_emulator/jobs")
            wait_up(f"http://127.0.0.1:{gateway_port}/healthz")
            yield f"http://127.0.0.1:{gateway_port}"
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()


def table(stats_csv: Path) -> str:
    rows = list(csv.DictReader(stats_csv.open()))
    head = (
        f"{'endpoint':<30} {'requests':>8} {'failures':>8} {'req/s':>7} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        name = "all requests" if row["Name"] == "Aggregated" else row["Name"]
        lines.append(
            f"{name:<30} {row['Request Count']:>8} {row['Failure Count']:>8} "
            f"{float(row['Requests/s']):>7.2f} {row['50%']:>7} {row['95%']:>7} {row['99%']:>7}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="drive this gateway instead of starting one")
    parser.add_argument("--token", default=os.environ.get("VGW_TOKEN", TOKEN))
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--spawn-rate", type=float, default=5)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--job-s", type=float, default=2.0, help="emulated Seedance job time")
    args = parser.parse_args()

    binary = locust_binary()
    out = ROOT / "bench/out" / f"locust-{dt.datetime.now():%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        host = args.host or stack.enter_context(local_gateway(args.job_s))
        token = args.token if args.host else TOKEN
        subprocess.run(
            [str(binary), "-f", str(ROOT / "bench/locustfile.py"), "--headless",
             "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.seconds}s",
             "--stop-timeout", "30", "--host", host, "--csv", str(out / "locust"),
             "--html", str(out / "report.html"), "--only-summary", "--loglevel", "WARNING"],
            env={**os.environ, "VGW_TOKEN": token}, check=False,
        )  # fmt: skip
    where = host if args.host else f"local gateway + Ark emulator (jobs {args.job_s:g} s)"
    report = (
        f"Locust {args.users} users (spawn {args.spawn_rate:g}/s) for {args.seconds} s "
        f"against {where}\n\n{table(out / 'locust_stats.csv')}\n"
    )
    failures = list(csv.DictReader((out / "locust_failures.csv").open()))
    if failures:
        report += "\nfailures:\n" + "\n".join(
            f"  {f['Occurrences']:>5} x {f['Method']} {f['Name']}: {f['Error']}" for f in failures
        )
        report += "\n"
    (out / "report.txt").write_text(report)
    print(report)
    print(f"saved: {out.relative_to(ROOT)}/ (report.txt, report.html, locust_*.csv)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
