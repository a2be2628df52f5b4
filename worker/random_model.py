# mypy: disallow-untyped-calls=False
"""Randomly initialised CogVideoX pipelines built from the real diffusers classes.

Weights cannot be downloaded in CI or in the benchmark sandbox, so tests and `bench/` build the
same architecture with random weights: the loading, scheduling, decoding and export code paths are
exactly those of a real checkpoint, only the pictures are noise. Presets:

- ``tiny``      CogVideoX-2b-style text-to-video (no rotary embeddings, DDIM), a few hundred KB;
- ``tiny-i2v``  CogVideoX-5b-I2V-style image-to-video (rotary + learned positions, DPM);
- ``2b``        the full-size CogVideoX-2b architecture (same FLOPs as the real model; ~13 GB in
                float16; the T5 encoder is the real 4096-wide, 24-layer one).

``python -m worker random-model DIR --preset tiny`` writes one to disk, loadable with
``python -m worker serve --model-path DIR`` to smoke-test a host without downloading weights.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# The text the tokenizer is trained on: enough distinct words for a small unigram vocabulary.
_CORPUS = (
    "a panda playing guitar in a bamboo forest at sunset",
    "a red sports car driving along a coastal road, cinematic lighting",
    "waves crashing on the rocks under a stormy sky, slow motion",
    "an astronaut walking on the moon, earth rising in the background",
    "a cat sleeping on a sunny windowsill while rain falls outside",
    "timelapse of clouds moving over snowy mountains, golden hour",
    "a chef cooking noodles in a busy street market at night",
    "children flying colourful kites on a windy green hill",
    "a drone shot over a neon city with flying cars and tall towers",
    "an old man reading a newspaper on a park bench in autumn",
)

PRESETS = ("tiny", "tiny-i2v", "2b")


@dataclass(frozen=True)
class Geometry:
    """The video size a preset is built for (its transformer's sample size)."""

    width: int
    height: int
    num_frames: int


GEOMETRY: dict[str, Geometry] = {
    "tiny": Geometry(width=96, height=64, num_frames=9),
    "tiny-i2v": Geometry(width=96, height=64, num_frames=9),
    "2b": Geometry(width=720, height=480, num_frames=49),
}


def build_tokenizer(folder: Path) -> None:
    """Train a small SentencePiece model (T5 ids: pad 0, eos 1, unk 2, no bos) into ``folder``."""
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_CORPUS * 4),
        model_writer=model,
        vocab_size=96,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    (folder / "spiece.model").write_bytes(model.getvalue())
    config = {"tokenizer_class": "T5Tokenizer", "extra_ids": 0, "model_max_length": 226}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def build_pipeline(preset: str, *, dtype: torch.dtype | None = None, device: str = "cpu") -> Any:
    """Build a random-weight pipeline of ``preset`` in memory (seeded: byte-identical each time)."""
    import tempfile

    import torch
    from diffusers import CogVideoXImageToVideoPipeline, CogVideoXPipeline
    from transformers import T5Tokenizer

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        build_tokenizer(Path(tmp))
        tokenizer = T5Tokenizer.from_pretrained(tmp)
    # Built on the target device (a full-size model never passes through host memory).
    components = _build_components(preset, tokenizer, device)
    if dtype is not None:
        for component in components.values():
            if isinstance(component, torch.nn.Module):
                # nn.Module.to: diffusers' own .to() warns about casting after construction.
                torch.nn.Module.to(component, dtype=dtype)
    pipeline_cls = CogVideoXImageToVideoPipeline if preset == "tiny-i2v" else CogVideoXPipeline
    pipe: Any = pipeline_cls(**components)
    return pipe


def _build_components(preset: str, tokenizer: Any, device: str) -> dict[str, Any]:
    import torch
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    geometry = GEOMETRY[preset]
    latent_w, latent_h = geometry.width // 8, geometry.height // 8
    with torch.device(device):
        if preset == "2b":
            # google/t5-v1_1-xxl, the encoder CogVideoX ships with.
            t5 = T5Config(
                vocab_size=32128, d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24,
                feed_forward_proj="gated-gelu",
            )  # fmt: skip
            text_encoder = T5EncoderModel(t5)
            transformer = CogVideoXTransformer3DModel(
                num_attention_heads=30, attention_head_dim=64, in_channels=16, out_channels=16,
                time_embed_dim=512, text_embed_dim=4096, num_layers=30, sample_width=latent_w,
                sample_height=latent_h, sample_frames=geometry.num_frames,
            )  # fmt: skip
            vae = AutoencoderKLCogVideoX(latent_channels=16, scaling_factor=1.15258426)
        else:
            t5 = T5Config(
                vocab_size=128, d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=2,
                feed_forward_proj="gated-gelu",
            )  # fmt: skip
            text_encoder = T5EncoderModel(t5)
            i2v = preset == "tiny-i2v"
            transformer = CogVideoXTransformer3DModel(
                # Rotary embeddings (5b-style) need a head dim divisible by 16.
                num_attention_heads=2 if i2v else 4, attention_head_dim=16 if i2v else 8,
                in_channels=8 if i2v else 4, out_channels=4, time_embed_dim=2, text_embed_dim=32,
                num_layers=1, sample_width=latent_w, sample_height=latent_h,
                sample_frames=geometry.num_frames, patch_size=2, temporal_compression_ratio=4,
                max_text_seq_length=226, use_rotary_positional_embeddings=i2v,
                use_learned_positional_embeddings=i2v,
            )  # fmt: skip
            vae = AutoencoderKLCogVideoX(
                in_channels=3, out_channels=3, block_out_channels=(8, 8, 8, 8), latent_channels=4,
                layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4,
                down_block_types=("CogVideoXDownBlock3D",) * 4,
                up_block_types=("CogVideoXUpBlock3D",) * 4,
            )  # fmt: skip
    # The CogVideoX-2b checkpoint's scheduler settings.
    scheduler = CogVideoXDDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        prediction_type="v_prediction", rescale_betas_zero_snr=True, set_alpha_to_one=True,
        snr_shift_scale=3.0 if preset != "tiny-i2v" else 1.0, timestep_spacing="trailing",
    )  # fmt: skip
    return {
        "tokenizer": tokenizer,
        "text_encoder": text_encoder,
        "transformer": transformer,
        "vae": vae,
        "scheduler": scheduler,
    }


def save_random_model(folder: Path, preset: str) -> Path:
    """Build ``preset`` and ``save_pretrained`` it into ``folder`` (a checkpoint-shaped folder)."""
    pipe = build_pipeline(preset)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder
