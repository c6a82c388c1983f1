"""Facts about this machine's torch and GPU, and the checks on them: torch, CUDA, the GPU
(its bfloat16 support, the name the config prices), fp8."""

from __future__ import annotations

from dataclasses import dataclass

from app.bench.benchmark import Benchmark
from app.worker.doctor.check import Check, Status
from app.worker.doctor.software import WORKER_HINT

FP8_MIN_CAPABILITY = (8, 9)


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
