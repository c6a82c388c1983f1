"""What must be installed beside torch for a config's variants: the C compiler
torch.compile builds with, and the optional backends (onediff, torchao, bitsandbytes, gguf,
pruna), each with how to install it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sysconfig
from importlib import metadata
from pathlib import Path

from app.bench.benchmark import BITSANDBYTES_MODES, Benchmark
from app.worker.doctor.check import Check, Status

ONEDIFF_HINT = "pip install 'flux-playground[onediff]'"
WORKER_HINT = "pip install -e '.[worker]'"
BITSANDBYTES_HINT = "pip install -e '.[worker,bitsandbytes]'"


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
