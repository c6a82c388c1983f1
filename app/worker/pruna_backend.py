"""Pruna's `smash` as a variant backend: `smash = { compilers, quantizers, cachers, options }`.

The loaded pipeline (LoRA fused, on its device) goes to `pruna.smash` whole, as Pruna's
FLUX examples do: its FLUX algorithms (fora, the diffusers quantizers, torch_compile on the
transformer) find the transformer there, and a cacher such as fora wraps the pipeline's own
`__call__`. So the variant keeps the `PrunaModel` that smash returns, which calls that
wrapper and hands every other attribute (`transformer`, `scheduler`) to the pipeline.

pruna pins an older peft and torchao than the worker's, so it lives in a virtualenv of its
own (`make .venv-pruna`); without it a smash variant fails at its environment check, before
any weights load, with the command that installs it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from importlib import metadata
from typing import Any

from app.bench.benchmark import SmashSpec
from app.worker.unavailable import VariantUnavailable

INSTALL_HINT = (
    "make .venv-pruna (a virtualenv of its own: pruna pins older peft and torchao than the "
    "worker's), then run the worker from it: .venv-pruna/bin/flux-playground"
)
# The config's groups and the tag pruna gives the algorithms of each.
GROUPS = {"compilers": "compiler", "quantizers": "quantizer", "cachers": "cacher"}


def check_environment(spec: SmashSpec, device: str) -> None:
    """Raise `VariantUnavailable` unless this environment's pruna has every algorithm the
    variant names, in the group it is listed under, for `device`."""
    why = import_error()
    if why is not None:
        raise VariantUnavailable(f"smash needs pruna, {why}")
    registry = _registry()
    version = metadata.version("pruna")
    for group, tag in GROUPS.items():
        for name in getattr(spec, group):
            if name not in registry:
                known = sorted(n for n, a in registry.items() if tag in _tags(a))
                raise VariantUnavailable(
                    f"pruna {version} has no algorithm {name!r} (its {group}: {', '.join(known)})"
                )
            algorithm = registry[name]
            if tag not in _tags(algorithm):
                raise VariantUnavailable(
                    f"pruna's {name} is a {'/'.join(sorted(_tags(algorithm)))}, "
                    f"not one of its {group}"
                )
            if device not in algorithm.runs_on:
                raise VariantUnavailable(
                    f"pruna's {name} runs on {', '.join(algorithm.runs_on)}, not {device}"
                )


def smash(pipe: Any, spec: SmashSpec, device: str) -> Any:
    """`pruna.smash` on the pipeline; returns the `PrunaModel` to call instead of it."""
    _quiet()
    from pruna import SmashConfig
    from pruna import smash as pruna_smash

    try:
        # pruna's configuration: each algorithm switched on, then its hyperparameters.
        settings = {**dict.fromkeys(spec.algorithms, True), **spec.options}
        config = SmashConfig(settings, device=device)
        return pruna_smash(model=pipe, smash_config=config)
    except (ValueError, KeyError) as err:  # an unknown option, or a model pruna refuses
        raise VariantUnavailable(f"pruna smash: {type(err).__name__}: {err}") from err


def import_error() -> str | None:
    """Why pruna cannot be used in this environment, or None when it imports."""
    if importlib.util.find_spec("pruna") is None:
        return f"not installed in {sys.prefix}: {INSTALL_HINT}"
    _quiet()
    try:
        import pruna  # noqa: F401
    except Exception as err:  # whatever its own dependencies raise as they import
        # transformers re-raises a failed optional import as a vaguer error: the first
        # cause is the one to fix.
        cause: BaseException = err
        while cause.__cause__ is not None:
            cause = cause.__cause__
        why = f"{type(cause).__name__}: {cause}"
        if "torchvision::" in why:
            # A torchvision build that does not fit this torch: PyPI's are CUDA builds,
            # whose operators do not load beside a CPU-only torch.
            tv = metadata.version("torchvision")
            why += f" (torchvision {tv} does not load beside torch {metadata.version('torch')})"
        version = metadata.version("pruna")
        return f"pruna {version} is installed in {sys.prefix} but does not import: {why}"
    return None


def _registry() -> dict[str, Any]:
    _quiet()
    from pruna.algorithms import AlgorithmRegistry

    return dict(AlgorithmRegistry._registry)


def _tags(algorithm: Any) -> set[str]:
    return {str(tag) for tag in algorithm.group_tags}


def _quiet() -> None:
    # pruna sends usage metrics to its servers unless told not to (its telemetry/config.yaml
    # says metrics_enabled: true): a benchmark makes no network calls of its own accord.
    # Set before pruna is imported, which reads it; a user's own setting stays.
    os.environ.setdefault("PRUNA_METRICS_ENABLED", "false")
