"""Tiny rectified-flow pipelines (SD3 and Flux) with random weights, written to disk.

Same layout and component classes as real SD3/SD3.5 and Flux.1 weights (an MMDiT transformer,
a 16-channel VAE, CLIP text encoders and a T5 encoder, a flow-matching scheduler), so the
engine's real loading and sampling code runs on them; a few MB, built in seconds. The CLIP
tokenizers are the merge-free byte-level BPE of :mod:`tests.support.tiny_sd`; the T5 tokenizer
is a word-level ``tokenizers`` model built here (no SentencePiece file can be downloaded).

    python -m tests.support.tiny_flow --arch sd3|flux --out DIR
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests.support.tiny_sd import write_byte_level_clip_tokenizer

ARCHES = ("sd3", "flux")


def _clip(vocab: int, projection: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        bos_token_id=vocab - 2,
        eos_token_id=vocab - 1,
        pad_token_id=vocab - 1,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=vocab,
        max_position_embeddings=77,
        projection_dim=32,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _clip_tokenizer():
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tok_dir:
        vocab = write_byte_level_clip_tokenizer(Path(tok_dir))
        return CLIPTokenizer.from_pretrained(tok_dir), vocab


def t5_tokenizer(max_length: int = 32):
    """A small T5-style tokenizer (SentencePiece unigram with T5's special tokens): a few words
    and every printable character, so any prompt tokenizes. Ids stay below 120."""
    import string

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import T5TokenizerFast

    # T5's own tokenizer is a SentencePiece unigram model: build one with a few words and every
    # printable character, so any prompt tokenizes (transformers' T5 tokenizer wants Unigram)
    pieces = ["<pad>", "</s>", "<unk>"]
    words = (
        "a an the of on in with and red green blue cat dog tree house sky sea portrait "
        "photo painting"
    )
    pieces += [f"▁{w}" for w in words.split()]
    pieces += ["▁", *string.printable.strip()]
    backend = Tokenizer(models.Unigram([(p, -float(i)) for i, p in enumerate(pieces)], unk_id=2))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    return T5TokenizerFast(
        tokenizer_object=backend,
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_ids=0,
        model_max_length=max_length,
    )


def _t5(max_length: int = 32):
    """A tiny T5 encoder and :func:`t5_tokenizer`."""
    from transformers import T5Config, T5EncoderModel

    tokenizer = t5_tokenizer(max_length)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return T5EncoderModel(config), tokenizer


def _vae(scaling: float, shift: float):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=16,
        norm_num_groups=16,
        sample_size=64,
        scaling_factor=scaling,
        shift_factor=shift,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def build_tiny_sd3(path: Path, seed: int = 0) -> Path:
    """SD3-format: MMDiT, CLIP-L + CLIP-G (with projection, pooled) + T5, shift 3."""
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )

    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=32,
        caption_projection_dim=32,
        pooled_projection_dim=64,
        pos_embed_max_size=32,
    )
    tokenizer, vocab = _clip_tokenizer()
    tokenizer_2, _ = _clip_tokenizer()
    t5, tokenizer_3 = _t5()
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(1.5305, 0.0609),
        text_encoder=_clip(vocab, True),
        tokenizer=tokenizer,
        text_encoder_2=_clip(vocab, True),
        tokenizer_2=tokenizer_2,
        text_encoder_3=t5,
        tokenizer_3=tokenizer_3,
    )
    pipe.save_pretrained(path, safe_serialization=True)
    return Path(path)


def build_tiny_flux(path: Path, seed: int = 0) -> Path:
    """Flux.1-dev-format: MMDiT + single-stream blocks, CLIP-L (pooled) + T5, distilled
    guidance embedding, resolution-dependent (dynamic) shift."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=True,
        axes_dims_rope=(4, 6, 6),
    )
    tokenizer, vocab = _clip_tokenizer()
    t5, tokenizer_2 = _t5()
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    pipe = FluxPipeline(
        transformer=transformer,
        scheduler=scheduler,
        vae=_vae(0.3611, 0.1159),
        text_encoder=_clip(vocab, False),
        tokenizer=tokenizer,
        text_encoder_2=t5,
        tokenizer_2=tokenizer_2,
    )
    pipe.save_pretrained(path, safe_serialization=True)
    return Path(path)


def build_tiny_flow(arch: str, path: Path, seed: int = 0) -> Path:
    if arch == "sd3":
        return build_tiny_sd3(path, seed)
    if arch == "flux":
        return build_tiny_flux(path, seed)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHES)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=ARCHES, required=True)
    parser.add_argument("--out", type=Path, required=True, help="the diffusers folder to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_tiny_flow(args.arch, args.out, args.seed))


if __name__ == "__main__":
    main()
