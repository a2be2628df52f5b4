# mypy: disallow-untyped-calls=False
"""Loading a CogVideoX checkpoint and running one generation with diffusers.

The checkpoint folder decides everything: ``model_index.json`` names the pipeline (text- or
image-to-video) and ``transformer/config.json`` tells the 2b family (sinusoidal positions, float16,
DDIM) from the 5b family (rotary positions, bfloat16, DPM with dynamic CFG) and 1.0 from 1.5
(temporal patches, 16N+1 frames, 16 fps). Every load failure becomes a ``SetupError`` whose message
/health reports; every generation failure a ``GenerationError``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from worker.config import WorkerSettings
from worker.errors import GenerationError, MemoryExhaustedError, SetupError
from worker.jobs import GenerationInput

if TYPE_CHECKING:
    import torch

log = logging.getLogger("worker.engine")

PIPELINES = {
    "CogVideoXPipeline": False,  # text-to-video
    "CogVideoXImageToVideoPipeline": True,  # image-to-video
}
_VAE_SPATIAL = 8  # the CogVideoX VAE downsamples height and width by 8
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


@dataclass(frozen=True, kw_only=True)
class ModelProfile:
    """What a checkpoint can do and the defaults it was trained for."""

    name: str
    family: str  # cogvideox-2b | cogvideox-5b | cogvideox-5b-i2v | cogvideox1.5-5b | …
    image_to_video: bool
    rotary: bool  # 5b family: bfloat16, DPM scheduler, dynamic CFG
    default_dtype: str
    width: int
    height: int
    num_frames: int
    fps: int
    frame_multiple: int  # frames must be frame_multiple × N + 1
    max_frames: int
    fixed_size: bool  # learned positional embeddings: only the trained width × height work

    def describe(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "image_to_video": self.image_to_video,
            "width": self.width,
            "height": self.height,
            "num_frames": self.num_frames,
            "max_frames": self.max_frames,
            "frame_multiple": self.frame_multiple,
            "fixed_size": self.fixed_size,
        }


def resolve_model_path(model_path: str, *, allow_download: bool = False) -> Path:
    """A local folder, or a Hugging Face hub id found in the local cache (downloaded if allowed)."""
    path = Path(model_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise SetupError(f"model path {model_path} is not a folder")
    if not _HUB_ID.fullmatch(model_path) or model_path.startswith((".", "/", "~")):
        raise SetupError(f"model path {model_path} does not exist")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model_path, local_files_only=not allow_download))
    except Exception as exc:
        if allow_download:
            raise SetupError(
                f"could not download {model_path} from the Hugging Face hub: {exc}"
            ) from exc
        cache = (
            os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
        )
        raise SetupError(
            f"model path {model_path} is neither a local folder nor a Hugging Face model in the "
            f"local cache ({cache}); download it first (hf download {model_path}) or start with "
            "--allow-download"
        ) from exc


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SetupError(f"{path} is missing: not a diffusers CogVideoX checkpoint") from exc
    except (OSError, ValueError) as exc:
        raise SetupError(f"{path} is unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise SetupError(f"{path} is not a JSON object")
    return data


def read_profile(folder: Path, *, name: str) -> ModelProfile:
    """Read the checkpoint's ``model_index.json`` and transformer config (no torch needed)."""
    index = _read_json(folder / "model_index.json")
    pipeline = index.get("_class_name")
    if pipeline not in PIPELINES:
        raise SetupError(
            f"unsupported pipeline {pipeline!r} in {folder / 'model_index.json'}; "
            f"supported: {', '.join(PIPELINES)}"
        )
    image_to_video = PIPELINES[pipeline]
    config = _read_json(folder / "transformer" / "config.json")
    try:
        rotary = bool(config.get("use_rotary_positional_embeddings", False))
        learned = bool(config.get("use_learned_positional_embeddings", False))
        v15 = config.get("patch_size_t") is not None
        width = int(config.get("sample_width", 90)) * _VAE_SPATIAL
        height = int(config.get("sample_height", 60)) * _VAE_SPATIAL
        num_frames = int(config.get("sample_frames", 49))
    except (TypeError, ValueError) as exc:
        raise SetupError(f"invalid transformer config in {folder}: {exc}") from exc
    family = ("cogvideox1.5-5b" if v15 else "cogvideox-5b" if rotary else "cogvideox-2b") + (
        "-i2v" if image_to_video else ""
    )
    return ModelProfile(
        name=name,
        family=family,
        image_to_video=image_to_video,
        rotary=rotary,
        default_dtype="bfloat16" if rotary else "float16",
        width=width,
        height=height,
        num_frames=num_frames,
        fps=16 if v15 else 8,
        frame_multiple=16 if v15 else 8,
        max_frames=161 if v15 else 49,
        # CogVideoX-5b-I2V's learned positional embeddings only fit the trained size.
        fixed_size=learned and not v15,
    )


def _pick_device(requested: str) -> torch.device:
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise SetupError(
            f"--device {requested} was requested but CUDA is not available on this machine"
        )
    return torch.device(requested)


def _pick_dtype(requested: str, profile: ModelProfile, device: torch.device) -> torch.dtype:
    import torch

    if requested == "auto":
        # Half precision on CPU is slow or unsupported for several ops.
        requested = profile.default_dtype if device.type == "cuda" else "float32"
    dtype: torch.dtype = getattr(torch, requested)
    return dtype


class DiffusersEngine:
    """A loaded CogVideoX pipeline on one device; ``generate`` runs one job (runner thread only)."""

    def __init__(
        self, pipe: Any, *, profile: ModelProfile, device: torch.device, dtype: torch.dtype
    ) -> None:
        self.pipe = pipe
        self.profile = profile
        self.device = device
        self.dtype = dtype

    def generate(
        self, params: GenerationInput, *, on_step: Callable[[int, int], None]
    ) -> npt.NDArray[np.uint8]:
        import torch

        def step_end(
            pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]
        ) -> dict[str, Any]:
            on_step(
                step + 1, params.num_inference_steps
            )  # may raise JobCancelledError: stops the loop
            return tensors

        kwargs: dict[str, Any] = {
            "prompt": params.prompt,
            "negative_prompt": params.negative_prompt or None,
            "num_frames": params.num_frames,
            "width": params.width,
            "height": params.height,
            "num_inference_steps": params.num_inference_steps,
            "guidance_scale": params.guidance_scale,
            "use_dynamic_cfg": self.profile.rotary,
            # A CPU generator: the same seed gives the same noise on any device.
            "generator": torch.Generator(device="cpu").manual_seed(params.seed),
            "output_type": "np",
            "callback_on_step_end": step_end,
        }
        if self.profile.image_to_video:
            if params.image is None:
                raise GenerationError(
                    "this model needs an input image (image_url or an uploaded image)"
                )
            from PIL import Image

            kwargs["image"] = Image.open(io.BytesIO(params.image)).convert("RGB")
        try:
            with torch.inference_mode():
                output = self.pipe(**kwargs)
        except torch.OutOfMemoryError as exc:
            self._release_memory()
            raise MemoryExhaustedError(self._oom_message(params)) from exc
        except RuntimeError as exc:
            if "out of memory" not in str(exc) and "can't allocate memory" not in str(exc):
                raise
            self._release_memory()
            raise MemoryExhaustedError(self._oom_message(params)) from exc
        frames = np.asarray(output.frames[0], dtype=np.float32)  # F×H×W×3 in [0, 1]
        frames = np.nan_to_num(frames, nan=0.0)  # half precision can overflow: black, not a crash
        result: npt.NDArray[np.uint8] = (np.clip(frames, 0.0, 1.0) * 255.0).round().astype(np.uint8)
        return result

    def _oom_message(self, params: GenerationInput) -> str:
        where = "GPU" if self.device.type == "cuda" else "host"
        size = f"{params.width}x{params.height}"
        return (
            f"out of {where} memory generating {params.num_frames} frames at {size}; "
            "use fewer frames or a smaller size, or restart the worker with --offload model"
        )

    def _release_memory(self) -> None:
        import gc

        import torch

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def load_engine(settings: WorkerSettings) -> DiffusersEngine:
    """Resolve, inspect, load and place the checkpoint; a failure is a ``SetupError``."""
    folder = resolve_model_path(settings.model_path, allow_download=settings.allow_download)
    profile = read_profile(folder, name=_display_name(settings.model_path))
    device = _pick_device(settings.device)
    dtype = _pick_dtype(settings.dtype, profile, device)

    import diffusers
    import torch
    import transformers
    from diffusers import CogVideoXDPMScheduler, CogVideoXImageToVideoPipeline, CogVideoXPipeline

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    pipeline_cls = CogVideoXImageToVideoPipeline if profile.image_to_video else CogVideoXPipeline
    log.info(
        "loading %s (%s) from %s on %s as %s", profile.name, profile.family, folder, device, dtype
    )
    try:
        pipe: Any = pipeline_cls.from_pretrained(str(folder), dtype=dtype)
    except Exception as exc:
        raise SetupError(
            f"could not load the model from {folder}: {type(exc).__name__}: {exc}"
        ) from exc
    if profile.rotary:
        pipe.scheduler = CogVideoXDPMScheduler.from_config(
            pipe.scheduler.config, timestep_spacing="trailing"
        )
    pipe.set_progress_bar_config(disable=True)

    if device.type == "cuda":
        # Offload hooks move each model to the GPU when it runs: never combine them with .to().
        if settings.offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        elif settings.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        else:
            pipe.to(device)
        if settings.vae_tiling:
            pipe.vae.enable_tiling()
    else:
        if settings.offload != "none":
            # The offload calls raise on a machine without an accelerator.
            log.warning("--offload %s ignored: it needs a CUDA device", settings.offload)
        pipe.to(device)
    if settings.quantize != "none":
        quantize_transformer(pipe, settings.quantize)
    if settings.compile:
        pipe.transformer = torch.compile(pipe.transformer, mode="max-autotune-no-cudagraphs")
    return DiffusersEngine(pipe, profile=profile, device=device, dtype=dtype)


def quantize_transformer(pipe: Any, method: str) -> None:
    """Quantize the transformer in place with torchao (``worker/requirements-gpu.txt``)."""
    try:
        from torchao.quantization import (  # type: ignore[import-not-found, unused-ignore]
            Float8DynamicActivationFloat8WeightConfig,
            Int8DynamicActivationInt8WeightConfig,
            Int8WeightOnlyConfig,
            quantize_,
        )
    except ImportError as exc:
        raise SetupError(
            f"--quantize {method} needs torchao: pip install -r worker/requirements-gpu.txt"
        ) from exc
    configs = {
        "int8wo": Int8WeightOnlyConfig,
        "int8dq": Int8DynamicActivationInt8WeightConfig,
        "fp8dq": Float8DynamicActivationFloat8WeightConfig,
    }
    try:
        quantize_(pipe.transformer, configs[method]())
    except Exception as exc:
        raise SetupError(f"--quantize {method} failed: {type(exc).__name__}: {exc}") from exc


def _display_name(model_path: str) -> str:
    path = Path(model_path)
    return path.name if path.is_dir() else model_path
