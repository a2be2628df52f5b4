"""Worker settings: one typed, frozen object built from CLI flags (``python -m worker serve``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Offload = Literal["none", "model", "sequential"]
Quantization = Literal["none", "int8wo", "int8dq", "fp8dq"]
DTYPES = ("auto", "float32", "float16", "bfloat16")


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    """Everything the worker needs; defaults are what a single-GPU host wants."""

    model_path: str
    device: str = "auto"  # auto | cuda | cuda:N | cpu
    # auto: the checkpoint's dtype on CUDA (2b float16, 5b bfloat16), float32 on CPU
    dtype: str = "auto"
    host: str = "127.0.0.1"
    port: int = 8100
    token: str | None = None
    output_dir: Path = Path("data/worker/videos")
    max_queue: int = 8  # waiting jobs, not counting the running one
    retention_s: float = 3600.0  # finished videos (and their task records) are deleted after this
    offload: Offload = "none"
    vae_tiling: bool = True
    compile: bool = False
    quantize: Quantization = "none"
    allow_download: bool = False  # let a hub id be downloaded instead of requiring the local cache
    max_image_bytes: int = 20 * 1024 * 1024
    image_fetch_timeout_s: float = 20.0
    # Networks (10.0.0.0/8) or host names image_url may reach although they are private.
    private_url_allowlist: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {self.device!r}")
        if self.max_queue < 0:
            raise ValueError("max_queue must be >= 0")
        if self.retention_s <= 0:
            raise ValueError("retention_s must be > 0")
        if self.token is not None and not self.token.strip():
            raise ValueError("token must not be empty")
