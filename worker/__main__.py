"""``python -m worker serve --model-path DIR`` (and ``random-model`` to write a test checkpoint)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import get_args

from worker.config import DTYPES, Offload, Quantization, WorkerSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m worker", description="CogVideoX GPU worker")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve a CogVideoX checkpoint over HTTP")
    serve.add_argument("--model-path", required=True, help="checkpoint folder, or a cached hub id")
    serve.add_argument("--device", default="auto", help="auto (default), cuda, cuda:N or cpu")
    serve.add_argument(
        "--dtype", default="auto", choices=DTYPES, help="auto: 2b float16, 5b bfloat16, CPU float32"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8100)
    serve.add_argument(
        "--token",
        # Blank means unset, as Compose passes an empty ${WORKER_TOKEN:-}.
        default=os.environ.get("WORKER_TOKEN") or None,
        help="bearer token (default: $WORKER_TOKEN; none: no auth)",
    )
    serve.add_argument("--output-dir", type=Path, default=Path("data/worker/videos"))
    serve.add_argument(
        "--max-queue", type=int, default=8, help="waiting jobs before 429 (default 8)"
    )
    serve.add_argument(
        "--retention-s", type=float, default=3600.0, help="keep finished videos this long"
    )
    serve.add_argument(
        "--offload", default="none", choices=get_args(Offload), help="CPU offload for small GPUs"
    )
    serve.add_argument(
        "--no-vae-tiling", dest="vae_tiling", action="store_false", help="decode in one piece"
    )
    serve.add_argument("--compile", action="store_true", help="torch.compile the transformer")
    serve.add_argument(
        "--private-url-allowlist",
        default="",
        help="comma-separated networks or host names image_url may reach although private",
    )
    serve.add_argument(
        "--quantize", default="none", choices=get_args(Quantization), help="torchao quantization"
    )
    serve.add_argument(
        "--allow-download", action="store_true", help="download a hub id that is not cached"
    )
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))

    random_model = commands.add_parser(
        "random-model", help="write a random-weight checkpoint (smoke tests)"
    )
    random_model.add_argument("folder", type=Path)
    random_model.add_argument("--preset", default="tiny", choices=("tiny", "tiny-i2v"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "random-model":
        from worker.random_model import save_random_model

        print(save_random_model(args.folder, args.preset))
        return 0

    try:
        settings = WorkerSettings(
            model_path=args.model_path,
            device=args.device,
            dtype=args.dtype,
            host=args.host,
            port=args.port,
            token=args.token,
            output_dir=args.output_dir,
            max_queue=args.max_queue,
            retention_s=args.retention_s,
            offload=args.offload,
            vae_tiling=args.vae_tiling,
            compile=args.compile,
            quantize=args.quantize,
            allow_download=args.allow_download,
            private_url_allowlist=tuple(
                item.strip() for item in args.private_url_allowlist.split(",") if item.strip()
            ),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    import uvicorn

    from worker.app import create_app

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level=args.log_level
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
