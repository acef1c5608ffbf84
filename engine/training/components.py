"""Architectures of the embedded model: the Stable Diffusion classes, made small.

The same diffusers/transformers classes as SD 1.x (CLIPTextModel, AutoencoderKL,
UNet2DConditionModel, ControlNetModel), so every engine feature runs through the code paths real
weights use. Only the widths and depths differ; ``PRESETS`` names the sizes the training script
offers (``cpu`` is what a 2-core laptop trains in about an hour and a half, ``gpu`` a larger one
for a GPU session).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSize:
    text_width: int = 128
    text_layers: int = 3
    vae_channels: tuple[int, ...] = (16, 32, 64)  # 3 blocks: latents are 1/4 of the image
    unet_channels: tuple[int, ...] = (64, 128, 128)
    unet_layers: int = 1
    attention_heads: int = 4
    controlnet_embed: tuple[int, ...] = (16, 32, 64)  # one stride-2 conv per step after the first


PRESETS = {
    "cpu": ModelSize(),
    # Candidates for the GPU recipe, timed with random weights by bench/tiny_model_speed.py
    # --preset (one 64x64 image, 25 steps, CFG, 2 CPU threads; the budget is 2 s): see
    # docs/embedded-model.md for the numbers and the pick.
    "wide": ModelSize(
        text_width=192, text_layers=3, unet_channels=(96, 192, 192), attention_heads=6
    ),
    "deep": ModelSize(
        text_width=192,
        text_layers=4,
        unet_channels=(64, 128, 192),
        unet_layers=2,
        attention_heads=6,
    ),
    "gpu": ModelSize(
        text_width=256,
        text_layers=4,
        vae_channels=(32, 64, 128),
        unet_channels=(96, 192, 288),
        unet_layers=2,
        attention_heads=8,
    ),
    # The dry run's toy: every code path, seconds on a CPU.
    "toy": ModelSize(
        text_width=32,
        text_layers=1,
        vae_channels=(16, 16, 16),
        unet_channels=(32, 32, 64),
        attention_heads=2,
        controlnet_embed=(8, 16, 16),
    ),
}

LATENT_CHANNELS = 4


def text_encoder(size: ModelSize, vocab_size: int, bos: int, eos: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=size.text_width,
            intermediate_size=4 * size.text_width,
            num_hidden_layers=size.text_layers,
            num_attention_heads=max(1, size.text_width // 32),
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            bos_token_id=bos,
            eos_token_id=eos,
            pad_token_id=eos,
            projection_dim=size.text_width,
        )
    )


def vae(size: ModelSize, image_size: int):
    from diffusers import AutoencoderKL

    n = len(size.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=size.vae_channels,
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=16,
        sample_size=image_size,
    )


def unet(size: ModelSize, latent_size: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=latent_size,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        # No attention at full latent resolution (as SD has) keeps a CPU step cheap; cross-
        # attention at 1/2 and 1/4 and in the middle block carries the prompt.
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=size.unet_channels,
        layers_per_block=size.unet_layers,
        cross_attention_dim=size.text_width,
        attention_head_dim=size.attention_heads,  # diffusers' SD-1 name for the head count
        norm_num_groups=32,
    )


def controlnet_from_unet(unet_model, size: ModelSize):
    from diffusers import ControlNetModel

    return ControlNetModel.from_unet(
        unet_model, conditioning_embedding_out_channels=size.controlnet_embed
    )


def scheduler_config() -> dict:
    """SD 1.x's training noise schedule; DPM-Solver++ as the default sampler."""
    return {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "prediction_type": "epsilon",
        "steps_offset": 1,
        "timestep_spacing": "leading",
    }
