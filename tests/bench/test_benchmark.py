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
            ('sizes = ["256x256"]\n', 'sizes = ["512x512"]\n'),
            "variants[1].sizes",
            "variant 'schnell-fast' lists sizes the benchmark does not: 512x512",
            'sizes = ["512x512"]',
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
        "cache = { threshold = 0.4 }\n",
        'cache = { threshold = 0.4 }\ncompile = { backend = "torch", fullgraph = true }\n',
    )
    assert text != DEMO
    with pytest.raises(InputFileError, match="fullgraph") as info:
        load_benchmark(write(tmp_path, text))
    assert info.value.key == "variants[4].cache"


# --- gguf and smash ------------------------------------------------------------------------
# Edits of the demo config: variants[0] is schnell, [1] schnell-fast (quantize + compile),
# [2] dev, [3] dev-turbo (fused LoRA), [4] dev-fast (cache); [5], schnell-gguf-q8, is left
# out so that each edit's `gguf =` is the only one in the file.
DEMO_WITHOUT_GGUF = DEMO[: DEMO.index('[[variants]]\nname = "schnell-gguf-q8"')]


def _with(variant_line: str, setting: str, text: str = DEMO) -> str:
    """The demo with `setting` added under the first line that starts with `variant_line`."""
    return text.replace(variant_line, f"{variant_line}\n{setting}", 1)


@pytest.mark.parametrize(
    ("edit", "key", "reason", "needle"),
    [
        (
            ('base = "schnell"', 'gguf = "tiny:schnell-q8"'),
            "variants[1].gguf",
            "the GGUF transformer is quantized already: remove quantize (int8_weight_only)",
            "gguf =",
        ),
        (
            ('name = "schnell"', 'gguf = "./no/such/file.gguf"'),
            "variants[0].gguf",
            "GGUF file not found: ",
            "gguf =",
        ),
        (
            ('name = "schnell"', 'gguf = "tiny:schnell-q8"\nfuse_qkv = true'),
            "variants[0].gguf",
            "fuse_qkv cannot fuse GGUF weights",
            "gguf =",
        ),
        (
            ('name = "dev"', 'gguf = "tiny:schnell-q8"'),
            "variants[2].gguf",
            "tiny:schnell-q8 is tiny:schnell's transformer: set model = 'tiny:schnell'",
            "gguf =",
        ),
        (
            ('name = "schnell"', 'gguf = "tiny:schnell-q4"'),
            "variants[0].gguf",
            "unknown tiny GGUF 'tiny:schnell-q4'",
            "gguf =",
        ),
        (
            ('name = "schnell"', 'gguf = "./weights.safetensors"'),
            "variants[0].gguf",
            "not a .gguf file",
            "gguf =",
        ),
        (
            ('name = "schnell"', 'gguf = "city96/flux1-schnell-Q8_0.gguf"'),
            "variants[0].gguf",
            "nor a Hub file (owner/repo/file.gguf)",
            "gguf =",
        ),
        (
            ('name = "schnell"', "smash = {}"),
            "variants[0].smash",
            "smash needs at least one of compilers, quantizers or cachers",
            "smash =",
        ),
        (
            ('name = "schnell"', 'smash = { compiler = ["torch_compile"] }'),
            "variants[0].smash.compiler",
            "unknown key",
            "smash =",
        ),
        (
            ('name = "schnell"', 'smash = { cachers = ["fora", "fora"] }'),
            "variants[0].smash.cachers",
            "values must not repeat",
            "smash =",
        ),
        (
            ('name = "schnell"', 'smash = { cachers = ["FORA"] }'),
            "variants[0].smash.cachers[0]",
            "should match pattern",
            "smash =",
        ),
        (
            ('name = "schnell"', 'smash = { cachers = ["fora"], options = { hqq_bits = 4 } }'),
            "variants[0].smash",
            "smash option 'hqq_bits' belongs to no listed algorithm",
            "smash =",
        ),
        (
            ('base = "schnell"', 'smash = { compilers = ["torch_compile"] }'),
            "variants[1].smash",
            "smash.compilers and compile do the same job: set one of them",
            "smash =",
        ),
        (
            ('base = "schnell"', 'smash = { quantizers = ["torchao"] }'),
            "variants[1].smash",
            "smash.quantizers and quantize do the same job",
            "smash =",
        ),
        (
            ("cache = { threshold = 0.4 }", 'smash = { cachers = ["fora"] }'),
            "variants[4].smash",
            "smash.cachers and cache do the same job",
            "smash =",
        ),
        (
            ('name = "schnell"', 'gguf = "tiny:schnell-q8"\nsmash = { quantizers = ["torchao"] }'),
            "variants[0].gguf",
            "remove smash.quantizers",
            "gguf =",
        ),
    ],
)
def test_benchmark_gguf_and_smash_errors_name_file_line_key(
    tmp_path: Path, edit: tuple[str, str], key: str, reason: str, needle: str
) -> None:
    text = _with(*edit, text=DEMO_WITHOUT_GGUF.replace("../prompts/parti-64.tsv", "prompts.tsv"))
    assert text.count(edit[1]) == 1
    path = write(tmp_path, text)
    with pytest.raises(InputFileError) as info:
        load_benchmark(path)
    err = info.value
    assert reason in err.reason
    assert err.key == key
    assert err.line == line_of(text, needle)
    assert str(err).startswith(f"{path}:{err.line}: {key}: ")
    assert "\n" not in str(err)


def test_benchmark_gguf_with_fused_lora_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "dev.gguf").write_bytes(b"GGUF")
    text = DEMO.replace('base = "dev"\nsteps = 8', 'base = "dev"\nsteps = 8\ngguf = "./dev.gguf"')
    with pytest.raises(InputFileError, match="a LoRA cannot be fused into GGUF weights") as info:
        load_benchmark(write(tmp_path, text))
    assert info.value.key == "variants[3].gguf"


def test_benchmark_gguf_and_smash_load_and_inherit(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "schnell.gguf").write_bytes(b"GGUF")
    plain = load_benchmark(write(tmp_path, DEMO))
    text = _with('name = "schnell"', 'gguf = "./weights/schnell.gguf"')
    text = text.replace('\nquantize = "int8_weight_only"\n', "\n")  # not the T5's
    text = _with(
        'name = "dev"',
        'smash = { cachers = ["fora"], compilers = [], options = { fora_interval = 3 } }',
        text,
    )
    text = text.replace("cache = { threshold = 0.4 }\n", "")
    bench = load_benchmark(write(tmp_path, text))

    # A child inherits both.
    assert bench.variant("schnell").gguf == "./weights/schnell.gguf"
    assert bench.variant("schnell-fast").gguf == "./weights/schnell.gguf"
    dev_fast = bench.variant("dev-fast").smash
    assert dev_fast is not None and dev_fast.algorithms == ["fora"]
    assert dev_fast.options == {"fora_interval": 3}
    assert bench.variant("dev").optimizations["smash"]["cachers"] == ["fora"]
    assert bench.fingerprint() != plain.fingerprint()


@pytest.mark.parametrize(
    "ref",
    [
        "city96/FLUX.1-schnell-gguf/flux1-schnell-Q8_0.gguf",
        "https://huggingface.co/city96/FLUX.1-schnell-gguf/blob/main/flux1-schnell-Q8_0.gguf",
    ],
)
def test_benchmark_gguf_hub_file_accepted(tmp_path: Path, ref: str) -> None:
    text = _with('name = "schnell"', f'gguf = "{ref}"')
    text = text.replace('\nquantize = "int8_weight_only"\n', "\n")  # schnell-fast inherits it
    assert load_benchmark(write(tmp_path, text)).variant("schnell").gguf == ref


# --- memory options: quantization modes, the T5 encoder's, offloading, the VAE ------------

CUDA_DEMO = DEMO.replace("../prompts/parti-64.tsv", "prompts.tsv").replace(
    'device = "cpu"', 'device = "cuda"'
)
CPU_DEMO = DEMO.replace("../prompts/parti-64.tsv", "prompts.tsv")
INT8_LINE = 'quantize = "int8_weight_only"\n'  # schnell-fast's, which compiles


@pytest.mark.parametrize(
    ("text", "edit", "key", "reason", "needle"),
    [
        (
            CPU_DEMO,
            ("steps = 4\n", 'steps = 4\noffload = "model"\n'),
            "variants[0].offload",
            "offload = 'model' needs device = 'cuda'",
            'offload = "model"',
        ),
        (
            CUDA_DEMO,
            (INT8_LINE, INT8_LINE + 'offload = "sequential"\n'),
            "variants[1].offload",
            "sequential offload cannot be compiled; use offload = 'model' or 'group'",
            'offload = "sequential"',
        ),
        (
            CUDA_DEMO,
            (INT8_LINE, INT8_LINE + 'offload = "group"\n'),
            "variants[1].offload",
            "a torchao mode (int8_weight_only) with offload cannot be compiled",
            'offload = "group"',
        ),
        (
            CUDA_DEMO,
            ("steps = 4\n", 'steps = 4\nquantize = "nf4"\nfuse_qkv = true\n'),
            "variants[0].fuse_qkv",
            "fuse_qkv cannot fuse bitsandbytes weights (quantize = 'nf4' packs them",
            "fuse_qkv = true",
        ),
        (
            CUDA_DEMO,
            ("steps = 4\n", 'steps = 4\nquantize = "int4_weight_only"\n'),
            "variants[0].quantize",
            "int4_weight_only on CUDA needs dtype = 'bfloat16'",
            'quantize = "int4_weight_only"',
        ),
        (
            CPU_DEMO,
            ("steps = 4\n", 'steps = 4\noffload = "disk"\n'),
            "variants[0].offload",
            "Input should be 'model', 'sequential' or 'group'",
            'offload = "disk"',
        ),
        (
            CPU_DEMO,
            ("steps = 4\n", 'steps = 4\ntext_encoder_quantize = "fp8_dynamic"\n'),
            "variants[0].text_encoder_quantize",
            "Input should be 'int8_weight_only', 'nf4' or 'int8'",
            'text_encoder_quantize = "fp8_dynamic"',
        ),
    ],
)
def test_benchmark_memory_option_errors_name_file_line_key(
    tmp_path: Path, text: str, edit: tuple[str, str], key: str, reason: str, needle: str
) -> None:
    text = text.replace(*edit, 1)
    path = write(tmp_path, text)
    with pytest.raises(InputFileError) as info:
        load_benchmark(path)
    err = info.value
    assert (err.path, err.key) == (path, key)
    assert reason in err.reason
    assert err.line == line_of(text, needle)
    assert str(err).startswith(f"{path}:{err.line}: {key}: ")


def test_benchmark_memory_options_load_and_inherit(tmp_path: Path) -> None:
    options = (
        'quantize = "nf4"\ntext_encoder_quantize = "int8"\noffload = "group"\n'
        "vae_tiling = true\nvae_slicing = true\n"
    )
    text = CUDA_DEMO.replace('model = "tiny:dev"\n', 'model = "tiny:dev"\n' + options, 1)
    text = text.replace("cache = { threshold = 0.4 }\n", 'compile = { backend = "torch" }\n')
    bench = load_benchmark(write(tmp_path, text))

    # dev-fast inherits them all, and compiles: group offloading with a bitsandbytes
    # transformer may be compiled.
    dev_fast = bench.variant("dev-fast")
    assert dev_fast.compile is not None
    assert (dev_fast.quantize, dev_fast.text_encoder_quantize, dev_fast.offload) == (
        "nf4",
        "int8",
        "group",
    )
    assert dev_fast.vae_tiling and dev_fast.vae_slicing
    assert bench.variant("dev").optimizations["offload"] == "group"
    assert bench.variant("schnell").offload is None and not bench.variant("schnell").vae_tiling


def test_benchmark_fingerprint_unchanged_without_memory_options(tmp_path: Path) -> None:
    # A config that sets none of them (or sets them off) keeps its fingerprint: its run resumes.
    plain = load_benchmark(write(tmp_path, CPU_DEMO)).fingerprint()
    off = CPU_DEMO.replace("steps = 4\n", "steps = 4\nvae_tiling = false\nvae_slicing = false\n")
    on = CPU_DEMO.replace("steps = 4\n", 'steps = 4\ntext_encoder_quantize = "int8_weight_only"\n')
    assert load_benchmark(write(tmp_path, off)).fingerprint() == plain
    assert load_benchmark(write(tmp_path, on)).fingerprint() != plain
