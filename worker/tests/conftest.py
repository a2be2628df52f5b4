"""Worker test fixtures: tiny random-weight CogVideoX checkpoints and real worker processes.

The checkpoints are built from the real diffusers/transformers classes and loaded back by path, so
the worker's loading, inference and export code runs exactly as with CogVideoX-2b / 5b-I2V; only
the sizes are tiny. Nothing here touches the Hugging Face hub.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from worker.tests.helpers import WorkerProcess

# No test may reach the hub: an empty cache, offline. Set before huggingface_hub is imported.
_HF_HOME = tempfile.mkdtemp(prefix="worker-tests-hf-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.pop("HF_HUB_CACHE", None)


def pytest_configure(config: pytest.Config) -> None:
    # The project rule: warnings are errors; only third-party warnings we cannot fix pass.
    config.addinivalue_line("filterwarnings", "error")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HF_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CogVideoX-2b-style text-to-video checkpoint (random weights, 96×64, 9 frames)."""
    from worker.random_model import save_random_model

    return save_random_model(tmp_path_factory.mktemp("models") / "CogVideoX-tiny", "tiny")


@pytest.fixture(scope="session")
def tiny_i2v_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CogVideoX-5b-I2V-style image-to-video checkpoint (rotary + learned positions, DPM)."""
    from worker.random_model import save_random_model

    return save_random_model(tmp_path_factory.mktemp("models") / "CogVideoX-tiny-I2V", "tiny-i2v")


@pytest.fixture(scope="session")
def _workers(
    tiny_model: Path, tiny_i2v_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, WorkerProcess]]:
    # Started together so that their (slow) torch imports overlap.
    root = tmp_path_factory.mktemp("workers")
    procs = {
        "t2v": WorkerProcess(tiny_model, root / "t2v", "--max-queue", "1"),
        # The test image server listens on loopback, which the URL guard refuses by default.
        "i2v": WorkerProcess(tiny_i2v_model, root / "i2v", "--private-url-allowlist", "127.0.0.1"),
        "missing": WorkerProcess(root / "no-such-model", root / "missing"),
    }
    try:
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


@pytest.fixture(scope="session")
def t2v_worker(_workers: dict[str, WorkerProcess]) -> WorkerProcess:
    """The tiny text-to-video worker, token-protected, with a queue of one waiting job."""
    worker = _workers["t2v"]
    worker.wait_setup()
    return worker


@pytest.fixture(scope="session")
def i2v_worker(_workers: dict[str, WorkerProcess]) -> WorkerProcess:
    worker = _workers["i2v"]
    worker.wait_setup()
    return worker


@pytest.fixture(scope="session")
def missing_model_worker(_workers: dict[str, WorkerProcess]) -> WorkerProcess:
    worker = _workers["missing"]
    worker.wait_setup()
    return worker


@pytest.fixture
def client(t2v_worker: WorkerProcess) -> Iterator[httpx.Client]:
    with t2v_worker.client() as c:
        yield c
