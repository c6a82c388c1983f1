"""`flux-playground doctor`: what of a benchmark config this machine can run, before it runs.

Each check is a small function from facts (the config, what torch reports, free space) to a
`Check` row, so the rules can be tested with any GPU described as data. `run_checks` gathers
the facts of this machine and runs them all in well under a minute: no weights are
downloaded; the Hub is asked only whether the token may read each repository, and only when
HF_HUB_OFFLINE is not set and the Hub answers within a few seconds.

Memory and disk figures are estimates from public file sizes, not measurements: they tell
"fits easily" from "cannot fit", not the last gigabyte.
"""

from __future__ import annotations

import enum
import importlib.util
import os
import re
import shutil
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from app.bench.benchmark import BITSANDBYTES_MODES, Benchmark, Variant, resolve_local


class Status(enum.Enum):
    OK = "✓"
    FAIL = "✗"
    SKIP = "–"  # not needed by this config, or could not be checked here (not a failure)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


# --- public figures ---------------------------------------------------------------------
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
FP8_MIN_CAPABILITY = (8, 9)
HUB_TIMEOUT_S = 5.0
MEGAPIXEL = 1024 * 1024
ONEDIFF_HINT = "pip install 'flux-playground[onediff]'"
WORKER_HINT = "pip install -e '.[worker]'"
BITSANDBYTES_HINT = "pip install -e '.[worker,bitsandbytes]'"


# --- facts about this machine -----------------------------------------------------------


@dataclass(frozen=True)
class Gpu:
    name: str
    capability: tuple[int, int]
    total_gb: float
    free_gb: float
    bf16: bool


@dataclass(frozen=True)
class TorchFacts:
    version: str | None  # None: torch is not installed (the web-only install)
    cuda_build: str | None  # torch.version.cuda; None for a CPU-only build
    cuda_available: bool
    driver: str | None
    gpu: Gpu | None


def probe_torch(*, need_cuda: bool) -> TorchFacts:
    """What torch says about this machine. The GPU is only asked when the config needs CUDA:
    initializing CUDA takes seconds and a slice of GPU memory."""
    try:
        import torch
    except ImportError:
        return TorchFacts(None, None, False, None, None)
    cuda_build = torch.version.cuda
    if not need_cuda:
        return TorchFacts(torch.__version__, cuda_build, False, None, None)
    from app.worker.timing import _nvidia_driver

    driver = _nvidia_driver()
    if not torch.cuda.is_available():
        return TorchFacts(torch.__version__, cuda_build, False, driver, None)
    props = torch.cuda.get_device_properties(0)
    free, _total = torch.cuda.mem_get_info(0)
    gpu = Gpu(
        name=props.name,
        capability=(props.major, props.minor),
        total_gb=props.total_memory / 1e9,
        free_gb=free / 1e9,
        bf16=torch.cuda.is_bf16_supported(),
    )
    return TorchFacts(torch.__version__, cuda_build, True, driver, gpu)


def available_ram_gb() -> float:
    import psutil

    return psutil.virtual_memory().available / 1e9


def free_disk(path: Path) -> tuple[Path, float]:
    """Free GB on the disk that holds `path`, which may not exist yet (the first run makes
    it): its nearest existing parent is on that disk."""
    existing = path.expanduser().absolute()
    while not existing.exists():
        existing = existing.parent
    return existing, shutil.disk_usage(existing).free / 1e9


# --- 1. torch and CUDA -------------------------------------------------------------------


def check_torch(facts: TorchFacts) -> Check:
    if facts.version is None:
        return Check("torch", Status.FAIL, f"not installed: {WORKER_HINT}")
    build = f"CUDA {facts.cuda_build} build" if facts.cuda_build else "CPU-only build"
    return Check("torch", Status.OK, f"{facts.version}, {build}")


def check_cuda(bench: Benchmark, facts: TorchFacts) -> Check:
    if bench.device == "cpu":
        return Check("CUDA", Status.SKIP, "not needed: device cpu")
    driver = f"driver {facts.driver}" if facts.driver else "no NVIDIA driver (nvidia-smi not found)"
    if not facts.cuda_available:
        why = (
            f"torch {facts.version} is a CPU-only build"
            if not facts.cuda_build
            else "torch.cuda.is_available() is False"
        )
        return Check("CUDA", Status.FAIL, f"no CUDA GPU: {why}; {driver}")
    return Check("CUDA", Status.OK, f"available: CUDA {facts.cuda_build}, {driver}")


# --- 2. the GPU and fp8 ------------------------------------------------------------------


def check_gpu(bench: Benchmark, facts: TorchFacts) -> Check:
    if bench.device == "cpu":
        return Check("GPU", Status.SKIP, "not needed: device cpu")
    gpu = facts.gpu
    if gpu is None:
        return Check("GPU", Status.SKIP, "skipped: no CUDA GPU")
    detail = (
        f"{gpu.name}, compute capability {gpu.capability[0]}.{gpu.capability[1]}, "
        f"{gpu.total_gb:.0f} GB"
    )
    no_bf16 = [v.name for v in bench.variants if v.dtype == "bfloat16"]
    if no_bf16 and not gpu.bf16:
        return Check("GPU", Status.FAIL, f"{detail}: no bfloat16 support for {', '.join(no_bf16)}")
    if gpu.name.lower() not in bench.hardware.lower():
        # Costs are computed for the hardware the config names: a wrong name misprices them.
        detail += f"; the config says hardware = {bench.hardware!r}: edit it to this GPU"
    return Check("GPU", Status.OK, detail)


def check_fp8(bench: Benchmark, facts: TorchFacts) -> Check:
    names = [v.name for v in bench.variants if v.quantize == "fp8_dynamic"]
    if not names:
        return Check("fp8", Status.SKIP, "not needed: no fp8_dynamic variant")
    need = "fp8_dynamic needs compute capability >= {}.{}".format(*FP8_MIN_CAPABILITY)
    variants = ", ".join(names)
    if bench.device == "cpu":
        return Check("fp8", Status.FAIL, f"{need} on CUDA; device is cpu: {variants}")
    if facts.gpu is None:
        return Check("fp8", Status.FAIL, f"{need}; no CUDA GPU: {variants}")
    major, minor = facts.gpu.capability
    if facts.gpu.capability < FP8_MIN_CAPABILITY:
        return Check("fp8", Status.FAIL, f"{need}; this GPU has {major}.{minor}: {variants}")
    return Check("fp8", Status.OK, f"compute capability {major}.{minor}: {variants}")


# --- 3. memory ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryEstimate:
    load_gb: float  # the peak while loading, before the first image
    steady_gb: float  # the weights as they stay, plus the activation allowance
    activation_gb: float
    load_why: str = ""  # why loading needs more than generating, when it does
    offload: str | None = None

    @property
    def peak_gb(self) -> float:
        return max(self.load_gb, self.steady_gb)


def estimate_memory(variant: Variant, width: int, height: int) -> MemoryEstimate | None:
    """Device memory one variant needs, from public file sizes; None for an unknown model.

    Follows the order in which `app.worker.pipelines` loads a variant: the LoRA is loaded and
    fused with the whole transformer on the device; torchao quantizes layer by layer onto
    the device and bitsandbytes while loading, so without a LoRA the unquantized transformer
    never sits there whole. Offloaded, only the largest component is on the GPU at a time.
    """
    if variant.model.startswith("tiny:"):
        return MemoryEstimate(load_gb=TINY_GB, steady_gb=TINY_GB, activation_gb=0.0)
    if variant.model not in FLUX_MODELS:
        return None
    factor = DTYPE_FACTOR[variant.dtype]
    transformer = FLUX_TRANSFORMER_GB * factor
    t5 = FLUX_T5_GB * factor
    clip_vae = FLUX_CLIP_VAE_GB * factor
    lora = LORA_GB * factor if variant.lora is not None else 0.0
    # A quantized component keeps its mode's bytes per weight, whatever the dtype; a GGUF
    # transformer its file's (and the model's own transformer never loads).
    if variant.gguf is not None:
        kept = FLUX_TRANSFORMER_GB * gguf_factor(variant.gguf)
    elif variant.quantize:
        kept = FLUX_TRANSFORMER_GB * QUANTIZED_FACTOR[variant.quantize]
    else:
        kept = transformer
    kept_t5 = (
        FLUX_T5_GB * QUANTIZED_FACTOR[variant.text_encoder_quantize]
        if variant.text_encoder_quantize
        else t5
    )
    # A fused LoRA is merged into the weights and unloaded; an unfused one stays beside them.
    adapter = lora if variant.lora is not None and not variant.lora.fuse else 0.0
    fusing = transformer + lora if variant.lora is not None else 0.0
    if variant.offload is None:
        weights = kept + adapter + kept_t5 + clip_vae
        load = max(fusing, weights)
        why = "LoRA fused before quantizing"
    else:
        # The weights wait in CPU memory; on the GPU, the component that runs: at most the
        # largest (model offloading; sequential and group offloading hold less, so for them
        # this is an upper bound). While loading, what is quantized on the GPU (torchao onto
        # the device, bitsandbytes as it loads) stays there until the offload takes it out.
        weights = max(kept + adapter, kept_t5, clip_vae)
        on_gpu = (kept if variant.quantize else 0.0) + (
            kept_t5 if variant.text_encoder_quantize else 0.0
        )
        load = max(fusing, on_gpu)
        why = (
            "LoRA fused before offloading"
            if fusing >= on_gpu
            else "quantized on the GPU before offloading"
        )
    activations = ACTIVATION_GB_PER_MEGAPIXEL * width * height / MEGAPIXEL
    return MemoryEstimate(
        load_gb=load,
        steady_gb=weights + activations,
        activation_gb=activations,
        load_why=why,
        offload=variant.offload,
    )


def gguf_factor(ref: str) -> float:
    """A GGUF transformer's bytes against bf16's, from the quantization its file name says
    (city96's files: Q8_0, Q6_K, Q5_K_S, Q4_0, ...): n bits per weight plus ~0.5 for the
    block scales; F16/BF16 files are bf16's size; an unnamed one is counted as bf16."""
    found = re.search(r"[-_.]Q(\d)(?:_|\.|$)", ref, flags=re.IGNORECASE)
    return (int(found.group(1)) + 0.5) / 16 if found else 1.0


def _describe(estimate: MemoryEstimate, size: str) -> str:
    offload = f" ({estimate.offload} offload)" if estimate.offload else ""
    if estimate.load_gb > estimate.steady_gb:
        return (
            f"needs ~{estimate.load_gb:.1f} GB while loading ({estimate.load_why}), "
            f"~{estimate.steady_gb:.1f} GB at {size} after{offload}"
        )
    return f"needs ~{estimate.peak_gb:.1f} GB at {size}{offload}"


def check_memory(bench: Benchmark, facts: TorchFacts, ram_gb: float) -> list[Check]:
    """One row per variant: its estimated need against free GPU memory (or free RAM on the
    CPU). The worker loads one variant at a time, so each must fit alone."""
    rows = []
    size = f"{bench.width}x{bench.height}"
    for variant in bench.variants:
        name = f"memory: {variant.name}"
        estimate = estimate_memory(variant, bench.width, bench.height)
        if estimate is None:
            rows.append(Check(name, Status.SKIP, f"unknown model: no estimate ({variant.model})"))
            continue
        need = _describe(estimate, size)
        if bench.device == "cpu":
            free, where = ram_gb, "RAM available"
        elif facts.gpu is None:
            rows.append(Check(name, Status.FAIL, f"no CUDA GPU; {need}"))
            continue
        else:
            free, where = facts.gpu.free_gb, "free on the GPU"
        status = Status.OK if estimate.peak_gb <= free else Status.FAIL
        rows.append(Check(name, status, f"{need}; {free:.1f} GB {where}"))
    return rows


# --- 4. compiler --------------------------------------------------------------------------


def check_compiler(bench: Benchmark) -> Check:
    """torch.compile builds C code at run time: Triton's launcher on CUDA (found as $CC, gcc,
    then clang, like Triton does), Inductor's C++ kernels on the CPU ($CXX, else g++). Both
    include Python.h, which only the Python development headers provide."""
    names = [v.name for v in bench.variants if v.compile and v.compile.backend == "torch"]
    if not names:
        return Check("compiler", Status.SKIP, "not needed: no torch.compile variant")
    if bench.device == "cuda":
        kind = "C compiler (Triton)"
        candidates = [os.environ["CC"]] if os.environ.get("CC") else ["gcc", "clang"]
    else:
        kind = "C++ compiler (Inductor)"
        candidates = [os.environ.get("CXX") or "g++"]
    found = next((path for c in candidates if (path := shutil.which(c))), None)
    if found is None:
        tried = ", ".join(candidates)
        return Check(
            "compiler",
            Status.FAIL,
            f"no {kind} for {', '.join(names)}: none of {tried} found "
            "(apt install build-essential)",
        )
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not headers.is_file():
        return Check(
            "compiler",
            Status.FAIL,
            f"{kind} {found}, but no {headers} (install the Python development headers)",
        )
    return Check("compiler", Status.OK, f"{kind}: {found}; Python.h found")


# --- 5. Hugging Face ----------------------------------------------------------------------


def hub_repos(bench: Benchmark) -> list[str]:
    """The config's models and LoRAs that come from the Hub, in config order: not tiny: and
    not an existing local path (diffusers takes an existing folder before a Hub id)."""
    config_dir = bench.config_path.parent
    refs = [v.model for v in bench.variants] + [v.lora.path for v in bench.variants if v.lora]
    repos = [
        ref
        for ref in refs
        if not ref.startswith("tiny:") and not Path(resolve_local(config_dir, ref)).exists()
    ]
    return list(dict.fromkeys(repos))


def download_gb(bench: Benchmark, repo: str) -> float | None:
    """The rough download size of one Hub repository as this config uses it."""
    if repo in FLUX_MODELS:
        return FLUX_DOWNLOAD_GB
    if any(v.lora is not None and v.lora.path == repo for v in bench.variants):
        return LORA_GB
    return None


def hub_offline_reason() -> str | None:
    """Why the Hub cannot be asked now, or None when it answered within HUB_TIMEOUT_S."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if hub_offline_set():
        return "HF_HUB_OFFLINE is set"
    try:
        # The Hub client waits without limit by default; this bounded request answers
        # "reachable?" before the per-repository checks.
        get_session().head(constants.ENDPOINT, timeout=HUB_TIMEOUT_S)
    except Exception as err:  # the HTTP library's transport errors have no public base class
        return f"could not reach the Hub ({type(err).__name__})"
    return None


def hub_offline_set() -> bool:
    from huggingface_hub import constants

    # The environment is read again: huggingface_hub reads its constants once, at import.
    setting = os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}
    return setting or constants.is_offline_mode()


def check_token(repos: Sequence[str], token: str | None) -> Check:
    if not repos:
        return Check("HF token", Status.SKIP, "not needed: no Hub models")
    if token:
        return Check("HF token", Status.OK, "found (HF_TOKEN or huggingface-cli login)")
    gated = [repo for repo in repos if repo in GATED_MODELS]
    if gated:
        return Check(
            "HF token",
            Status.FAIL,
            f"none, and {', '.join(gated)} is gated: accept its licence on its Hub page, "
            "then huggingface-cli login (or set HF_TOKEN)",
        )
    return Check("HF token", Status.SKIP, "none; public repositories need none")


def check_hub_access(repos: Sequence[str], token: str | None, offline: str | None) -> list[Check]:
    """Whether the token may read each repository (a gated one needs its licence accepted)."""
    if not repos:
        return [Check("Hub access", Status.SKIP, "not needed: no Hub models")]
    if offline is not None:
        return [Check("Hub access", Status.SKIP, f"offline: {offline}, skipped")]
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    api = HfApi()
    rows = []
    for repo in repos:
        name = f"Hub: {repo}"
        try:
            api.auth_check(repo, token=token or False)
        except GatedRepoError:
            detail = f"gated: accept the licence at https://huggingface.co/{repo}"
            if not token:
                detail += ", then huggingface-cli login (or set HF_TOKEN)"
            rows.append(Check(name, Status.FAIL, detail))
        except RepositoryNotFoundError:
            rows.append(
                Check(name, Status.FAIL, "not found, or private and the token cannot read it")
            )
        except HfHubHTTPError as err:
            rows.append(Check(name, Status.FAIL, f"the Hub answered: {str(err).splitlines()[0]}"))
        except Exception as err:  # a transport error: the connection dropped after the probe
            rows.append(Check(name, Status.SKIP, f"offline: {type(err).__name__}, skipped"))
        else:
            rows.append(Check(name, Status.OK, "readable with this token" if token else "public"))
    return rows


def cached_gb(repos: Sequence[str], cache_dir: Path) -> dict[str, float]:
    """GB of each Hub repository already in the local HF cache (absent: none). No network."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return {}
    wanted = set(repos)
    return {
        repo.repo_id: repo.size_on_disk / 1e9
        for repo in info.repos
        if repo.repo_type == "model" and repo.repo_id in wanted
    }


def to_download(
    bench: Benchmark, repos: Sequence[str], cached: dict[str, float]
) -> dict[str, float | None]:
    """The part of each Hub repository not yet in the cache (None: size unknown). A cache
    within 5% of the public size counts as complete: the figures are rounded."""
    missing: dict[str, float | None] = {}
    for repo in repos:
        size = download_gb(bench, repo)
        have = cached.get(repo, 0.0)
        if size is None:
            if repo not in cached:
                missing[repo] = None
        elif have < 0.95 * size:
            missing[repo] = size - have
    return missing


def check_cache(
    repos: Sequence[str], cached: dict[str, float], missing: dict[str, float | None]
) -> Check:
    if not repos:
        return Check("HF cache", Status.SKIP, "not needed: no Hub models")
    parts = []
    if done := [r for r in repos if r not in missing]:
        parts.append("cached: " + ", ".join(f"{r} ({cached[r]:.1f} GB)" for r in done))
    if missing:
        parts.append("to download: " + ", ".join(_sized(r, gb) for r, gb in missing.items()))
    detail = "; ".join(parts)
    if missing and hub_offline_set():
        # The run loads with the same setting: an uncached model cannot load at all.
        return Check("HF cache", Status.FAIL, f"HF_HUB_OFFLINE is set and not all cached; {detail}")
    return Check("HF cache", Status.OK, detail)


def _sized(repo: str, gb: float | None) -> str:
    return f"{repo} (~{gb:.1f} GB)" if gb is not None else f"{repo} (size unknown)"


# --- 6. disk ------------------------------------------------------------------------------


def check_disk_weights(
    missing: dict[str, float | None], where: Path, free_gb: float, any_hub: bool
) -> Check:
    if not any_hub:
        return Check("disk: weights", Status.SKIP, "not needed: no Hub models")
    need = sum(gb for gb in missing.values() if gb is not None)
    unknown = [repo for repo, gb in missing.items() if gb is None]
    detail = f"~{need:.1f} GB to download, {free_gb:.1f} GB free at {where}"
    if unknown:
        detail += f" (plus {', '.join(unknown)}: size unknown)"
    return Check("disk: weights", Status.OK if need <= free_gb else Status.FAIL, detail)


def media_gb(bench: Benchmark, n_prompts: int) -> tuple[int, float]:
    """Images the config makes and their rough size on disk."""
    images = n_prompts * len(bench.seeds) * len(bench.variants)
    per_image_mb = PNG_MB_PER_MEGAPIXEL * bench.width * bench.height / MEGAPIXEL
    return images, images * per_image_mb / 1000


def check_disk_media(
    bench: Benchmark, n_prompts: int, where: Path, free_gb: float, weights_gb: float
) -> Check:
    """`weights_gb`: what the weights will take of the same disk (0 when on another one)."""
    images, need = media_gb(bench, n_prompts)
    detail = f"{images} images, ~{need:.2f} GB; {free_gb:.1f} GB free at {where}"
    if weights_gb:
        detail += f" (shared with ~{weights_gb:.1f} GB of weights)"
    status = Status.OK if need + weights_gb <= free_gb else Status.FAIL
    return Check("disk: media", status, detail)


# --- 7. optional backends, 8. torchao ---------------------------------------------------


def check_onediff(bench: Benchmark) -> Check:
    onediff = [v for v in bench.variants if v.compile and v.compile.backend == "onediff"]
    if not onediff:
        return Check("onediff", Status.SKIP, "not needed: no onediff variant")
    names = ", ".join(v.name for v in onediff)
    needed = ["onediffx"]
    if any(v.compile and v.compile.onediff_backend == "nexfort" for v in onediff):
        needed.append("nexfort")
    absent = [package for package in needed if importlib.util.find_spec(package) is None]
    if not absent:
        return Check("onediff", Status.OK, f"{', '.join(needed)} importable: {names}")
    hints = []
    if "onediffx" in absent:
        hints.append(ONEDIFF_HINT)
    if "nexfort" in absent:
        # The extra pins onediff and onediffx only; nexfort is installed apart from it.
        hints.append("nexfort as onediff's README describes")
    return Check(
        "onediff",
        Status.FAIL,
        f"{names} needs {', '.join(absent)}, not installed: {'; '.join(hints)}",
    )


def _package(package: str, names: list[str], none_needed: str, hint: str) -> Check:
    """An optional package the named variants need: skipped when none does, else its
    installed version or how to install it."""
    if not names:
        return Check(package, Status.SKIP, f"not needed: {none_needed}")
    try:
        version = metadata.version(package)
    except metadata.PackageNotFoundError:
        return Check(package, Status.FAIL, f"not installed, needed by {', '.join(names)}: {hint}")
    return Check(package, Status.OK, f"{version}, for {', '.join(names)}")


def check_torchao(bench: Benchmark) -> Check:
    names = [
        v.name
        for v in bench.variants
        if (v.quantize is not None and v.quantize not in BITSANDBYTES_MODES)
        or v.text_encoder_quantize == "int8_weight_only"
    ]
    return _package("torchao", names, "no quantized variant", WORKER_HINT)


def check_bitsandbytes(bench: Benchmark) -> Check:
    users = [
        v
        for v in bench.variants
        if v.quantize in BITSANDBYTES_MODES or v.text_encoder_quantize in BITSANDBYTES_MODES
    ]
    check = _package(
        "bitsandbytes", [v.name for v in users], "no nf4 or int8 variant", BITSANDBYTES_HINT
    )
    # Its CPU backend runs the T5 encoder's modes (through transformers), but diffusers loads
    # a bitsandbytes transformer only onto a GPU.
    on_cpu = [v.name for v in users if v.quantize in BITSANDBYTES_MODES]
    if check.status is Status.OK and bench.device == "cpu" and on_cpu:
        return Check(
            "bitsandbytes",
            Status.FAIL,
            f"{metadata.version('bitsandbytes')}, but a bitsandbytes transformer (nf4, int8) "
            f"needs a CUDA GPU: {', '.join(on_cpu)}",
        )
    return check


def check_gguf(bench: Benchmark) -> Check:
    names = [v.name for v in bench.variants if v.gguf is not None]
    return _package("gguf", names, "no gguf variant", WORKER_HINT)


def check_pruna(bench: Benchmark) -> Check:
    """pruna lives in a virtualenv of its own: the doctor run from the main one says so."""
    names = [v.name for v in bench.variants if v.smash is not None]
    if not names:
        return Check("pruna", Status.SKIP, "not needed: no smash variant")
    from app.worker.pruna_backend import import_error

    why = import_error()
    if why is not None:
        return Check("pruna", Status.FAIL, f"{', '.join(names)} needs pruna, {why}")
    return Check("pruna", Status.OK, f"{metadata.version('pruna')}, for {', '.join(names)}")


# --- all together -------------------------------------------------------------------------


def run_checks(bench: Benchmark, n_prompts: int, media_dir: Path) -> list[Check]:
    """Every check, in the order a user fixes them: torch, GPU, memory, compiler, Hub, disk,
    optional packages."""
    facts = probe_torch(need_cuda=bench.device == "cuda")
    rows = [check_torch(facts)]
    if facts.version is None:
        return rows  # no worker extra: nothing else can run, and its packages are missing
    from huggingface_hub import constants, get_token

    ram = available_ram_gb()
    rows += [check_cuda(bench, facts), check_gpu(bench, facts), check_fp8(bench, facts)]
    rows += check_memory(bench, facts, ram)
    rows.append(check_compiler(bench))

    repos = hub_repos(bench)
    token = get_token()
    offline = hub_offline_reason() if repos else None
    cache_dir = Path(constants.HF_HUB_CACHE)
    cached = cached_gb(repos, cache_dir)
    missing = to_download(bench, repos, cached)
    rows.append(check_token(repos, token))
    rows += check_hub_access(repos, token, offline)
    rows.append(check_cache(repos, cached, missing))

    cache_at, cache_free = free_disk(cache_dir)
    media_at, media_free = free_disk(media_dir)
    weights = sum(gb for gb in missing.values() if gb is not None)
    same_disk = os.stat(cache_at).st_dev == os.stat(media_at).st_dev
    rows.append(check_disk_weights(missing, cache_at, cache_free, bool(repos)))
    rows.append(
        check_disk_media(bench, n_prompts, media_at, media_free, weights if same_disk else 0.0)
    )

    rows += [
        check_onediff(bench),
        check_torchao(bench),
        check_bitsandbytes(bench),
        check_gguf(bench),
        check_pruna(bench),
    ]
    return rows
