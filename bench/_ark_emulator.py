"""Serve the Ark emulator in a process of its own (benchmarks: it must not share a CPU-bound
process with the load generator).

python bench/_ark_emulator.py PORT API_KEY RUNNING_S
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.emulators import ark
from tests.emulators.faults import Videos


def main() -> None:
    port, key, running_s = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    video = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 4096
    state = ark.ArkState(api_key=key, videos=Videos(video), queued_s=0.0, running_s=running_s)
    uvicorn.run(ark.create_app(state), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
