"""Loading a benchmark config: read the TOML file, validate it, resolve variant inheritance,
check the rules, and turn every failure into one InputFileError naming file, line and key.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.bench.benchmark.options import Size
from app.bench.benchmark.resolved import Benchmark, Variant
from app.bench.benchmark.rules import check_narrowing, check_variant
from app.bench.benchmark.spec import BenchmarkSpec, VariantSpec
from app.bench.benchmark.toml_lines import locate
from app.errors import InputFileError


def load_benchmark(path: Path | str) -> Benchmark:
    """Read and validate a benchmark config. Raises InputFileError with file, line and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(path, "config file not found") from None
    except UnicodeDecodeError as err:
        raise InputFileError(path, f"not UTF-8 text ({err.reason})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # Python 3.11's TOMLDecodeError has no lineno attribute; the message carries it.
        message = str(err)
        found = re.search(r"\(at line (\d+), column \d+\)$", message)
        line = int(found.group(1)) if found else None
        reason = message[: found.start()].strip() if found else message
        raise InputFileError(path, f"invalid TOML: {reason}", line=line) from None

    try:
        spec = BenchmarkSpec.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = _dotted(first["loc"])
        raise InputFileError(
            path, _reason(first), line=locate(text, first["loc"]), key=loc or None
        ) from None

    variants = _resolve_variants(path, text, spec.variants)
    prompts_path = (path.parent / spec.prompts).resolve()
    if not prompts_path.is_file():
        raise InputFileError(
            path,
            f"prompt file not found: {spec.prompts} (looked at {prompts_path})",
            line=locate(text, ("prompts",)),
            key="prompts",
        )
    sizes = spec.sizes or [Size(width=spec.width, height=spec.height)]
    for index, variant in enumerate(variants):
        check_variant(path, text, index, variant, spec.device)
        check_narrowing(path, text, index, variant, sizes, spec.batch_sizes)
    return Benchmark(
        name=spec.name,
        description=spec.description,
        config_path=path.resolve(),
        prompts_path=prompts_path,
        prompt_limit=spec.prompt_limit,
        seeds=spec.seeds,
        width=sizes[0].width,
        height=sizes[0].height,
        sizes=sizes,
        size_prompt_limit=spec.size_prompt_limit,
        batch_sizes=spec.batch_sizes,
        device=spec.device,
        hardware=spec.hardware,
        usd_per_hour=spec.usd_per_hour,
        warmup=spec.warmup,
        repeats=spec.repeats,
        blind=spec.blind,
        arena=spec.arena,
        variants=variants,
    )


def _resolve_variants(path: Path, text: str, specs: list[VariantSpec]) -> list[Variant]:
    by_name = {spec.name: (index, spec) for index, spec in enumerate(specs)}
    resolved: dict[str, Variant] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> Variant:
        if name in resolved:
            return resolved[name]
        index, spec = by_name[name]
        settings: dict[str, Any] = {}
        if spec.base is not None:
            if spec.base not in by_name:
                known = ", ".join(sorted(by_name))
                raise InputFileError(
                    path,
                    f"unknown base variant {spec.base!r} (known: {known})",
                    line=locate(text, ("variants", index, "base")),
                    key=f"variants[{index}].base",
                )
            if spec.base in chain:
                cycle = " -> ".join((*chain, spec.base))
                raise InputFileError(
                    path,
                    f"variants inherit from each other in a cycle: {cycle}",
                    line=locate(text, ("variants", index, "base")),
                    key=f"variants[{index}].base",
                )
            parent = resolve(spec.base, (*chain, spec.base))
            # A child inherits its base's settings, but not its name, description or base.
            settings = parent.model_dump(exclude={"name", "description", "base"})
        settings.update(spec.model_dump(exclude_unset=True))
        for required in ("model", "steps"):
            if settings.get(required) is None:
                raise InputFileError(
                    path,
                    f"variant {spec.name!r} has no {required} (set it, or a base that has one)",
                    line=locate(text, ("variants", index, "name")),
                    key=f"variants[{index}].{required}",
                )
        variant = Variant.model_validate(settings)
        resolved[name] = variant
        return variant

    return [resolve(spec.name, (spec.name,)) for spec in specs]


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _reason(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")
