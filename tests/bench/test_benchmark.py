from __future__ import annotations

from pathlib import Path

import pytest

from app.bench.benchmark import load_benchmark
from app.errors import InputFileError

ROOT = Path(__file__).resolve().parents[2]
DEMO = (ROOT / "configs" / "demo.toml").read_text()


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "prompts.tsv").write_text("prompt\tcategory\tchallenge\na cat\tAnimals\tBasic\n")
    path = tmp_path / "bench.toml"
    path.write_text(text.replace("../prompts/parti-64.tsv", "prompts.tsv"))
    return path


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return lines[occurrence - 1]


def test_benchmark_shipped_configs_load() -> None:
    demo = load_benchmark(ROOT / "configs" / "demo.toml")
    flux = load_benchmark(ROOT / "configs" / "flux.toml")
    assert demo.device == "cpu" and (demo.width, demo.height) == (256, 256)
    assert flux.device == "cuda" and (flux.width, flux.height) == (1024, 1024)
    for bench in (demo, flux):
        names = {v.name for v in bench.variants}
        assert {"schnell", "schnell-fast", "dev", "dev-turbo", "dev-fast"} <= names
    assert {v.compile.backend for v in flux.variants if v.compile} == {"torch", "onediff"}


def test_benchmark_base_inherits_and_overrides() -> None:
    bench = load_benchmark(ROOT / "configs" / "demo.toml")
    turbo = bench.variant("dev-turbo")
    dev = bench.variant("dev")
    assert turbo.base == "dev"
    assert turbo.model == dev.model and turbo.guidance == dev.guidance
    assert turbo.steps == 8 and dev.steps == 28
    assert turbo.lora is not None and turbo.lora.fuse
    assert dev.lora is None


def test_benchmark_fingerprint_ignores_price_but_not_steps(tmp_path: Path) -> None:
    a = load_benchmark(write(tmp_path, DEMO))
    b = load_benchmark(write(tmp_path, DEMO.replace("usd_per_hour = 0.10", "usd_per_hour = 9")))
    c = load_benchmark(write(tmp_path, DEMO.replace("steps = 28", "steps = 20")))
    d = load_benchmark(write(tmp_path, DEMO.replace('hardware = "2-core', 'hardware = "8-core')))
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    # Other hardware is another measurement, never a relabelling of this one.
    assert a.fingerprint() != d.fingerprint()


@pytest.mark.parametrize(
    ("edit", "key", "reason", "needle"),
    [
        (("steps = 4\n", "steps = 4\nstepz = 3\n"), "variants[0].stepz", "unknown key", "stepz"),
        (
            ('base = "dev"\nsteps = 8', 'base = "nope"\nsteps = 8'),
            "variants[3].base",
            "unknown base variant 'nope'",
            'base = "nope"',
        ),
        (
            ("steps = 4\n", "steps = 0\n"),
            "variants[0].steps",
            "greater than or equal to 1",
            "steps = 0",
        ),
        (
            ('"256x256", "384x256"', '"250x256", "384x256"'),
            "sizes[0].width",
            "multiple of 16",
            "250x256",
        ),
        (
            ("size_prompt_limit = 8", "size_prompt_limit = 8\nwidth = 512"),
            None,
            "set either sizes or width/height, not both",
            None,
        ),
        (
            ("batch_sizes = [1, 2]\n", "batch_sizes = [1, 1]\n"),
            "batch_sizes",
            "must not repeat",
            "[1, 1]",
        ),
        (
            ('sizes = ["256x256"]\n', 'sizes = ["256x256", "big"]\n'),
            "variants[1].sizes[1]",
            "WIDTHxHEIGHT",
            None,
        ),
        (
            ('"384x256"]  # dev', '"512x512"]  # dev'),
            "variants[3].sizes",
            "variant 'dev-turbo' lists sizes the benchmark does not: 512x512",
            '"512x512"]  # dev',
        ),
        (
            ('prompts = "prompts.tsv"', 'prompts = "missing.tsv"'),
            "prompts",
            "prompt file not found",
            "missing.tsv",
        ),
        (("seeds = [0]", "seeds = [1, 1]"), None, "seeds must not repeat", None),
        (
            ('model = "tiny:dev"', 'model = "tiny:nope"'),
            "variants[2].model",
            "unknown tiny model",
            "tiny:nope",
        ),
        (
            ('model = "tiny:dev"', 'model = "./no/such/dir"'),
            "variants[2].model",
            "model folder not found",
            "./no/such",
        ),
        (
            ('dtype = "float32"', 'dtype = "float16"'),
            "variants[0].dtype",
            "not supported on the CPU",
            None,
        ),
        (
            ('mode = "default" }', 'mode = "fast" }'),
            "variants[1].compile.mode",
            "Input should be",
            None,
        ),
    ],
)
def test_benchmark_invalid_config_names_file_line_key_reason(
    tmp_path: Path, edit: tuple[str, str], key: str | None, reason: str, needle: str | None
) -> None:
    text = DEMO.replace("../prompts/parti-64.tsv", "prompts.tsv").replace(*edit, 1)
    assert text != DEMO
    path = write(tmp_path, text)
    with pytest.raises(InputFileError) as info:
        load_benchmark(path)
    err = info.value
    assert err.path == path
    assert reason in err.reason
    assert err.key == key
    if needle is not None:
        assert err.line == line_of(text, needle)
        assert str(err).startswith(f"{path}:{err.line}: ")


def test_benchmark_invalid_toml_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, DEMO.replace("seeds = [0]", "seeds = [0,,]"))
    with pytest.raises(InputFileError) as info:
        load_benchmark(path)
    assert "invalid TOML" in info.value.reason
    assert info.value.line == line_of(path.read_text(), "seeds = [0,,]")


def test_benchmark_missing_file() -> None:
    with pytest.raises(InputFileError, match="config file not found"):
        load_benchmark("/nonexistent/bench.toml")


def test_benchmark_inheritance_cycle_is_an_error(tmp_path: Path) -> None:
    text = DEMO.replace('model = "tiny:dev"', 'base = "dev-turbo"')
    with pytest.raises(InputFileError, match="cycle: dev -> dev-turbo -> dev"):
        load_benchmark(write(tmp_path, text))


def test_benchmark_variant_without_model_is_an_error(tmp_path: Path) -> None:
    text = DEMO.replace('model = "tiny:dev"\n', "")
    with pytest.raises(InputFileError, match="has no model") as info:
        load_benchmark(write(tmp_path, text))
    assert info.value.key == "variants[2].model"


def test_benchmark_duplicate_variant_names(tmp_path: Path) -> None:
    text = DEMO.replace('name = "dev-fast"', 'name = "dev"')
    with pytest.raises(InputFileError, match="repeated: dev"):
        load_benchmark(write(tmp_path, text))


def test_benchmark_fuse_qkv_with_unfused_lora_is_an_error(tmp_path: Path) -> None:
    text = DEMO.replace(
        "scale = 1.0, fuse = true }", "scale = 1.0, fuse = false }\nfuse_qkv = true"
    )
    with pytest.raises(InputFileError, match="fuse_qkv needs the LoRA fused") as info:
        load_benchmark(write(tmp_path, text))
    assert info.value.key == "variants[3].fuse_qkv"


def test_benchmark_cache_with_fullgraph_compile_is_an_error(tmp_path: Path) -> None:
    text = DEMO.replace(
        'compile = { backend = "torch", mode = "default" }\n',
        'compile = { backend = "torch", mode = "default", fullgraph = true }\n',
    )
    with pytest.raises(InputFileError, match="fullgraph") as info:
        load_benchmark(write(tmp_path, text))
    assert info.value.key == "variants[4].cache"
