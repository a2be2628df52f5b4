"""Chaos: three gateways on PostgreSQL, Seedance answering slowly, a replica killed every 5 s.

    .venv/bin/python bench/chaos.py [--tasks 100] [--minutes 1] [--no-callbacks]

Three ``python -m app serve`` processes share one PostgreSQL database (``VGW_TEST_POSTGRES_URL``
as an admin URL, else an embedded server) and the Ark emulator. 30 % of creates make their job
and then hold the answer past the gateways' create timeout — the case that makes a naive
client pay twice. Tasks are created at a steady pace (a client that retries a failed create on
another replica with the same Idempotency-Key, as Dify does) while every 5 s one random replica
is killed with SIGKILL and started again. Then every task is waited for.

A kill is skipped when fewer than two replicas are up (the others still restarting), so the
takeover figure measures takeover, not restart time (printed separately).

Printed: tasks ended / lost, Ark jobs per task (max), orphan jobs (paid for, but no task
delivered their video), and takeover time (SIGKILL → the dead replica's tasks held by another
replica, read from the database every 50 ms) p50 / p95. Targets: 0 lost, at most 1 job per task,
takeover p95 ≤ 5 s.

Then a single gateway on SQLite is killed and restarted with ten tasks in flight: how soon is
every task's job read again? Target ≤ 2 s from the restart. The gateway's bytecode is compiled
first, as the Docker image does (``compileall``): with ``PYTHONDONTWRITEBYTECODE`` set, each
start would otherwise compile the app from source again.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import new_database, postgres_admin_url
from tests.emulators import ark
from tests.emulators.faults import Videos
from tests.emulators.server import free_port, serve_in_thread
from tests.processes import REPO, GatewayProcess

TOKEN = "chaos-token-0123456789"
ARK_KEY = "ark-chaos-key-0123456789"
TERMINAL = ("succeeded", "failed", "cancelled")


class Watcher(threading.Thread):
    """Reads lease owners from the database every 50 ms; measures takeovers after kills."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.pending: list[tuple[float, str, set[str]]] = []  # (killed at, owner, its tasks)
        self.takeovers: list[float] = []
        self.owners: dict[str, str | None] = {}

    def owned_by(self, instance: str) -> set[str]:
        with self.lock:
            return {task for task, owner in self.owners.items() if owner == instance}

    def killed(self, at: float, instance: str) -> None:
        with self.lock:
            tasks = {task for task, owner in self.owners.items() if owner == instance}
            if tasks:
                self.pending.append((at, instance, tasks))

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                rows = conn.execute(
                    "SELECT id, lease_owner FROM vgw_tasks WHERE status IN ('queued', 'running')"
                ).fetchall()
                now = time.monotonic()
                with self.lock:
                    self.owners = dict(rows)
                    still = []
                    for at, instance, tasks in self.pending:
                        left = {t for t in tasks if self.owners.get(t) == instance}
                        for _ in tasks - left:
                            self.takeovers.append(now - at)
                        if left:
                            still.append((at, instance, left))
                    self.pending = still
                time.sleep(0.05)


def create(gateways: list[GatewayProcess], name: str, rng: random.Random) -> str | None:
    """Create a task on a live replica; retry elsewhere with the same Idempotency-Key."""
    for _ in range(240):  # up to a minute: every replica may be restarting at once
        gateway = rng.choice([g for g in gateways if g.alive] or gateways)
        try:
            response = httpx.post(
                f"{gateway.base_url}/v1/tasks",
                json={"prompt": name},
                headers={"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": name},
                timeout=10,
            )
        except httpx.HTTPError:
            time.sleep(0.25)
            continue
        if response.status_code == 202:
            return str(response.json()["id"])
        time.sleep(0.25)
    return None


def sqlite_restarts(rounds: int) -> list[tuple[str, str, str]]:
    """kill -9 a gateway on SQLite mid-task and start it again: how soon is the work resumed?"""
    state = ark.ArkState(api_key=ARK_KEY, queued_s=0.5, running_s=3600)
    ready_s: list[float] = []
    resumed_s: list[float] = []
    with serve_in_thread(ark.create_app(state)) as ark_url:
        settings: dict[str, dict[str, Any]] = {
            "auth": {"valid_tokens": f'["{TOKEN}"]'},
            "providers": {"default": "seedance"},
            "seedance": {"base_url": ark_url, "api_key": ARK_KEY, "max_running": 20},
            "queue": {"max_attempts": 20, "lease_s": 3600},
        }
        data = Path(tempfile.mkdtemp(prefix="vgw-chaos-sqlite-")) / "data"
        gateway = GatewayProcess(data, settings).start()
        with gateway.client(TOKEN) as client:
            ids = [client.post("/v1/tasks", json={"prompt": f"sqlite {n}"}).json()["id"]
                   for n in range(10)]  # fmt: skip
            jobs: list[str] = []
            while len(jobs) < len(ids):
                time.sleep(0.1)
                jobs = [
                    j for i in ids if (j := client.get(f"/v1/tasks/{i}").json()["provider_task_id"])
                ]
        for _ in range(min(rounds, 15)):  # each crash counts toward max_attempts (20)
            gateway.kill()
            before = {job: state.job_reads[job] for job in jobs}
            resumed: list[float] = []

            started = time.monotonic()

            def watch(
                before: dict[str, int] = before,
                resumed: list[float] = resumed,
                deadline: float = started + 120,
            ) -> None:
                # Every task's job read again (one by one or in a batched list read).
                while any(state.job_reads[job] == before[job] for job in jobs):
                    if time.monotonic() > deadline:
                        return
                    time.sleep(0.005)
                resumed.append(time.monotonic())

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            gateway = GatewayProcess(data, settings, port=gateway.port).start()
            ready_s.append(time.monotonic() - started)
            watcher.join(130)
            if not resumed:
                raise RuntimeError("the restarted gateway did not resume its tasks in 120 s")
            resumed_s.append(resumed[0] - started)
        gateway.kill()

    def median(values: list[float]) -> str:
        return f"{sorted(values)[len(values) // 2]:.2f} s"

    return [
        ("SQLite: kill -9 + restart, start → healthy (p50)", median(ready_s), ""),
        ("SQLite: start → all 10 tasks' jobs read again (p50)", median(resumed_s), "≤ 2 s"),
        ("SQLite: slowest such resume", f"{max(resumed_s):.2f} s", "≤ 2 s"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--kill-every", type=float, default=5.0)
    parser.add_argument("--slow-ratio", type=float, default=0.3)
    parser.add_argument("--no-callbacks", action="store_true")
    parser.add_argument("--sqlite-restarts", type=int, default=5)
    args = parser.parse_args()
    compileall.compile_dir(REPO / "app", quiet=1)
    rng = random.Random(11)
    workdir = Path(tempfile.mkdtemp(prefix="vgw-chaos-"))

    state = ark.ArkState(
        api_key=ARK_KEY,
        videos=Videos(b"\x00\x00\x00\x18ftypmp42" + bytes(2000)),
        queued_s=1.0,
        running_s=6.0,
        slow_answer_ratio=args.slow_ratio,
        slow_answer_s=3.0,
    )
    with (
        postgres_admin_url() as admin,
        new_database(admin) as db_url,
        serve_in_thread(ark.create_app(state)) as ark_url,
    ):
        ports = [free_port() for _ in range(3)]
        settings: dict[str, dict[str, Any]] = {
            "auth": {"valid_tokens": f'["{TOKEN}"]'},
            "database": {"url": db_url},
            "providers": {"default": "seedance"},
            "seedance": {"base_url": ark_url, "api_key": ARK_KEY, "timeout_s": 1.0},
            "queue": {"max_attempts": 20},
        }
        if not args.no_callbacks:
            settings["server"] = {"public_base_url": f"http://127.0.0.1:{ports[0]}"}
        gateways = [
            GatewayProcess(workdir / f"g{n}", settings, port=p) for n, p in enumerate(ports)
        ]
        for gateway in gateways:
            gateway.start()
        instances = {
            g.port: httpx.get(f"{g.base_url}/healthz").json()["instance"] for g in gateways
        }
        watcher = Watcher(db_url)
        watcher.start()

        ids: dict[str, str] = {}
        pace_s = args.minutes * 60 * 0.8 / args.tasks  # spread over most of the chaos

        def feed() -> None:
            for n in range(args.tasks):
                task_id = create(gateways, f"chaos {n}", random.Random(n))
                if task_id:
                    ids[f"chaos {n}"] = task_id
                time.sleep(pace_s)

        creating = threading.Thread(target=feed, daemon=True)
        creating.start()
        kills = 0
        restarts: list[float] = []
        restarting: list[threading.Thread] = []

        up = set(ports)  # healthy replicas (a restarting one is never killed again mid-start)

        def restart(gateway: GatewayProcess) -> None:
            started = time.monotonic()
            gateway.start(timeout_s=300)
            restarts.append(time.monotonic() - started)
            instances[gateway.port] = httpx.get(f"{gateway.base_url}/healthz").json()["instance"]
            up.add(gateway.port)

        skipped = 0
        end = time.monotonic() + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(args.kill_every)
            alive = [g for g in gateways if g.port in up]
            if len(alive) < 2:
                # Takeover needs a survivor: a round with one replica left (the others still
                # starting) is skipped rather than measuring how long a restart takes.
                skipped += 1
                continue
            victim = rng.choice(alive)
            up.discard(victim.port)
            killed_at = time.monotonic()
            victim.kill()
            watcher.killed(killed_at, instances[victim.port])
            kills += 1
            # Restarted in the background, so the next kill comes on schedule.
            thread = threading.Thread(target=restart, args=(victim,), daemon=True)
            thread.start()
            restarting.append(thread)
        for thread in restarting:
            thread.join()
        creating.join()

        deadline = time.monotonic() + 300
        finals: dict[str, dict[str, Any]] = {}
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
            for name, task_id in ids.items():
                while time.monotonic() < deadline:
                    url = f"{rng.choice(gateways).base_url}/v1/tasks/{task_id}"
                    with contextlib.suppress(httpx.HTTPError):
                        task = client.get(url, params={"wait_s": 20}).json()
                        if task["status"] in TERMINAL:
                            finals[name] = task
                            break
        watcher.stop.set()
        for gateway in gateways:
            gateway.stop()

    jobs = Counter(job.prompt for job in state.jobs())
    delivered = {t["provider_task_id"] for t in finals.values() if t["status"] == "succeeded"}
    orphans = [job.id for job in state.jobs() if job.id not in delivered]
    statuses = Counter(t["status"] for t in finals.values())
    codes = Counter(t["error"]["code"] for t in finals.values() if t.get("error"))
    takeovers = sorted(watcher.takeovers)

    def pct(q: float) -> str:
        if not takeovers:
            return "-"
        return f"{takeovers[min(len(takeovers) - 1, int(q * len(takeovers)))]:.2f} s"

    rows = [
        ("tasks created", str(len(ids)), f"{args.tasks}"),
        ("tasks ended", f"{len(finals)} ({dict(statuses)})", "all"),
        ("tasks lost", str(len(ids) - len(finals) + (args.tasks - len(ids))), "0"),
        ("failure codes", str(dict(codes)) or "-", ""),
        ("Ark jobs per task (max)", str(max(jobs.values(), default=0)), "≤ 1"),
        ("Ark jobs in all", str(sum(jobs.values())), ""),
        ("orphan jobs (paid, not delivered)", str(len(orphans)), "0"),
        ("replicas killed (SIGKILL)", f"{kills} ({skipped} rounds skipped: < 2 up)", ""),
        ("tasks taken over", str(len(takeovers)), ""),
        ("takeover p50", pct(0.5), ""),
        ("takeover p95", pct(0.95), "≤ 5 s"),
        ("takeover max", f"{takeovers[-1]:.2f} s" if takeovers else "-", ""),
        ("creates answered late (after the job was made)", str(state.slow_answers), ""),
        (
            "replica restart (start to healthy) p50",
            f"{sorted(restarts)[len(restarts) // 2]:.1f} s" if restarts else "-",
            "",
        ),
        ("callbacks", "off" if args.no_callbacks else "on (to replica 0)", ""),
    ]
    print_table(rows)
    if orphans:
        print(f"\norphans: {orphans[:10]}")
    if args.sqlite_restarts:
        print_table(sqlite_restarts(args.sqlite_restarts))
    return 0


def print_table(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"\n{'bench/chaos.py':<{width}}  {'result':<40}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<40}  {target}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
