"""Previews worth watching (issue 14 item 3): the real VAE when cheap, else a smooth, toned
projection — never 16×16 blocks of saturated noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.previews import LatentPreviewer

TINY_VAE = Path(__file__).resolve().parents[2] / "resources/models/sfumato-tiny/vae"


@pytest.fixture(scope="module")
def tiny_pipe():
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        TINY_VAE.parent, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def previewer(tiny_pipe) -> LatentPreviewer:
    pv = LatentPreviewer.fit(tiny_pipe.vae, "cpu", torch.float32)
    pv.decode_share = 0.0  # the tests choose by budget_s alone
    return pv


def _clean_latent(pv: LatentPreviewer) -> torch.Tensor:
    x = torch.linspace(-1, 1, 64)
    image = torch.stack(
        [x[None, :].expand(64, 64), x[:, None].expand(64, 64), -x[None, :].expand(64, 64)]
    )[None]
    with torch.no_grad():
        return pv.vae.encode(image).latent_dist.mean[0] * pv.vae.config.scaling_factor


def test_the_rule_follows_the_measured_decode_time(previewer):
    pv = previewer
    assert pv.scale_factor == 4 and np.isfinite(pv.decode_s_per_latent_px)
    saved = pv.decode_s_per_latent_px
    try:
        pv.decode_s_per_latent_px = 1e-5  # 2.6 ms for 16×16: decode
        assert pv.uses_vae(16, 16) and not pv.uses_vae(128, 128)
        pv.decode_s_per_latent_px = 1e-3  # 0.26 s: project…
        assert not pv.uses_vae(16, 16)
        assert pv.uses_vae(16, 16, budget_s=0.3)  # …unless steps are slow enough to afford it
    finally:
        pv.decode_s_per_latent_px = saved


def test_a_vae_preview_of_a_clean_latent_is_the_decoded_image(previewer):
    pv = previewer
    z = _clean_latent(pv)
    saved = pv.budget_s
    pv.budget_s = 1e9
    try:
        preview = np.asarray(pv.image(z))
    finally:
        pv.budget_s = saved
    with torch.no_grad():
        direct = pv.vae.decode(z[None] / pv.vae.config.scaling_factor).sample[0]
    direct = ((direct.clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy()
    assert preview.shape == (64, 64, 3)
    assert np.abs(preview.astype(float) - direct).max() <= 1


def test_the_projection_is_upsampled_smoothly_not_in_blocks(previewer):
    pv = previewer
    saved = pv.budget_s
    pv.budget_s = 0.0  # as for a big model
    try:
        image = np.asarray(pv.image(_clean_latent(pv))).astype(int)
    finally:
        pv.budget_s = saved
    assert image.shape == (64, 64, 3)  # the image's size, not the latent's 16×16
    # Nearest-neighbour would repeat each latent pixel 4×: 3 of 4 horizontal neighbours equal.
    same = (np.abs(np.diff(image, axis=1)).sum(axis=2) == 0).mean()
    assert same < 0.4, same


def test_wide_noise_is_toned_and_a_clean_latent_left_alone(previewer):
    pv = previewer
    noise = torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(0)) * 14.0  # σ_max
    toned = pv.toned(noise)
    assert (toned.std(dim=(1, 2)) <= 2.0 * torch.as_tensor(pv.clean_std) + 1e-4).all()
    clean = _clean_latent(pv)
    assert torch.equal(pv.toned(clean), clean.float())


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M", "DDIM"])
def test_previews_show_the_picture_being_made_not_the_noise(previewer, tiny_pipe, sampler):
    """Mid-run, the preview (x̂₀ through the previewer) is much nearer the final image than a
    preview of x_t was."""
    from engine.previews import DenoisedTap
    from engine.protocol import GenerateParams
    from engine.samplers import effective_params

    pipe = tiny_pipe
    spec, eff = effective_params(GenerateParams(prompt="x", sampler=sampler, steps=12))
    pipe.scheduler = spec.build(dict(pipe.scheduler.config), eff)
    pv = previewer
    seen = {}

    def on_step(_pipe, i, _t, kwargs):
        if i == 2:
            seen["x0"] = np.asarray(pv.image(tap.latest(kwargs["latents"])[0])).astype(float)
            seen["xt"] = np.asarray(pv.image(kwargs["latents"][0])).astype(float)
        return {}

    saved, pv.budget_s = pv.budget_s, 1e9  # the built-in model's previews: its VAE
    with DenoisedTap(pipe.scheduler) as tap:
        out = pipe(
            "rocket, twemoji style, on a blue background",
            height=64,
            width=64,
            num_inference_steps=12,
            generator=torch.Generator().manual_seed(7),
            callback_on_step_end=on_step,
            callback_on_step_end_tensor_inputs=["latents"],
            output_type="np",
        )
    pv.budget_s = saved
    assert tap.x0 is None and "step" not in pipe.scheduler.__dict__  # unhooked
    final = out.images[0] * 255

    def likeness(preview: np.ndarray) -> float:  # correlation of the pictures' shapes
        return float(np.corrcoef(preview.mean(axis=2).ravel(), final.mean(axis=2).ravel())[0, 1])

    near_x0, near_xt = likeness(seen["x0"]), likeness(seen["xt"])
    print(sampler, "likeness at step 3 of 12: x0", round(near_x0, 3), "x_t", round(near_xt, 3))
    assert near_x0 > near_xt + 0.1, (near_x0, near_xt)


def test_the_tap_keeps_seeds_working_for_ancestral_samplers(tiny_pipe):
    """The tap must not hide ``step``'s signature: diffusers passes ``generator`` to a
    scheduler's step only when the signature names it, so Euler a under a tap that hid it drew
    its noise from the global RNG and one seed gave a different image every time."""
    import inspect

    from diffusers import EulerAncestralDiscreteScheduler

    from engine.previews import DenoisedTap

    pipe = tiny_pipe
    old = pipe.scheduler
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(old.config)
    try:
        images = []
        for noise in (1, 2):
            torch.manual_seed(noise)  # a different global RNG each time: it must not matter
            with DenoisedTap(pipe.scheduler) as tap:
                assert "generator" in inspect.signature(pipe.scheduler.step).parameters
                images.append(
                    pipe(
                        "red apple",
                        num_inference_steps=6,
                        height=64,
                        width=64,
                        generator=torch.Generator().manual_seed(17),
                        output_type="np",
                    ).images[0]
                )
                assert tap.x0 is not None
        assert np.array_equal(images[0], images[1])
    finally:
        pipe.scheduler = old
