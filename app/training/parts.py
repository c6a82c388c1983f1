"""The untrained parts of the shapes models: FLUX's architecture at a size a 2-core CPU trains
in minutes, and the same code path at inference (`FluxPipeline.from_pretrained`).

What follows real FLUX, because the pipeline depends on it: 16 latent channels, VAE scale
factor 8, 2x2 latent packing (a 128x128 image is 8x8 = 64 tokens), rope axes summing to the
head size, CLIP pooled + T5 sequence conditioning, the FLUX.1 schedulers' configs. What is
small: every width and depth, the vocabulary (the shapes world's words only) and the T5
sequence, `TEXT_TOKENS` long: the pipeline pads every prompt to `max_sequence_length` and
FLUX attends to the padding too, so a model sees at inference the length it was trained on
(the demo's variants set `max_sequence_length = TEXT_TOKENS`).
"""

from __future__ import annotations

import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.transformers.transformer_flux import FluxTransformer2DModel
from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5Tokenizer

from app.training.shapes import vocabulary
from app.worker.tiny import _clip_tokenizer, _t5_encoder, _t5_tokenizer, clip_text_config

TRAIN_SIZE = 128
TEXT_TOKENS = 32
TEXT_WIDTH = 64  # CLIP hidden = pooled projection; T5 d_model = joint attention dim

# The transformer: 4 heads of 32 (rope axes 8 + 12 + 12), two double-stream blocks and four
# single-stream ones; ~2.3 M parameters.
HEADS = 4
HEAD_DIM = 32
ROPE_AXES = (8, 12, 12)
DOUBLE_BLOCKS = 2
SINGLE_BLOCKS = 4


def tokenizers() -> tuple[CLIPTokenizer, T5Tokenizer]:
    """CLIP's byte-level BPE and T5's Unigram layout, learned on the shapes world's words: each
    word of a prompt is one T5 piece."""
    words = vocabulary()
    return _clip_tokenizer(words), _t5_tokenizer(words)


def text_encoders(
    clip_tokenizer: CLIPTokenizer, t5_tokenizer: T5Tokenizer, seed: int
) -> tuple[CLIPTextModel, T5EncoderModel]:
    torch.manual_seed(seed)
    clip = CLIPTextModel(
        clip_text_config(clip_tokenizer, hidden_size=TEXT_WIDTH, projection_dim=TEXT_WIDTH)
    )
    # 16 position buckets where the random models have 8: word order matters here.
    # No dropout (T5's default is 0.1, in its layers and its attention): it draws from torch's
    # global generator, so a resumed run would not repeat an uninterrupted one; a two-layer
    # encoder of a ~40-word vocabulary does not need it.
    t5 = _t5_encoder(t5_tokenizer, TEXT_WIDTH, buckets=16, seed=seed + 1, dropout_rate=0.0)
    return clip, t5


def transformer(guidance_embeds: bool, seed: int) -> FluxTransformer2DModel:
    torch.manual_seed(seed)
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,  # 16 latent channels packed 2x2
        num_layers=DOUBLE_BLOCKS,
        num_single_layers=SINGLE_BLOCKS,
        attention_head_dim=HEAD_DIM,
        num_attention_heads=HEADS,
        joint_attention_dim=TEXT_WIDTH,
        pooled_projection_dim=TEXT_WIDTH,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=ROPE_AXES,
    )


def autoencoder(seed: int) -> AutoencoderKL:
    """Four levels (scale factor 8) of narrow convolutions, 32 wide: with 16 at the full-size
    level the decoder gave back two hues of six (red or cyan) however long it trained, and 32
    gave back all six in 300 steps (docs/benchmarks.md). `scaling_factor` and
    `shift_factor` are placeholders here: training sets them from the latents' statistics,
    as FLUX's are (0.3611, 0.1159), so the transformer sees latents of unit variance."""
    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32, 32, 32, 32),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=8,
        sample_size=TRAIN_SIZE,
        scaling_factor=1.0,
        shift_factor=0.0,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
