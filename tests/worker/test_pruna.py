"""Pruna's smash backend. Where pruna is not installed (the main virtualenv) a smash variant
fails at its environment check, before any weights load, with the command that installs it;
the rest of the benchmark goes on. In pruna's own virtualenv (`make .venv-pruna`), a tiny
pipeline is smashed for real.

The suite makes that virtualenv only when asked (FLUX_PLAYGROUND_TEST_PRUNA=1): it takes ~3
minutes and ~3 GB, and on a CPU-only torch (this repository's CPU machines) pruna cannot
import at all, because PyPI's torchvision, which pruna needs, is built for CUDA torch: there
`make .venv-pruna` stops with that reason and writes no stamp. An up-to-date venv (its stamp
newer than pyproject.toml, `make -q`) is used as it is.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from app.bench.benchmark import SmashSpec, Variant, load_benchmark
from app.bench.prompts import load_prompts
from app.db import session_scope
from app.models import Variant as VariantRow
from app.worker.doctor.check import Status
from app.worker.doctor.software import check_pruna
from app.worker.enqueue import enqueue_run
from app.worker.pipelines import check_environment
from app.worker.runner import Worker
from app.worker.unavailable import VariantUnavailable

HINT = "make .venv-pruna"
ROOT = Path(__file__).resolve().parents[2]
STAMP = ".venv-pruna/.stamp-pruna"

CONFIG = """
name = "smash"
prompts = "prompts.tsv"
seeds = [0]
width = 64
height = 64
device = "cpu"
hardware = "test"
usd_per_hour = 1.0
warmup = 1
repeats = 2

[[variants]]
name = "schnell"
model = "tiny:schnell"
steps = 4
guidance = 0.0
max_sequence_length = 32
dtype = "float32"

[[variants]]
name = "schnell-fora"
base = "schnell"
smash = { cachers = ["fora"], options = { fora_interval = 2, fora_start_step = 1 } }
"""

without_pruna = pytest.mark.skipif(
    importlib.util.find_spec("pruna") is not None, reason="pruna is installed here"
)


def _config(tmp_path: Path) -> Path:
    (tmp_path / "prompts.tsv").write_text("prompt\tcategory\tchallenge\na cat\tAnimals\tBasic\n")
    (tmp_path / "bench.toml").write_text(CONFIG)
    return tmp_path / "bench.toml"


@without_pruna
def test_check_environment_smash_without_pruna_names_the_install_command() -> None:
    variant = Variant(name="v", model="tiny:schnell", steps=4, smash=SmashSpec(cachers=["fora"]))

    with pytest.raises(VariantUnavailable, match=rf"smash needs pruna, not installed in .*{HINT}"):
        check_environment(variant, "cpu")


@without_pruna
def test_doctor_pruna_row_fails_without_pruna(tmp_path: Path) -> None:
    check = check_pruna(load_benchmark(_config(tmp_path)))

    assert check.status == Status.FAIL
    assert check.detail.startswith("schnell-fora needs pruna, not installed in ")
    assert HINT in check.detail


@without_pruna
def test_smash_variant_fails_before_loading_and_the_rest_goes_on(
    engine: Engine, tmp_path: Path, tiny_models: Path
) -> None:
    bench = load_benchmark(_config(tmp_path))
    run_id = enqueue_run(engine, bench, load_prompts(bench.prompts_path))
    worker = Worker(
        engine,
        media_dir=tmp_path / "media",
        models_dir=tiny_models,
        show_progress=False,
        lock_dir=tmp_path,
    )

    worker.work(run_id)

    with session_scope(engine) as session:
        rows = {v.name: v for v in session.scalars(select(VariantRow))}
        assert rows["schnell"].status.value == "done"
        failed = rows["schnell-fora"]
        assert failed.status.value == "failed"
        assert failed.error is not None and failed.error.startswith("smash needs pruna")
        assert HINT in failed.error
        assert failed.load_s is None  # nothing was loaded


# Run by pruna's venv: the tiny schnell plain and smashed with fora, through the worker's own
# check_environment, load_pipeline and generate.
SMASH_SCRIPT = """
import json, sys
from pathlib import Path
import torch
from app.bench.benchmark import SmashSpec, Variant
from app.quality import ssim, to_tensor
from app.worker import pipelines

models = Path(sys.argv[1])
pipelines.set_cpu_threads(2)
plain = Variant(name="plain", model="tiny:schnell", steps=4, guidance=0.0, dtype="float32",
                max_sequence_length=32)
# fora computes the blocks at steps 0 and 1, then every 2nd step: 3 of 4 steps.
fora = SmashSpec(cachers=["fora"], options={"fora_interval": 2, "fora_start_step": 1})
smashed = plain.model_copy(update={"name": "fora", "smash": fora})
out, images = {}, {}
for variant in (plain, smashed):
    pipelines.check_environment(variant, "cpu")
    pipe = pipelines.load_pipeline(variant, device="cpu", models_dir=models, config_dir=models)
    runs = [0]
    tail = pipe.transformer.single_transformer_blocks[-1]
    tail.proj_out.register_forward_hook(lambda *_: runs.__setitem__(0, runs[0] + 1))
    two = [to_tensor(pipelines.generate(pipe, variant, prompt="a red fox", seed=0,
                                        width=64, height=64)) for _ in range(2)]
    images[variant.name] = two
    out[variant.name] = {"type": type(pipe).__name__, "runs": runs[0],
                         "repeat_identical": torch.equal(*two)}
out["ssim"] = float(ssim(images["fora"][0][None], images["plain"][0][None])[0])
print(json.dumps(out))
"""


def _pruna_python() -> Path:
    up_to_date = subprocess.run(["make", "-q", STAMP], cwd=ROOT, check=False).returncode == 0
    if not up_to_date:
        if os.environ.get("FLUX_PLAYGROUND_TEST_PRUNA") != "1":
            pytest.skip(
                f"no up-to-date .venv-pruna ({HINT}: ~3 min, ~3 GB; or set "
                "FLUX_PLAYGROUND_TEST_PRUNA=1 to let the tests make it)"
            )
        made = subprocess.run(
            ["make", ".venv-pruna"], cwd=ROOT, capture_output=True, text=True, timeout=1500
        )
        # Asked for, so a failure is a failure: on a CPU-only torch, make says why.
        assert made.returncode == 0, made.stderr.strip().splitlines()[-2:]
    return ROOT / ".venv-pruna" / "bin" / "python"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # making the venv, when asked to
def test_smash_fora_in_pruna_venv(tiny_models: Path) -> None:
    python = _pruna_python()

    done = subprocess.run(
        [str(python), "-c", SMASH_SCRIPT, str(tiny_models)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ | {"PRUNA_METRICS_ENABLED": "false"},
    )

    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["plain"] == {"type": "FluxPipeline", "runs": 8, "repeat_identical": True}
    # The variant calls pruna's wrapper, which resets fora's cache for each image: the
    # second image is the first one again, with the blocks skipped at the same step.
    assert out["fora"] == {"type": "PrunaModel", "runs": 6, "repeat_identical": True}
    assert 0.9 < out["ssim"] < 1.0
