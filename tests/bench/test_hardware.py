"""Hardware side by side (app/bench/hardware.py): which runs make the same images, and one
variant's latency, throughput, cost and fit per machine — on two runs of one config that the
real worker made "on two machines" (tests/hardware_runs.py: only `hardware` and
`usd_per_hour` differ) and a third whose dev variant has other steps."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.bench import costs
from app.bench.hardware import (
    MachineRow,
    cheapest_machines,
    compare,
    config_differences,
    config_spec,
    default_runs,
    prompt_differences,
    select_comparable,
    sort_rows,
)
from app.db import make_engine
from app.models import Run
from tests.hardware_runs import HardwareRuns, hardware_runs

GPUS = (16.0, 24.0)


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> HardwareRuns:
    return hardware_runs(tmp_path_factory, tiny_models)


@pytest.fixture
def session(machines: HardwareRuns) -> Iterator[Session]:
    engine = make_engine(machines.database_url)
    with Session(engine) as session:
        yield session
    engine.dispose()


def test_hardware_same_config_on_two_machines_is_comparable(
    session: Session, machines: HardwareRuns
) -> None:
    small, big = session.get_one(Run, machines.small), session.get_one(Run, machines.big)
    # Two runs (the hardware is part of a run's fingerprint), the same images.
    assert small.fingerprint != big.fingerprint and small.name == big.name
    selection = select_comparable(session, [big, small])
    assert [r.id for r in selection.runs] == [machines.big, machines.small]
    assert selection.refused == []
    assert selection.fingerprint == select_comparable(session, [small]).fingerprint


def test_hardware_other_steps_are_refused_with_the_reason(
    session: Session, machines: HardwareRuns
) -> None:
    runs = [session.get_one(Run, i) for i in (machines.big, machines.other_steps, machines.small)]
    selection = select_comparable(session, runs)
    assert [r.id for r in selection.runs] == [machines.big, machines.small]
    [refused] = selection.refused
    assert refused.run_id == machines.other_steps and refused.hardware == "Test CPU A"
    # dev-turbo inherits dev's settings but sets its own steps: only dev differs.
    assert refused.reasons == [f"variant dev: steps 2 here, 3 in run {machines.other_steps}"]
    assert selection.fingerprint != select_comparable(session, runs[1:2]).fingerprint


def test_hardware_default_is_the_latest_run_and_the_ended_ones(
    session: Session, machines: HardwareRuns
) -> None:
    # other_steps is only enqueued (pending): not an ended run.
    assert [r.id for r in default_runs(session)] == [machines.big, machines.small]


def _spec_run(**changes: Any) -> Run:
    """A run (not stored) of the tests' config, with some of its settings changed."""
    variant = {
        "name": "dev",
        "model": "tiny:dev",
        "steps": 2,
        "guidance": 3.5,
        "max_sequence_length": 32,
        "dtype": "float32",
        "lora": None,
        "compile": None,
        "quantize": None,
        "cache": None,
        "fuse_qkv": False,
        "sizes": None,
        "batch_sizes": None,
    }
    config: dict[str, Any] = {
        "seeds": [0],
        "sizes": ["64x64", "96x64"],
        "batch_sizes": [1],
        "hardware": "A",
        "warmup": 0,
        "repeats": 2,
        "variants": [variant],
    }
    for key, value in changes.items():
        target = variant if key in variant and key not in config else config
        target[key] = value
    return Run(config=copy.deepcopy(config), width=64, height=64)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"hardware": "B", "warmup": 3, "repeats": 10, "batch_sizes": [1, 2, 4]}, None),
        ({"compile": {"backend": "torch", "mode": "default", "fresh_cache": True}}, None),
        ({"steps": 4}, "variant dev: steps 2 here, 4 in run 9"),
        ({"dtype": "bfloat16"}, "variant dev: dtype float32 here, bfloat16 in run 9"),
        ({"quantize": "int8_dynamic"}, "variant dev: quantize none here, int8_dynamic in run 9"),
        (
            {"compile": {"backend": "torch", "mode": "max-autotune", "fresh_cache": False}},
            'variant dev: compile {"backend": "torch", "mode": "default"} here, '
            '{"backend": "torch", "mode": "max-autotune"} in run 9',
        ),
        ({"seeds": [0, 1]}, "seeds: 0 here, 0, 1 in run 9"),
        ({"sizes": ["64x64"]}, "sizes: 64x64, 96x64 here, 64x64 in run 9"),
        ({"size_prompt_limit": 1}, "size_prompt_limit: none here, 1 in run 9"),
    ],
)
def test_hardware_what_changes_the_images(change: dict[str, Any], reason: str | None) -> None:
    compiled = {"compile": {"backend": "torch", "mode": "default", "fresh_cache": False}}
    base = compiled if "compile" in change else {}
    here = config_spec(_spec_run(**base))
    there = config_spec(_spec_run(**change))
    if "sizes" in change:  # the variant's own sizes follow the run's
        assert there["variants"]["dev"]["sizes"] == change["sizes"]
    assert config_differences(here, there, 9) == ([reason] if reason else [])


def test_hardware_variants_and_prompts_that_differ() -> None:
    here = config_spec(_spec_run())
    there = copy.deepcopy(here)
    there["variants"]["extra"] = there["variants"].pop("dev")
    assert config_differences(here, there, 4) == [
        "variant dev: not in run 4",
        "variant extra: only in run 4",
    ]
    assert prompt_differences(["a cat"], ["a cat"], 4) == []
    assert prompt_differences(["a cat"], ["a cat", "a dog"], 4) == ["prompts: 1 here, 2 in run 4"]
    assert prompt_differences(["a cat", "a dog"], ["a cat", "a fox"], 4) == [
        "prompt 2: “a dog” here, “a fox” in run 4"
    ]


def _rows(session: Session, machines: HardwareRuns, size: str) -> list[MachineRow]:
    runs = [session.get_one(Run, machines.big), session.get_one(Run, machines.small)]
    return compare(session, runs, size, GPUS)


def test_hardware_each_machine_at_its_own_price_and_the_cheapest(
    session: Session, machines: HardwareRuns
) -> None:
    rows = _rows(session, machines, "64x64")
    assert [(r.variant, r.hardware) for r in rows] == [
        ("dev", "Test CPU B"),
        ("dev-turbo", "Test CPU B"),
        ("dev", "Test CPU A"),
        ("dev-turbo", "Test CPU A"),
    ]
    for row in rows:
        run = session.get_one(Run, row.run_id)
        variant = next(v for v in run.variants if v.name == row.variant)
        single = next(s for s in variant.shapes if (s.width, s.batch_size) == (64, 1))
        assert row.usd_per_hour == run.usd_per_hour == (10.0 if run.id == machines.big else 1.0)
        assert row.latency_per_image_s == single.latency_median_s
        assert row.usd_per_1k_images == pytest.approx(
            costs.usd_per_1k_images(single.latency_median_s, run.usd_per_hour)  # type: ignore[arg-type]
        )
        best = max((s for s in variant.shapes if s.width == 64), key=lambda s: s.images_per_s or 0)
        assert (row.best_batch, row.best_images_per_s) == (best.batch_size, best.images_per_s)
        assert row.usd_per_1k_images_best == pytest.approx(
            costs.usd_per_1k_images(best.latency_per_image_s, run.usd_per_hour)  # type: ignore[arg-type]
        )
        assert row.status == "measured" and row.peak_mem_gb == single.peak_mem_gb
        assert row.fits_on == "not comparable (a CPU peak RSS)"
        # The reference on the same machine, never the other one's.
        if row.variant == "dev-turbo":
            ref = next(r for r in rows if r.variant == "dev" and r.run_id == row.run_id)
            assert row.reference == "dev"
            assert row.speedup == pytest.approx(ref.latency_per_image_s / row.latency_per_image_s)  # type: ignore[operator]
        else:
            assert row.reference is None and row.speedup is None
    # The cheapest machine per variant: the least $ per image at its best batch (timings
    # on a shared CPU vary, so it is checked against the figures, not assumed).
    for answer in cheapest_machines(rows):
        mine = [r for r in rows if r.variant == answer.variant]
        assert answer.row is not None
        assert answer.row.usd_per_1k_images_best == min(r.usd_per_1k_images_best for r in mine)  # type: ignore[type-var]
        assert [r.run_id for r in mine if r.cheapest] == [answer.row.run_id]


def test_hardware_a_size_that_fits_on_one_machine_only(
    session: Session, machines: HardwareRuns
) -> None:
    rows = _rows(session, machines, "96x64")
    for row in rows:
        if row.run_id == machines.big:
            assert row.status == "does_not_fit" and row.latency_per_image_s is None
            assert row.note and row.note.startswith("does not fit at 96x64, batch 1:")
            assert row.fit_text.startswith("✗ does not fit, ")
            assert row.usd_per_1k_images_best is None and not row.cheapest
        else:
            assert row.status == "measured" and row.best_batch == 1  # batch 2: out of memory
    assert {c.variant: c.row.run_id for c in cheapest_machines(rows) if c.row} == {
        "dev": machines.small,
        "dev-turbo": machines.small,
    }


def test_hardware_sort_best_first_and_missing_figures_last(
    session: Session, machines: HardwareRuns
) -> None:
    rows = _rows(session, machines, "96x64")
    by_cost = sort_rows(rows, "cost")
    costs_in_order = [r.usd_per_1k_images_best for r in by_cost]
    assert costs_in_order[2:] == [None, None]
    assert costs_in_order[:2] == sorted(costs_in_order[:2])  # type: ignore[type-var]
    by_throughput = [r.best_images_per_s for r in sort_rows(rows, "throughput")]
    assert by_throughput[:2] == sorted(by_throughput[:2], reverse=True)  # type: ignore[type-var]
    by_variant = [(r.variant, r.run_id) for r in sort_rows(rows, "variant")]
    assert by_variant == [
        ("dev", machines.big),
        ("dev", machines.small),
        ("dev-turbo", machines.big),
        ("dev-turbo", machines.small),
    ]
    by_machine = [r.hardware for r in sort_rows(rows, "hardware")]
    assert by_machine == ["Test CPU A"] * 2 + ["Test CPU B"] * 2
