"""Benchmark configs: load a TOML file, validate it, resolve variant inheritance.

A config names a prompt set, seeds, a resolution, the hardware price and a list of variants.
A variant may name a `base`: it inherits every setting the base has and overrides what it
sets itself; the base is also its *reference* for speed-up and quality comparisons.

Every error is an `InputFileError` that names the file, the line where we can find it, the key
and the reason, so the CLI can print one line and exit.

This package exports its public API here (load_benchmark, Benchmark, Variant, the option
tables). Its modules: options.py (sizes and the option tables a variant may set), spec.py
(the file as written), resolved.py (Benchmark and Variant, inheritance resolved), rules.py
(which settings go together), loading.py (load_benchmark), paths.py (local references) and
toml_lines.py (the line of a key).
"""

from app.bench.benchmark.loading import load_benchmark
from app.bench.benchmark.options import (
    BITSANDBYTES_MODES,
    CacheSpec,
    CompileSpec,
    LoraSpec,
    Size,
    SmashSpec,
)
from app.bench.benchmark.paths import resolve_local
from app.bench.benchmark.resolved import Benchmark, Variant, narrowed, shapes_of_run

__all__ = [
    "BITSANDBYTES_MODES",
    "Benchmark",
    "CacheSpec",
    "CompileSpec",
    "LoraSpec",
    "Size",
    "SmashSpec",
    "Variant",
    "load_benchmark",
    "narrowed",
    "resolve_local",
    "shapes_of_run",
]
