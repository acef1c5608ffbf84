"""The VAE decode upcast (engine/vae_decode.py): latents that overflow float16 in the decoder
still give a finite image, the same one float32 gives."""

from __future__ import annotations

import pytest
import torch

from engine import vae_decode


def _vae(dtype):
    from diffusers import AutoencoderKL

    from engine.models.registry import RESOURCES

    return AutoencoderKL.from_pretrained(RESOURCES / "models/sfumato-tiny/vae", torch_dtype=dtype)


@pytest.fixture
def overflowing_latents() -> torch.Tensor:
    """±40000: representable in float16, but the decoder's first conv sums past 65504."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(1, 4, 8, 8, generator=g).sign() * 4e4


def test_latents_that_overflow_in_fp16_decode_to_a_finite_image(overflowing_latents):
    ref = _vae(torch.float32).decode(overflowing_latents).sample
    vae = _vae(torch.float16)
    z = overflowing_latents.half()
    assert not torch.isfinite(vae.decode(z).sample).all()  # the premise: plain fp16 overflows

    vae_decode.install(vae)
    out = vae.decode(z).sample
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.02
    assert (
        vae_decode.decoder_dtype(vae) == torch.float32
        and vae.encoder.conv_in.weight.dtype == torch.float16
    )  # only the decoder moved
    ordinary = vae.decode(torch.randn(1, 4, 8, 8, dtype=torch.float16)).sample
    assert ordinary.dtype == torch.float16 and torch.isfinite(ordinary).all()
    vae_decode.uninstall(vae)
    assert "decode" not in vars(vae)


def test_decode_stays_in_half_precision_while_it_is_finite():
    vae = _vae(torch.bfloat16)
    vae_decode.install(vae)
    vae_decode.install(vae)  # idempotent
    out = vae.decode(torch.randn(1, 4, 8, 8, dtype=torch.bfloat16), return_dict=False)[0]
    assert out.dtype == torch.bfloat16 and vae_decode.decoder_dtype(vae) == torch.bfloat16


def test_nan_latents_do_not_move_the_decoder_to_float32():
    """A diverged sampler's NaN latents decode to NaN in any dtype: that is no overflow, and
    the decoder keeps its dtype (the caller sees the NaN and says so)."""
    vae = _vae(torch.float16)
    vae.register_to_config(force_upcast=False)  # the embedded VAE's config says True
    vae_decode.install(vae)
    z = torch.randn(1, 4, 8, 8, dtype=torch.float16)
    z[0, 0, 0, 0] = float("nan")
    assert not torch.isfinite(vae.decode(z).sample).all()
    assert vae_decode.decoder_dtype(vae) == torch.float16


def test_force_upcast_config_moves_the_decoder_at_once():
    vae = _vae(torch.float16)
    vae.register_to_config(force_upcast=True)
    vae_decode.install(vae)
    assert vae_decode.decoder_dtype(vae) == torch.float32 and not vae.config.force_upcast
    assert vae.dtype == torch.float16  # the encoder, and so every encode, is unchanged


def test_every_loaded_model_gets_it(tmp_path):
    from engine.models.loader import ModelManager
    from engine.models.registry import ModelRegistry

    loaded = ModelManager("cpu", "bf16").load(ModelRegistry([tmp_path]).get("sfumato-tiny"))
    assert loaded.dtype == torch.bfloat16 and loaded.pipe.vae._sfumato_safe_decode
