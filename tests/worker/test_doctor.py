"""`flux-playground doctor`: real config files, this machine's torch, the console script as a
user runs it. A GPU this machine lacks is described as data to the pure checks."""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
import torch

from app.bench.benchmark import Benchmark, Variant, load_benchmark
from app.worker.doctor.check import Status
from app.worker.doctor.disk import check_disk_weights, media_gb
from app.worker.doctor.figures import FLUX_DOWNLOAD_GB, LORA_GB, TINY_GB
from app.worker.doctor.hub import (
    cached_gb,
    check_cache,
    check_hub_access,
    check_token,
    hub_repos,
    to_download,
)
from app.worker.doctor.machine import Gpu, TorchFacts, check_fp8, check_gpu
from app.worker.doctor.memory import check_memory, estimate_memory
from app.worker.doctor.software import check_bitsandbytes, check_onediff, check_torchao

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).parent / "flux-playground"
FLUX = ROOT / "configs" / "flux.toml"
DEMO_TEXT = (ROOT / "configs" / "demo.toml").read_text()
PROMPTS = ROOT / "prompts" / "parti-64.tsv"
SCHNELL = "black-forest-labs/FLUX.1-schnell"
DEV = "black-forest-labs/FLUX.1-dev"
TURBO = "alimama-creative/FLUX.1-Turbo-Alpha"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Never the network; an empty HF cache, so what is "cached" does not depend on the host.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def doctor(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "FLUX_PLAYGROUND_MEDIA_DIR": str(tmp_path / "media"),
        "COLUMNS": "400",  # one table row per line
    }
    return subprocess.run(
        [str(CLI), "doctor", *args], capture_output=True, text=True, env=env, timeout=60
    )


def table(stdout: str) -> dict[str, tuple[str, str]]:
    """check name -> (mark, detail), from the Rich table's `│ mark │ name │ detail │` lines."""
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) == 3 and cells[1]:
            rows[cells[1]] = (cells[0], cells[2])
    return rows


def demo_config(tmp_path: Path, text: str = DEMO_TEXT) -> Path:
    path = tmp_path / "demo.toml"
    path.write_text(text.replace("../prompts/parti-64.tsv", str(PROMPTS)))
    return path


def flux() -> Benchmark:
    return load_benchmark(FLUX)


def test_doctor_demo_config_passes_on_cpu(tmp_path: Path) -> None:
    result = doctor(tmp_path, str(demo_config(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = table(result.stdout)
    assert rows["CUDA"] == ("–", "not needed: device cpu")
    assert rows["torch"][0] == "✓"
    assert rows["compiler"][0] == "✓"  # the demo compiles on the CPU: Inductor needs g++
    for name in ("schnell", "schnell-fast", "dev", "dev-turbo", "dev-fast"):
        assert rows[f"memory: {name}"][0] == "✓"
    assert "✗" not in {mark for mark, _ in rows.values()}
    assert "every check this config needs passes" in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="asserts what a machine without CUDA gets")
def test_doctor_flux_config_fails_without_cuda(tmp_path: Path) -> None:
    result = doctor(tmp_path)  # the default config: configs/flux.toml
    assert result.returncode == 1, result.stdout + result.stderr
    rows = table(result.stdout)
    assert rows["CUDA"][0] == "✗"
    assert "no CUDA GPU" in rows["CUDA"][1]
    for variant in flux().variants:
        mark, detail = rows[f"memory: {variant.name}"]
        assert mark == "✗"
        assert "no CUDA GPU" in detail
    mark, detail = rows["fp8"]
    assert mark == "✗"
    assert "dev-fp8" in detail
    assert "Hub access" in rows  # skipped offline, one row
    assert rows["Hub access"][0] == "–"
    assert "failed" in result.stderr
    assert "Traceback" not in result.stderr


def test_doctor_broken_config_exits_2(tmp_path: Path) -> None:
    path = demo_config(tmp_path, DEMO_TEXT.replace("steps = 4\n", "steps = 4\nstepz = 3\n", 1))
    result = doctor(tmp_path, str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    line = path.read_text().splitlines().index("stepz = 3") + 1
    assert lines == [f"error: {path}:{line}: variants[0].stepz: unknown key"]
    assert result.stdout == ""


def test_doctor_estimate_memory_dev_bf16_and_quantized() -> None:
    bench = flux()
    dev = estimate_memory(bench.variant("dev"), 1024, 1024)
    assert dev is not None
    assert dev.activation_gb == pytest.approx(2.0)
    assert dev.steady_gb - dev.activation_gb == pytest.approx(33.7, abs=0.05)
    int8 = estimate_memory(
        bench.variant("dev").model_copy(update={"quantize": "int8_weight_only"}), 1024, 1024
    )
    fp8 = estimate_memory(bench.variant("dev-fp8"), 1024, 1024)
    assert int8 is not None and fp8 is not None
    assert int8.peak_gb == pytest.approx(dev.peak_gb - 11.9, abs=0.05)
    assert fp8.peak_gb == pytest.approx(int8.peak_gb)
    small = estimate_memory(bench.variant("dev"), 512, 512)
    assert small is not None and small.activation_gb == pytest.approx(0.5)
    # A LoRA is fused with the whole transformer on the device, before quantizing.
    turbo_int8 = estimate_memory(
        bench.variant("dev-turbo").model_copy(update={"quantize": "int8_dynamic"}), 1024, 1024
    )
    assert turbo_int8 is not None and turbo_int8.load_gb == pytest.approx(23.8 + LORA_GB)


def test_doctor_estimate_memory_gguf_by_its_quantization_and_the_24gb_config() -> None:
    """A GGUF transformer counts its file's bits (Q8_0: 8.5 of bf16's 16), not bf16's; and
    configs/flux-24gb.toml's variants are each estimated under 24 GB at their main size."""
    bench = flux()
    q8 = estimate_memory(bench.variant("schnell-gguf-q8"), 1024, 1024)
    schnell = estimate_memory(bench.variant("schnell"), 1024, 1024)
    assert q8 is not None and schnell is not None
    # The transformer at 8.5/16 of bf16's 23.8 GB, the T5 in int8 at half its 9.5 GB.
    assert schnell.steady_gb - q8.steady_gb == pytest.approx(
        23.8 * (1 - 8.5 / 16) + 9.5 / 2, abs=0.1
    )
    small = load_benchmark(ROOT / "configs" / "flux-24gb.toml")
    for variant in small.variants:
        estimate = estimate_memory(variant, small.width, small.height)
        assert estimate is not None and estimate.peak_gb < 24, variant.name


def test_doctor_estimate_memory_tiny_and_unknown() -> None:
    bench = flux()
    tiny = estimate_memory(bench.variant("dev").model_copy(update={"model": "tiny:dev"}), 256, 256)
    assert tiny is not None and tiny.peak_gb <= TINY_GB
    other = bench.variant("dev").model_copy(update={"model": "someone/other-model"})
    assert estimate_memory(other, 1024, 1024) is None
    rows = check_memory(bench.model_copy(update={"variants": [other]}), no_gpu(), ram_gb=8.0)
    assert rows[0].status is Status.SKIP
    assert rows[0].detail.startswith("unknown model: no estimate")


def no_gpu() -> TorchFacts:
    return TorchFacts("2.13.0+cpu", None, False, None, None)


def with_gpu(name: str, capability: tuple[int, int], free_gb: float) -> TorchFacts:
    gpu = Gpu(name, capability, total_gb=free_gb + 1, free_gb=free_gb, bf16=True)
    return TorchFacts("2.13.0+cu128", "12.8", True, "570.124", gpu)


def test_doctor_gpu_rules_on_described_gpus() -> None:
    bench = flux()
    h100 = with_gpu("NVIDIA H100 80GB HBM3", (9, 0), free_gb=79.0)
    assert check_fp8(bench, h100).status is Status.OK
    assert all(row.status is Status.OK for row in check_memory(bench, h100, ram_gb=200))
    gpu = check_gpu(bench, h100)
    assert gpu.status is Status.OK and "edit it" not in gpu.detail

    a100 = with_gpu("NVIDIA A100-SXM4-40GB", (8, 0), free_gb=39.5)
    fp8 = check_fp8(bench, a100)
    assert fp8.status is Status.FAIL
    assert "8.0" in fp8.detail and "dev-fp8" in fp8.detail
    assert "edit it" in check_gpu(bench, a100).detail  # costs would name the wrong GPU

    small = with_gpu("NVIDIA L4", (8, 9), free_gb=22.0)
    memory = {row.name: row for row in check_memory(bench, small, ram_gb=200)}
    assert memory["memory: dev"].status is Status.FAIL
    assert "needs ~35.7 GB at 1024x1024" in memory["memory: dev"].detail
    assert "22.0 GB free on the GPU" in memory["memory: dev"].detail
    assert check_fp8(bench, small).status is Status.OK


def test_doctor_onediff_names_missing_package() -> None:
    if importlib.util.find_spec("onediffx") is not None:
        pytest.skip("onediffx is installed here")
    check = check_onediff(flux())
    assert check.status is Status.FAIL
    assert "dev-onediff" in check.detail
    assert "onediffx" in check.detail
    assert "pip install 'flux-playground[onediff]'" in check.detail


def test_doctor_hub_token_and_offline(tmp_path: Path) -> None:
    repos = hub_repos(flux())
    assert repos == [SCHNELL, DEV, TURBO]
    assert hub_repos(load_benchmark(demo_config(tmp_path))) == []
    token = check_token(repos, None)
    assert token.status is Status.FAIL and DEV in token.detail
    assert check_token(repos, "hf_example").status is Status.OK
    assert check_token([SCHNELL], None).status is Status.SKIP  # public: no token needed
    (offline,) = check_hub_access(repos, None, "HF_HUB_OFFLINE is set")
    assert offline.status is Status.SKIP and offline.detail.startswith("offline:")


class LoopbackHub(http.server.BaseHTTPRequestHandler):
    """The Hub's auth-check answers, served on 127.0.0.1: FLUX.1-dev gated (403 GatedRepo),
    the LoRA not found (404 RepoNotFound), anything else readable."""

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:
        status, code = 200, None
        if "FLUX.1-dev" in self.path:
            status, code = 403, "GatedRepo"
        elif "Turbo-Alpha" in self.path:
            status, code = 404, "RepoNotFound"
        body = json.dumps({"error": code} if code else {}).encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def loopback_hub() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LoopbackHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_doctor_hub_access_online(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loopback_hub: str
) -> None:
    # Online, but only to a Hub on this machine's loopback.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", loopback_hub)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    rows = table(doctor(tmp_path).stdout)
    assert rows[f"Hub: {SCHNELL}"][0] == "✓"
    mark, detail = rows[f"Hub: {DEV}"]
    assert mark == "✗" and detail.startswith("gated: accept the licence")
    assert rows[f"Hub: {TURBO}"] == ("✗", "not found, or private and the token cannot read it")
    assert rows["HF cache"][0] == "✓"  # not cached, but the run may download it


def test_doctor_cache_and_disk(tmp_path: Path) -> None:
    bench = flux()
    repos = hub_repos(bench)
    cached = cached_gb(repos, tmp_path / "hf-cache")  # no cache folder yet
    assert cached == {}
    missing = to_download(bench, repos, cached)
    assert missing == {SCHNELL: FLUX_DOWNLOAD_GB, DEV: FLUX_DOWNLOAD_GB, TURBO: LORA_GB}
    # HF_HUB_OFFLINE is set: an uncached model cannot load at all.
    assert check_cache(repos, cached, missing).status is Status.FAIL
    assert check_disk_weights(missing, tmp_path, free_gb=50.0, any_hub=True).status is Status.FAIL
    assert check_disk_weights(missing, tmp_path, free_gb=100.0, any_hub=True).status is Status.OK

    partly = to_download(bench, repos, {SCHNELL: 33.6, DEV: 10.0})
    assert SCHNELL not in partly  # within the rounding of the public figure
    assert partly[DEV] == pytest.approx(FLUX_DOWNLOAD_GB - 10.0)
    images, gb = media_gb(bench, 64)
    assert images == 64 * len(bench.variants)  # one image per variant and prompt
    assert gb == pytest.approx(images * 1.5 / 1000)


# --- memory options: quantization modes, the T5 encoder's, offloading --------------------


def dev_with(**update: object) -> Variant:
    return flux().variant("dev").model_copy(update=update)


def test_doctor_estimate_memory_quantized_weights_by_bytes_per_weight() -> None:
    def weights(variant: Variant) -> float:
        estimate = estimate_memory(variant, 1024, 1024)
        assert estimate is not None
        return estimate.steady_gb - estimate.activation_gb

    bf16 = weights(dev_with())
    assert bf16 == pytest.approx(33.7, abs=0.05)
    # Transformer and T5 both quantized, as in the published figures' configurations.
    both = {
        mode: weights(dev_with(quantize=mode, text_encoder_quantize=mode))
        for mode in ("nf4", "int8")
    }
    int4 = weights(dev_with(quantize="int4_weight_only", text_encoder_quantize="nf4"))
    assert both["int8"] == pytest.approx((23.8 + 9.5) / 2 + 0.4, abs=0.05)
    assert both["nf4"] == pytest.approx((23.8 + 9.5) * 4.5 / 16 + 0.4, abs=0.05)
    assert int4 < both["nf4"] < both["int8"] < bf16  # the published figures' order
    # The T5 encoder alone: 9.5 GB of bf16 down to its int8 half.
    t5_int8 = weights(dev_with(text_encoder_quantize="int8_weight_only"))
    assert bf16 - t5_int8 == pytest.approx(9.5 / 2, abs=0.05)


def test_doctor_estimate_memory_offload_keeps_the_largest_component() -> None:
    bf16 = estimate_memory(dev_with(offload="model"), 1024, 1024)
    assert bf16 is not None
    assert bf16.load_gb == 0.0  # loaded into CPU memory
    assert bf16.steady_gb == pytest.approx(23.8 + 2.0)  # the transformer, then activations
    # torchao quantizes onto the GPU: the quantized transformer (and T5) sit there until the
    # offload takes them out.
    int8 = estimate_memory(
        dev_with(offload="sequential", quantize="int8_weight_only", text_encoder_quantize="int8"),
        1024,
        1024,
    )
    assert int8 is not None
    assert int8.load_gb == pytest.approx(11.9 + 4.75)
    assert int8.steady_gb == pytest.approx(11.9 + 2.0)
    assert int8.load_why == "quantized on the GPU before offloading"


def test_doctor_memory_fits_24gb_card_with_memory_options() -> None:
    bench = flux()
    variants = {
        "bf16": dev_with(),
        "int8": dev_with(quantize="int8_weight_only"),  # the T5 stays bf16: 23.8 GB
        "int8-t5": dev_with(quantize="int8_weight_only", text_encoder_quantize="int8_weight_only"),
        "nf4": dev_with(quantize="nf4", text_encoder_quantize="nf4"),
        "offload": dev_with(offload="model"),  # the bf16 transformer alone: 25.8 GB
        "int8-offload": dev_with(quantize="int8", offload="model"),
    }
    bench = bench.model_copy(
        update={"variants": [v.model_copy(update={"name": n}) for n, v in variants.items()]}
    )
    l4 = with_gpu("NVIDIA L4", (8, 9), free_gb=22.0)
    rows = {row.name.removeprefix("memory: "): row for row in check_memory(bench, l4, ram_gb=200)}

    fits = {name for name, row in rows.items() if row.status is Status.OK}
    assert fits == {"int8-t5", "nf4", "int8-offload"}
    assert "(model offload)" in rows["int8-offload"].detail
    assert "needs ~13.9 GB at 1024x1024 (model offload)" in rows["int8-offload"].detail


def test_doctor_bitsandbytes_and_torchao_rows(tmp_path: Path) -> None:
    cpu = load_benchmark(demo_config(tmp_path))
    dev = cpu.variant("dev")

    def bench(*variants: Variant) -> Benchmark:
        return cpu.model_copy(update={"variants": list(variants)})

    assert check_bitsandbytes(bench(dev)).status is Status.SKIP
    # The T5 encoder's bitsandbytes modes run on the CPU backend; the transformer's do not.
    t5 = check_bitsandbytes(bench(dev.model_copy(update={"text_encoder_quantize": "nf4"})))
    assert t5.status is Status.OK and t5.detail.startswith(metadata.version("bitsandbytes"))
    nf4 = check_bitsandbytes(bench(dev.model_copy(update={"quantize": "nf4"})))
    assert nf4.status is Status.FAIL
    assert "a bitsandbytes transformer (nf4, int8) needs a CUDA GPU: dev" in nf4.detail
    # torchao's row counts the torchao modes only.
    assert check_torchao(bench(dev.model_copy(update={"quantize": "nf4"}))).status is Status.SKIP
    t5_int8 = dev.model_copy(update={"text_encoder_quantize": "int8_weight_only"})
    assert check_torchao(bench(t5_int8)).status is Status.OK
