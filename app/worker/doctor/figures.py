"""The public figures the doctor's memory and disk estimates rest on: file sizes on the Hub,
bytes per weight of each dtype and quantization, rough allowances for activations and
images."""

from __future__ import annotations

# Sizes of the bf16 safetensors files on huggingface.co/black-forest-labs/FLUX.1-dev (the
# same for FLUX.1-schnell): transformer 3 shards, 23.8 GB; text_encoder_2 (T5-XXL) 2 shards,
# 9.5 GB; text_encoder (CLIP-L, 0.25 GB) and vae (0.17 GB) about 0.4 GB. diffusers downloads
# only these component folders, so they are also the download size (~34 GB per model).
FLUX_TRANSFORMER_GB = 23.8
FLUX_T5_GB = 9.5
FLUX_CLIP_VAE_GB = 0.4
FLUX_MODELS = {"black-forest-labs/FLUX.1-dev", "black-forest-labs/FLUX.1-schnell"}
FLUX_DOWNLOAD_GB = FLUX_TRANSFORMER_GB + FLUX_T5_GB + FLUX_CLIP_VAE_GB
# Gated on the Hub: a token whose account accepted the licence is needed to download it.
GATED_MODELS = {"black-forest-labs/FLUX.1-dev"}
# alimama-creative/FLUX.1-Turbo-Alpha's diffusion_pytorch_model.safetensors is 0.69 GB; used
# as the rough size of any Hub LoRA.
LORA_GB = 0.7
# The tiny random-weight pipelines (app/worker/tiny.py) are a few MB; 0.1 GB is a ceiling.
TINY_GB = 0.1
# A rough allowance, not a measurement: latents, attention and the VAE decode at 1024x1024,
# scaled with the pixel count.
ACTIVATION_GB_PER_MEGAPIXEL = 2.0
# A 1024x1024 PNG of a real image is about 1.5 MB (the thumbnail is a few KB more); scaled
# with the pixel count.
PNG_MB_PER_MEGAPIXEL = 1.5
# Bytes per weight relative to the bf16 files on the Hub.
DTYPE_FACTOR = {"bfloat16": 1.0, "float16": 1.0, "float32": 2.0}
# Quantized weights, relative to the same bf16 files: bytes per weight of the mode over
# bf16's 2. int8 and fp8 keep 1 byte (plus a scale per row, negligible); int4 half a byte plus
# a 16-bit scale and zero point per group of 128 weights (4.25 bits); nf4 half a byte plus a
# 32-bit absmax per block of 64 (4.5 bits). The published figures to compare with (diffusers'
# quantization blog: FLUX.1-dev, 1024x1024, 50 steps, one H100, loaded / peak): bf16 31.4 /
# 36.2 GB; bnb NF4 12.6 / 17.3 GB; bnb 8-bit 19.3 / 24.4 GB; torchao int8 or fp8 weight-only
# 17.0 / 21.5 GB; torchao int4 weight-only 10.6 / 14.7 GB. The same order; bitsandbytes'
# 8-bit sits above torchao's int8 there although both keep a byte per weight.
QUANTIZED_FACTOR = {
    "int8_weight_only": 0.5,
    "int8_dynamic": 0.5,
    "fp8_dynamic": 0.5,
    "int8": 0.5,
    "int4_weight_only": 4.25 / 16,
    "nf4": 4.5 / 16,
}
MEGAPIXEL = 1024 * 1024
