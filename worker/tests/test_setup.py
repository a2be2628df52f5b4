"""Model setup: what loads, and every way a load fails becoming a clear setup_failed reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from worker.config import WorkerSettings
from worker.engine import load_engine, read_profile, resolve_model_path
from worker.errors import SetupError
from worker.jobs import GenerationInput
from worker.tests.helpers import WorkerProcess


def test_a_missing_model_path_is_reported_as_setup_failed(
    missing_model_worker: WorkerProcess,
) -> None:
    assert missing_model_worker.observed[-1] == "setup_failed"
    with missing_model_worker.client() as client:
        health = client.get("/health").json()
        assert health["status"] == "setup_failed"
        assert "no-such-model" in health["error"] and "does not exist" in health["error"]
        response = client.post("/api/v1/generate", json={"prompt": "a panda"})
    assert response.status_code == 503
    body = response.json()
    assert body["error"]["code"] == "unavailable"
    assert body["error"]["retryable"] is False
    assert "does not exist" in body["error"]["message"]
    assert missing_model_worker.proc.poll() is None  # still serving /health


def test_a_hub_id_that_is_not_cached_is_a_setup_error() -> None:
    with pytest.raises(
        SetupError, match=r"THUDM/CogVideoX-2b is neither a local folder nor .* local cache"
    ):
        resolve_model_path("THUDM/CogVideoX-2b")


def test_corrupt_weights_are_a_setup_error(tiny_model: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    weights = broken / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(SetupError, match="could not load the model"):
        load_engine(WorkerSettings(model_path=str(broken), device="cpu"))


def test_a_folder_that_is_not_a_checkpoint_is_a_setup_error(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=r"model_index\.json is missing"):
        load_engine(WorkerSettings(model_path=str(tmp_path), device="cpu"))
    (tmp_path / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    with pytest.raises(SetupError, match="unsupported pipeline 'StableDiffusionPipeline'"):
        load_engine(WorkerSettings(model_path=str(tmp_path), device="cpu"))


def test_cuda_without_a_gpu_is_a_setup_error(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SetupError, match="CUDA is not available"):
        load_engine(WorkerSettings(model_path=str(tiny_model), device="cuda"))


def test_profiles_follow_the_checkpoint(tiny_model: Path, tiny_i2v_model: Path) -> None:
    t2v = read_profile(tiny_model, name="t2v")
    assert (t2v.family, t2v.default_dtype, t2v.rotary, t2v.image_to_video) == (
        "cogvideox-2b",
        "float16",
        False,
        False,
    )
    assert (t2v.width, t2v.height, t2v.num_frames, t2v.fps, t2v.max_frames) == (96, 64, 9, 8, 49)
    i2v = read_profile(tiny_i2v_model, name="i2v")
    assert (i2v.family, i2v.default_dtype, i2v.rotary, i2v.fixed_size) == (
        "cogvideox-5b-i2v",
        "bfloat16",
        True,
        True,
    )


def test_cpu_loads_in_float32_and_ignores_offload(tiny_model: Path, tiny_i2v_model: Path) -> None:
    import torch
    from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler

    # Offload hooks raise without an accelerator: on CPU the flag must not reach diffusers.
    engine = load_engine(WorkerSettings(model_path=str(tiny_model), device="cpu", offload="model"))
    assert engine.dtype == torch.float32
    assert engine.pipe.transformer.dtype == torch.float32
    assert isinstance(engine.pipe.scheduler, CogVideoXDDIMScheduler)  # 2b keeps its DDIM scheduler
    steps: list[tuple[int, int]] = []
    params = GenerationInput(
        prompt="a panda", negative_prompt="", num_frames=9, width=48, height=32,
        num_inference_steps=3, guidance_scale=6.0, seed=1, fps=8,
    )  # fmt: skip
    frames = engine.generate(params, on_step=lambda done, total: steps.append((done, total)))
    assert frames.shape == (9, 32, 48, 3) and frames.dtype.name == "uint8"
    assert steps == [(1, 3), (2, 3), (3, 3)]  # progress comes from the per-step callback

    i2v = load_engine(WorkerSettings(model_path=str(tiny_i2v_model), device="cpu"))
    assert i2v.pipe.scheduler.config.timestep_spacing == "trailing"
    assert isinstance(i2v.pipe.scheduler, CogVideoXDPMScheduler)  # 5b: DPM, trailing spacing


def test_health_is_open_but_the_api_is_not(missing_model_worker: WorkerProcess) -> None:
    with httpx.Client(base_url=missing_model_worker.base_url) as anonymous:
        assert anonymous.get("/health").status_code == 200
        assert anonymous.get("/api/v1/status/x").status_code == 401


@pytest.mark.parametrize(("env", "expected"), [("", None), ("s3cret-token", "s3cret-token")])
def test_a_blank_worker_token_means_no_auth(
    monkeypatch: pytest.MonkeyPatch, env: str, expected: str | None
) -> None:
    # Compose passes WORKER_TOKEN="" when deploy/.env leaves it empty.
    from worker.__main__ import _parser

    monkeypatch.setenv("WORKER_TOKEN", env)
    args = _parser().parse_args(["serve", "--model-path", "/models/x"])
    assert args.token == expected
