"""Offline tiny FLUX pipelines: real diffusers `FluxPipeline`s with small random weights.

They are built locally with no network, written with `save_pretrained` and loaded back only
through `FluxPipeline.from_pretrained(path)`, the code path real FLUX takes. The shapes follow
real FLUX where the pipeline depends on them (16 latent channels, VAE scale factor 8, 2x2 latent
packing, rope axes summing to the head size, CLIP pooled + T5 sequence conditioning), and every
size that only costs time is tiny, so the demo and the tests run on a laptop CPU in seconds.

The tiny schnell's folder also holds its transformer as a Q8_0 GGUF file (`tiny:schnell-q8`),
loaded through diffusers' GGUF path as a real FLUX GGUF is (app/worker/gguf.py).

A build is deterministic (fixed seeds: two builds give byte-identical files), idempotent (a
marker file holding `BUILD_VERSION` says a folder is complete) and atomic (each folder is
built under a temporary name next to its target and renamed into place).
"""

from __future__ import annotations

import functools
import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch

# Imported from their modules: for a type checker, the top-level `diffusers` names are the
# placeholder objects diffusers defines for installs without torch.
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.transformers.transformer_flux import FluxTransformer2DModel
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline
from diffusers.schedulers.scheduling_flow_match_euler_discrete import (
    FlowMatchEulerDiscreteScheduler,
)
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
)

from app.worker.model_folders import build_atomically

# Bump when anything below changes what is written: folders with another version are rebuilt.
BUILD_VERSION = "2"

TINY_MODELS: dict[str, str] = {"tiny:schnell": "tiny-flux-schnell", "tiny:dev": "tiny-flux-dev"}
LORA_DIR = "tiny-flux-dev-turbo-lora"
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
TINY_LORAS: dict[str, str] = {"tiny:turbo-lora": f"{LORA_DIR}/{LORA_WEIGHT_NAME}"}
# Inside the schnell folder: built with it, from the same transformer.
SCHNELL_Q8_GGUF = "gguf/tiny-flux-schnell-Q8_0.gguf"
TINY_GGUFS: dict[str, str] = {"tiny:schnell-q8": f"{TINY_MODELS['tiny:schnell']}/{SCHNELL_Q8_GGUF}"}

SEED = 0
CLIP_MAX_LENGTH = 77
T5_MAX_LENGTH = 512
CLIP_HIDDEN = 32  # = transformer pooled_projection_dim
T5_D_MODEL = 32  # = transformer joint_attention_dim

# Scheduler configs copied from black-forest-labs/FLUX.1-{schnell,dev}/scheduler.
SCHNELL_SCHEDULER: dict[str, Any] = {
    "base_image_seq_len": 256,
    "base_shift": 0.5,
    "max_image_seq_len": 4096,
    "max_shift": 1.15,
    "num_train_timesteps": 1000,
    "shift": 1.0,
    "use_dynamic_shifting": False,
}
DEV_SCHEDULER: dict[str, Any] = {**SCHNELL_SCHEDULER, "shift": 3.0, "use_dynamic_shifting": True}

# The alimama-creative FLUX.1-Turbo-Alpha LoRA adapts the attention projections of every block.
LORA_TARGETS = [
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "add_q_proj",
    "add_k_proj",
    "add_v_proj",
    "to_add_out",
]
LORA_RANK = 4
LORA_ALPHA = 8  # != rank on purpose: loading must read it from the metadata to scale right

# Training text for the tokenizers: enough words that prompts split into a few pieces each.
WORD_LIST = """
a an the of and with in on at by for from to under over near behind between into photo
portrait painting drawing illustration render sketch poster watercolor oil pencil close-up
wide-angle aerial view macro cinematic studio lighting light shadow night day sunset sunrise
morning evening golden hour fog mist rain snow storm cloud clouds sky cat dog bird horse fox
owl fish dragon robot astronaut knight wizard woman man child city street house castle tower
bridge forest mountain river lake ocean beach desert field garden flower flowers tree trees
leaf leaves rock stone glass metal wood water fire ice red orange yellow green blue purple
pink black white gray brown gold silver small large tiny giant old young ancient modern
futuristic cyberpunk fantasy surreal detailed realistic photorealistic highly sharp soft
bright dark colorful vibrant text sign reads says letters word words hands holding standing
sitting running flying two three four five many one style art digital 4k 8k high quality
masterpiece
"""
WORDS = WORD_LIST.split()


def build_tiny_models(models_dir: Path, *, force: bool = False) -> dict[str, Path]:
    """Build the tiny pipelines and LoRA under `models_dir` unless they are already there.

    Returns every tiny ref (`tiny:schnell`, `tiny:dev`, `tiny:turbo-lora`) mapped to its path.
    """
    models_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for ref, folder in TINY_MODELS.items():
        write = functools.partial(_write_pipeline, guidance_embeds=ref == "tiny:dev")
        paths[ref] = build_atomically(
            models_dir / folder, write, force=force, version=BUILD_VERSION
        )
    build_atomically(models_dir / LORA_DIR, _write_turbo_lora, force=force, version=BUILD_VERSION)
    for ref, relative in TINY_LORAS.items():
        paths[ref] = models_dir / relative
    return paths


def resolve_ref(ref: str, models_dir: Path) -> str:
    """A `tiny:` ref becomes its local path (built on first use); other refs pass unchanged."""
    if not ref.startswith("tiny:"):
        return ref
    known = {**TINY_MODELS, **TINY_LORAS, **TINY_GGUFS}
    if ref not in known:
        raise ValueError(f"unknown tiny model {ref!r} (known: {', '.join(sorted(known))})")
    build_tiny_models(models_dir)
    return str(models_dir / known[ref])


def _write_pipeline(out: Path, guidance_embeds: bool) -> None:
    tokenizer, tokenizer_2 = _clip_tokenizer(), _t5_tokenizer()
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(
            **(DEV_SCHEDULER if guidance_embeds else SCHNELL_SCHEDULER)
        ),
        vae=_vae(),
        text_encoder=_clip_text_encoder(tokenizer),
        tokenizer=tokenizer,
        text_encoder_2=_t5_encoder(tokenizer_2),
        tokenizer_2=tokenizer_2,
        transformer=_transformer(guidance_embeds),
    )
    pipe.save_pretrained(out)
    if not guidance_embeds:
        write_q8_gguf(pipe.transformer, out / SCHNELL_Q8_GGUF)


# Q8_0 stores blocks of 32 weights along a row: 32 int8 values and one float16 scale.
Q8_BLOCK = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0]


def write_q8_gguf(transformer: torch.nn.Module, path: Path) -> None:
    """Write a transformer's weights as a GGUF file, its matrices quantized to Q8_0.

    Like city96's FLUX GGUFs, vectors (biases, norm scales) stay float32. Unlike them, every
    matrix whose rows split into Q8_0 blocks is quantized, however small: their converter keeps
    tensors of up to 1024 values in float, which would be all of the tiny model's. The keys are
    diffusers' own (see app/worker/gguf.py for why not the BFL layout).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(path, arch="flux")
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    for name, tensor in transformer.state_dict().items():
        data = tensor.detach().to(torch.float32).numpy()
        if data.ndim == 2 and data.shape[1] % Q8_BLOCK == 0:
            q8 = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(name, gguf.quants.quantize(data, q8), raw_dtype=q8)
        else:
            writer.add_tensor(name, np.ascontiguousarray(data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _write_turbo_lora(out: Path) -> None:
    transformer = _transformer(guidance_embeds=True)
    config = LoraConfig(
        r=LORA_RANK,
        lora_alpha=LORA_ALPHA,
        target_modules=LORA_TARGETS,
        # peft's default zeroes lora_B, which would make the LoRA a no-op.
        init_lora_weights=False,
    )
    torch.manual_seed(SEED + 1)
    transformer.add_adapter(config)
    save_lora(transformer, out, rank=LORA_RANK, alpha=LORA_ALPHA, targets=LORA_TARGETS)


def save_lora(transformer: Any, out: Path, *, rank: int, alpha: int, targets: list[str]) -> Path:
    """A transformer's adapter alone, in the layout diffusers' `load_lora_weights` reads (and
    the published Turbo LoRAs use), byte-identical for identical weights."""
    # Only what loading needs, and target_modules sorted: peft keeps them in a set, which
    # would be written in hash order and break byte-identical builds.
    metadata = {"r": rank, "lora_alpha": alpha, "target_modules": sorted(targets)}
    FluxPipeline.save_lora_weights(
        out,
        transformer_lora_layers=get_peft_model_state_dict(transformer),
        weight_name=LORA_WEIGHT_NAME,
        transformer_lora_adapter_metadata=metadata,
    )
    _sort_safetensors_header(out / LORA_WEIGHT_NAME)
    return out / LORA_WEIGHT_NAME


def _sort_safetensors_header(path: Path) -> None:
    """Rewrite a safetensors header with its keys sorted, in place (same length, same data).

    safetensors writes the `__metadata__` entries in Rust hash order, which changes from one
    process to the next; this file has two of them (format and the LoRA config).
    """
    with path.open("r+b") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        f.seek(8)
        f.write(json.dumps(header, sort_keys=True, separators=(",", ":")).encode().ljust(size))


def _transformer(
    guidance_embeds: bool,
    *,
    layers: int = 2,
    heads: int = 2,
    head_dim: int = 16,
    axes_dims_rope: tuple[int, int, int] = (4, 6, 6),  # sums to head_dim
    dtype: torch.dtype = torch.float32,
    joint_attention_dim: int = T5_D_MODEL,
) -> FluxTransformer2DModel:
    torch.manual_seed(SEED)
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,  # 16 latent channels packed 2x2, as in FLUX
        num_layers=layers,
        num_single_layers=layers,
        attention_head_dim=head_dim,
        num_attention_heads=heads,
        joint_attention_dim=joint_attention_dim,
        pooled_projection_dim=CLIP_HIDDEN,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=axes_dims_rope,
    ).to(dtype)


def _vae() -> AutoencoderKL:
    torch.manual_seed(SEED)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,  # 4 levels: scale factor 8
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(4, 8, 16, 16),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=4,
        sample_size=1024,
        scaling_factor=0.3611,
        shift_factor=0.1159,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def clip_text_config(
    tokenizer: CLIPTokenizer, *, hidden_size: int, projection_dim: int
) -> CLIPTextConfig:
    """The tiny CLIP text tower, shared by the FLUX text encoder and the tiny CLIP scorer."""
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=CLIP_MAX_LENGTH,
        projection_dim=projection_dim,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _clip_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    torch.manual_seed(SEED)
    config = clip_text_config(tokenizer, hidden_size=CLIP_HIDDEN, projection_dim=CLIP_HIDDEN)
    return CLIPTextModel(config)


def _t5_encoder(
    tokenizer: T5Tokenizer,
    d_model: int = T5_D_MODEL,
    *,
    buckets: int = 8,
    seed: int = SEED,
    dropout_rate: float = 0.1,  # T5Config's default, which the random models keep
) -> T5EncoderModel:
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=d_model // 4,
        d_ff=2 * d_model,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=buckets,
        dropout_rate=dropout_rate,
        feed_forward_proj="gated-gelu",  # T5 v1.1, as FLUX's t5-v1_1-xxl
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return T5EncoderModel(config)


def _clip_tokenizer(words: list[str] = WORDS) -> CLIPTokenizer:
    """Byte-level BPE laid out like CLIP's: bytes, bytes + `</w>`, merges, then specials."""
    alphabet = _bytes_to_unicode()
    vocab = [*alphabet, *(c + "</w>" for c in alphabet)]
    merges = _learn_bpe_merges(words, alphabet, num_merges=300)
    vocab += ["".join(pair) for pair in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(
        vocab={token: i for i, token in enumerate(dict.fromkeys(vocab))},
        merges=merges,  # type: ignore[arg-type]  # the hint says str; tokenizers wants pairs
        model_max_length=CLIP_MAX_LENGTH,
    )


def _t5_tokenizer(words: list[str] = WORDS) -> T5Tokenizer:
    """A Unigram vocabulary laid out like T5's: pad, eos, unk, then pieces by score."""
    chars = sorted(
        {c for word in words for c in word} | set("abcdefghijklmnopqrstuvwxyz0123456789")
    )
    chars += [c.upper() for c in chars if c.isalpha()]
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("▁" + word, -5.0) for word in words]
    pieces += [("▁", -8.0)] + [(c, -10.0) for c in chars]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=T5_MAX_LENGTH)


def _learn_bpe_merges(
    words: list[str], alphabet: list[str], *, num_merges: int
) -> list[tuple[str, str]]:
    """Plain BPE on a word list: merge the most frequent pair, ties broken by the pair itself."""
    corpus: Counter[tuple[str, ...]] = Counter()
    for word in words:
        chars = [alphabet[b] for b in word.encode()]
        corpus[(*chars[:-1], chars[-1] + "</w>")] += 1
    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, count in corpus.items():
            for pair in itertools.pairwise(symbols):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged: Counter[tuple[str, ...]] = Counter()
        for symbols, count in corpus.items():
            out: list[str] = []
            i = 0
            while i < len(symbols):
                if symbols[i : i + 2] == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] += count
        corpus = merged
    return merges


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's printable stand-in for each of the 256 bytes, in byte order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def build_wide_model(
    models_dir: Path, *, heads: int, dtype: torch.dtype, text_width: int = T5_D_MODEL
) -> Path:
    """tiny:schnell with a transformer `heads` x 128 wide (real FLUX: 24 heads, 3072 wide),
    one double and one single block, so that weights, not activations, dominate its memory:
    what a check of memory figures (quantization savings, load vs steady peak) needs.
    Built once under models_dir; at 24 heads ~0.5 B parameters, at 4 heads ~14 M.

    `text_width` widens the T5 encoder (and the transformer's input from it) as well: the
    tiny T5's 32-wide layers are narrower than bitsandbytes' CPU 4-bit kernel takes (it
    packs rows in blocks of 64 weights; real T5-XXL's are 4096 wide and wider)."""
    tiny = build_tiny_models(models_dir)["tiny:schnell"]
    wide_text = f"-t5x{text_width}" if text_width != T5_D_MODEL else ""
    name = f"wide-flux-schnell-{heads}x128{wide_text}-{str(dtype).removeprefix('torch.')}"
    target = models_dir / name

    def write(out: Path) -> None:
        pipe = FluxPipeline.from_pretrained(str(tiny))
        if text_width != T5_D_MODEL:
            pipe.text_encoder_2 = _t5_encoder(pipe.tokenizer_2, d_model=text_width)
        # FLUX's head size and rope axes (16 + 56 + 56 = 128), one block of each kind.
        pipe.transformer = _transformer(
            False,
            layers=1,
            heads=heads,
            head_dim=128,
            axes_dims_rope=(16, 56, 56),
            dtype=dtype,
            joint_attention_dim=text_width,
        )
        pipe.save_pretrained(out)

    return build_atomically(target, write, force=False, version=BUILD_VERSION)
