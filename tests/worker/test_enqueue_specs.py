"""A run keeps each prompt's shapes-world scene (migration 0014): the adherence metric reads
it from the database, not from the prompt file, which may have changed since."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select

from app.bench.benchmark import load_benchmark
from app.bench.prompts import load_prompts
from app.db import session_scope
from app.models import Prompt
from app.training.shapes import ObjectGroup, SceneSpec, prompt_of, spec_from_json, spec_to_json
from app.worker.enqueue import enqueue_run

CONFIG = """
name = "specs"
prompts = "prompts.tsv"
seeds = [0]
width = 64
height = 64
device = "cpu"
hardware = "Test CPU"
usd_per_hour = 1.0

[[variants]]
name = "a"
model = "tiny:dev"
steps = 2
"""


def test_enqueue_stores_each_prompts_scene_and_none_for_a_prompt_without(
    engine: Engine, tmp_path: Path
) -> None:
    spec = SceneSpec("gray", (ObjectGroup(2, "square", "blue", "small"),))
    (tmp_path / "prompts.tsv").write_text(
        "prompt\tcategory\tchallenge\tspec\n"
        f"{prompt_of(spec)}\tcount\tshapes\t{spec_to_json(spec)}\n"
        "a red bicycle\tVehicles\tBasic\t\n"
    )
    (tmp_path / "bench.toml").write_text(CONFIG)
    bench = load_benchmark(tmp_path / "bench.toml")
    run_id = enqueue_run(engine, bench, load_prompts(bench.prompts_path))
    with session_scope(engine) as session:
        stored = session.scalars(
            select(Prompt.spec).where(Prompt.run_id == run_id).order_by(Prompt.position)
        ).all()
    assert spec_from_json(stored[0]) == spec
    assert stored[1] == ""
