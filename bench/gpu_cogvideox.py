"""CogVideoX-2b on one GPU: seconds per video and peak VRAM, eager vs torch.compile vs quantized.

    .venv-worker/bin/python bench/gpu_cogvideox.py         # GPU: full-size 2b, 49×720×480, 50 steps
    .venv-worker/bin/python bench/gpu_cogvideox.py --tiny  # anywhere: tiny model, CPU smoke run
    .venv-worker/bin/python bench/gpu_cogvideox.py --model-path /models/CogVideoX-2b  # real weights

Weights cannot be downloaded here, so by default the real CogVideoX-2b architecture (T5-XXL
encoder, 30-layer transformer, full VAE) is built with random weights directly on the GPU: the
same FLOPs and memory as the checkpoint, only the pictures are noise. Every variant runs through
the worker's own engine (``worker.engine.DiffusersEngine``: CPU generator, step callback, VAE
tiling, uint8 conversion), so the numbers are what ``python -m worker serve`` would do. Without a
GPU the script runs the tiny preset on CPU, prints the same table and exits 0.

Published references (50 steps): 2b on A100 ~90 s, H100 ~45 s; torch.compile 2b on A100 96.9 s →
76–84 s; compiled int8 dynamic quantization 75 s.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.config import Quantization, WorkerSettings
from worker.engine import DiffusersEngine, ModelProfile, load_engine, quantize_transformer
from worker.errors import SetupError
from worker.jobs import GenerationInput
from worker.random_model import GEOMETRY, build_pipeline

# name → (quantization, torch.compile)
VARIANTS: dict[str, tuple[Quantization, bool]] = {
    "eager": ("none", False),
    "compile": ("none", True),
    "int8wo": ("int8wo", False),
    "int8dq+compile": ("int8dq", True),
    "fp8dq+compile": ("fp8dq", True),
}
PROMPT = "a panda playing guitar in a bamboo forest at sunset, cinematic lighting"


@dataclass
class Row:
    variant: str
    status: str
    warmup_s: float | None = None
    video_s: float | None = None
    step_s: float | None = None
    peak_gib: float | None = None


def _engine(args: argparse.Namespace, quantize: Quantization, compile_: bool) -> DiffusersEngine:
    import torch

    if args.model_path:
        settings = WorkerSettings(
            model_path=args.model_path, device=args.device, quantize=quantize, compile=compile_
        )
        return load_engine(settings)
    preset = "tiny" if args.tiny else "2b"
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    pipe = build_pipeline(preset, dtype=dtype, device=args.device)
    pipe.set_progress_bar_config(disable=True)
    if device.type == "cuda":
        pipe.vae.enable_tiling()  # as the worker does on CUDA
    if quantize != "none":
        quantize_transformer(pipe, quantize)
    if compile_:
        pipe.transformer = torch.compile(pipe.transformer, mode="max-autotune-no-cudagraphs")
    geometry = GEOMETRY[preset]
    profile = ModelProfile(
        name=f"random-{preset}", family="cogvideox-2b", image_to_video=False, rotary=False,
        default_dtype="float16", width=geometry.width, height=geometry.height,
        num_frames=geometry.num_frames, fps=8, frame_multiple=8, max_frames=49, fixed_size=False,
    )  # fmt: skip
    return DiffusersEngine(pipe, profile=profile, device=device, dtype=dtype)


def _run(engine: DiffusersEngine, args: argparse.Namespace, steps: int) -> float:
    import torch

    params = GenerationInput(
        prompt=PROMPT, negative_prompt="", num_frames=args.frames, width=args.width,
        height=args.height, num_inference_steps=steps, guidance_scale=6.0, seed=42, fps=8,
    )  # fmt: skip
    if engine.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    engine.generate(params, on_step=lambda done, total: None)
    if engine.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def bench_variant(name: str, args: argparse.Namespace) -> Row:
    import torch

    quantize, compile_ = VARIANTS[name]
    cuda = args.device.startswith("cuda")
    engine: DiffusersEngine | None = None
    try:
        engine = _engine(args, quantize, compile_)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        # The warm-up pays for compilation (same shapes: a few steps are enough).
        warmup = _run(engine, args, min(args.steps, 2))
        video = _run(engine, args, args.steps)
        if cuda:
            peak = torch.cuda.max_memory_allocated() / 2**30
        else:  # process-wide peak RSS (Linux reports KiB)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        return Row(name, "ok", warmup, video, video / args.steps, peak)
    except SetupError as exc:
        return Row(name, f"skipped: {exc}")
    except Exception as exc:  # a benchmark reports, it does not crash
        return Row(name, f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
    finally:
        del engine
        gc.collect()
        torch._dynamo.reset()
        if cuda:
            torch.cuda.empty_cache()


def _fmt(value: float | None, spec: str) -> str:
    width = spec.split(".")[0]
    return format(value, spec) if value is not None else format("-", f">{width}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tiny", action="store_true", help="tiny random model (CPU smoke run)")
    parser.add_argument(
        "--model-path", help="benchmark a real checkpoint instead of random weights"
    )
    parser.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    parser.add_argument("--variants", default=None, help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args(argv)

    import torch

    has_cuda = torch.cuda.is_available()
    if args.device is None:
        args.device = "cuda" if has_cuda else "cpu"
    if not args.device.startswith("cuda") and not args.model_path and not args.tiny:
        print("No CUDA device: running the tiny model on CPU (use a GPU host for the 2b numbers).")
        args.tiny = True
    geometry = GEOMETRY["tiny" if args.tiny else "2b"]
    args.frames = args.frames or geometry.num_frames
    args.width = args.width or geometry.width
    args.height = args.height or geometry.height
    args.steps = args.steps or (4 if args.tiny else 50)
    if args.variants:
        names = [n.strip() for n in args.variants.split(",") if n.strip()]
    elif args.device.startswith("cuda"):
        names = list(VARIANTS)
    else:
        names = ["eager", "compile", "int8wo"]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")

    model = args.model_path or ("random tiny (2b-style)" if args.tiny else "random CogVideoX-2b")
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"model: {model} · device: {device_name} · torch {torch.__version__}")
    print(
        f"video: {args.frames} frames {args.width}x{args.height}, {args.steps} steps, guidance 6\n"
    )

    rows = [bench_variant(name, args) for name in names]
    memory = "peak VRAM GiB" if args.device.startswith("cuda") else "peak RSS GiB"
    header = f"{'variant':<16} {'s/video':>9} {'s/step':>8} {'warm-up s':>10} {memory:>14}  status"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.variant:<16} {_fmt(row.video_s, '9.2f')} {_fmt(row.step_s, '8.3f')} "
            f"{_fmt(row.warmup_s, '10.2f')} {_fmt(row.peak_gib, '14.2f')}  {row.status}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
