"""The JSON API and the CSV exports, checked against the database the real worker wrote."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.api_schemas import GenerationOut
from app.config import Settings
from app.csv_cells import csv_cell
from app.db import make_engine, session_factory, session_scope
from app.models import (
    Generation,
    Job,
    JobStatus,
    Prompt,
    Run,
    RunStatus,
    TimingSummary,
    Variant,
    VariantStatus,
)
from app.web.main import create_app
from tests.web.conftest import DemoData

ENDPOINTS = [
    "/api/v1/runs",
    "/api/v1/runs/{run_id}",
    "/api/v1/runs/{run_id}/variants",
    "/api/v1/runs/{run_id}/shapes",
    "/api/v1/runs/{run_id}/export/shapes.csv",
    "/api/v1/runs/{run_id}/prompts",
    "/api/v1/runs/{run_id}/generations",
    "/api/v1/runs/{run_id}/export/generations.csv",
    "/api/v1/runs/{run_id}/export/variants.csv",
]


@pytest.fixture
def db(demo_data: DemoData) -> Iterator[Session]:
    """A read-only session of our own on the demo database."""
    engine = make_engine(demo_data.database_url)
    with session_factory(engine)() as session:
        yield session
    engine.dispose()


def api(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(f"/api/v1{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_api_runs_list_matches_database(demo_client: TestClient, db: Session) -> None:
    runs = api(demo_client, "/runs")
    run = db.scalars(select(Run)).one()
    assert [r["id"] for r in runs] == [run.id]
    counts = dict(
        db.execute(
            select(Job.status, func.count()).where(Job.run_id == run.id).group_by(Job.status)
        ).all()
    )
    assert runs[0] | {"created_at": None, "finished_at": None} == {
        "id": run.id,
        "name": "webtest",
        "description": "Web test run: <b>not bold</b>",
        "status": "done",
        "device": "cpu",
        "hardware": "Test CPU",
        "usd_per_hour": 3.6,
        "width": 64,
        "height": 64,
        "seeds": [0, 1],
        "created_at": None,
        "finished_at": None,
        "jobs_done": counts[JobStatus.done],
        "jobs_failed": counts[JobStatus.failed],
        "jobs_do_not_fit": 0,
        "jobs_total": 4 * 6 * 2,
    }
    # schnell-fp8 failed on the CPU: its 6 prompts × 2 seeds
    assert runs[0]["jobs_failed"] == 12


def test_api_run_detail_includes_environment(
    demo_client: TestClient, demo_data: DemoData, db: Session
) -> None:
    detail = api(demo_client, f"/runs/{demo_data.run_id}")
    run = db.get(Run, demo_data.run_id)
    assert run is not None
    # Everything but which machine and process measured it (a host name is no one's business).
    assert "host" in run.environment and "process" in run.environment
    public = {k: v for k, v in run.environment.items() if k not in ("host", "process")}
    assert detail["environment"] == public
    assert detail["environment"]["packages"]["torch"]
    # The config as stored, but its files by name only: no server paths on the API.
    assert (detail["config"]["config_path"], detail["config"]["prompts_path"]) == (
        "bench.toml",
        "prompts.tsv",
    )
    assert run.config["config_path"].endswith("/bench.toml")
    assert str(demo_data.media_dir.parent) not in json.dumps(detail)
    paths = ("config_path", "prompts_path")
    assert {k: v for k, v in detail["config"].items() if k not in paths} == {
        k: v for k, v in run.config.items() if k not in paths
    }
    assert (detail["warmup"], detail["repeats"], detail["prompt_set"]) == (1, 3, "prompts.tsv")
    # UTC, with the zone spelled out though SQLite does not keep it
    assert detail["created_at"].endswith("Z") and detail["finished_at"].endswith("Z")


@pytest.mark.parametrize("path", ENDPOINTS[1:])
def test_api_unknown_run_is_404_with_reason(demo_client: TestClient, path: str) -> None:
    response = demo_client.get(path.format(run_id=999))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "run 999 not found"}


@pytest.mark.parametrize("run_id", ["abc", "0", "-1", "1.5", str(2**63)])
def test_api_run_id_invalid_is_422(demo_client: TestClient, run_id: str) -> None:
    response = demo_client.get(f"/api/v1/runs/{run_id}/variants")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "run_id"]


def test_api_variants_match_database(
    demo_client: TestClient, demo_data: DemoData, db: Session
) -> None:
    body = api(demo_client, f"/runs/{demo_data.run_id}/variants")
    variants = {v["name"]: v for v in body["variants"]}
    assert list(variants) == ["dev", "dev-turbo", "schnell", "schnell-fp8"]
    assert body["usd_per_hour"] == body["stored_usd_per_hour"] == 3.6
    for row in db.scalars(select(Variant).where(Variant.run_id == demo_data.run_id)):
        out = variants[row.name]
        assert (out["id"], out["status"], out["config"]) == (row.id, row.status.value, row.config)
        assert out["peak_mem_gb"] == row.peak_mem_gb and out["compile_s"] == row.compile_s
        timing = db.scalar(
            select(TimingSummary).where(
                TimingSummary.variant_id == row.id, TimingSummary.kind == "steady_state"
            )
        )
        if timing is None:
            continue
        assert out["latency_median_s"] == timing.latency_median_s
        assert (out["latency_p10_s"], out["latency_p90_s"]) == (
            timing.latency_p10_s,
            timing.latency_p90_s,
        )
        # $3.60/h is $0.001/s: $/1k images equals the latency in seconds
        assert out["usd_per_1k_images"] == pytest.approx(timing.latency_median_s)
    turbo, dev = variants["dev-turbo"], variants["dev"]
    assert turbo["reference"] == "dev" and dev["reference"] is None
    assert turbo["speedup_vs_reference"] == pytest.approx(
        dev["latency_median_s"] / turbo["latency_median_s"]
    )
    failed = variants["schnell-fp8"]
    assert failed["status"] == "failed" and "fp8" in failed["error"]
    assert failed["latency_median_s"] is None and failed["usd_per_1k_images"] is None
    assert (failed["jobs_done"], failed["jobs_failed"], failed["jobs_total"]) == (0, 12, 12)


def test_api_variants_price_override_scales_costs_linearly(
    demo_client: TestClient, demo_data: DemoData, db: Session
) -> None:
    path = f"/runs/{demo_data.run_id}/variants"
    base = {v["name"]: v for v in api(demo_client, path)["variants"]}
    doubled = api(demo_client, path, usd_per_hour=7.2)
    free = {v["name"]: v for v in api(demo_client, path, usd_per_hour=0)["variants"]}
    assert (doubled["usd_per_hour"], doubled["stored_usd_per_hour"]) == (7.2, 3.6)
    for v in doubled["variants"]:
        before = base[v["name"]]
        assert v["latency_median_s"] == before["latency_median_s"]
        assert v["speedup_vs_reference"] == before["speedup_vs_reference"]
        for cost in ("usd_per_image", "usd_per_1k_images", "amortized_usd_per_image"):
            if before[cost] is None:
                assert v[cost] is None and free[v["name"]][cost] is None
            else:
                assert v[cost] == pytest.approx(2 * before[cost])
                assert free[v["name"]][cost] == 0
    db.expire_all()
    assert db.scalars(select(Run.usd_per_hour)).one() == 3.6


@pytest.mark.parametrize("price", ["-0.01", "abc", "nan", "inf", "1e308"])
def test_api_variants_bad_price_is_422(
    demo_client: TestClient, demo_data: DemoData, price: str
) -> None:
    for path in ("variants", "export/variants.csv"):
        response = demo_client.get(
            f"/api/v1/runs/{demo_data.run_id}/{path}", params={"usd_per_hour": price}
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "usd_per_hour"]


def test_api_prompts_match_database(
    demo_client: TestClient, demo_data: DemoData, db: Session
) -> None:
    body = api(demo_client, f"/runs/{demo_data.run_id}/prompts")
    rows = db.scalars(
        select(Prompt).where(Prompt.run_id == demo_data.run_id).order_by(Prompt.position)
    ).all()
    assert (body["total"], body["limit"], body["offset"]) == (6, 100, 0)
    assert body["items"] == [
        {
            "id": p.id,
            "position": p.position,
            "text": p.text,
            "category": p.category,
            "challenge": p.challenge,
        }
        for p in rows
    ]
    assert '<script>alert("x")</script> a lighthouse & the sea' in [p.text for p in rows]


@pytest.mark.parametrize(
    ("params", "positions"),
    [
        ({"category": "Animals"}, [2, 5]),
        ({"challenge": "Imagination"}, [2, 4]),
        ({"category": "Animals", "challenge": "Quantity"}, [5]),
        ({"q": "SCRIPT"}, [3]),
        ({"q": " ON "}, [0, 5]),  # ignoring case
        ({"q": "%"}, []),  # a LIKE wildcard is matched literally
        ({"category": "animals"}, []),  # categories match exactly
    ],
)
def test_api_prompts_filters(
    demo_client: TestClient, demo_data: DemoData, params: dict[str, str], positions: list[int]
) -> None:
    body = api(demo_client, f"/runs/{demo_data.run_id}/prompts", **params)
    assert [p["position"] for p in body["items"]] == positions
    assert body["total"] == len(positions)


def test_api_prompts_pagination(demo_client: TestClient, demo_data: DemoData) -> None:
    path = f"/runs/{demo_data.run_id}/prompts"
    first = api(demo_client, path, limit=4)
    second = api(demo_client, path, limit=4, offset=4)
    beyond = api(demo_client, path, limit=4, offset=100)
    assert [p["position"] for p in first["items"] + second["items"]] == list(range(6))
    assert first["total"] == second["total"] == beyond["total"] == 6
    assert beyond["items"] == []


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "x"}, {"q": "x" * 501}],
)
def test_api_prompts_bad_params_are_422(
    demo_client: TestClient, demo_data: DemoData, params: dict[str, Any]
) -> None:
    response = demo_client.get(f"/api/v1/runs/{demo_data.run_id}/prompts", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", next(iter(params))]


def test_api_generations_match_database(
    demo_client: TestClient, demo_data: DemoData, db: Session
) -> None:
    body = api(demo_client, f"/runs/{demo_data.run_id}/generations", limit=500)
    rows = {
        g.id: g for g in db.scalars(select(Generation).where(Generation.run_id == demo_data.run_id))
    }
    assert body["total"] == len(body["items"]) == len(rows) == 3 * 6 * 2
    for item in body["items"]:
        g = rows[item["generation_id"]]
        job = db.get(Job, item["job_id"])
        assert job is not None and job.status == JobStatus.done and job.id == g.job_id
        assert item["variant"] == g.variant.name and item["prompt"] == g.prompt.text
        assert (item["prompt_id"], item["seed"], item["latency_s"]) == (
            g.prompt_id,
            g.seed,
            g.latency_s,
        )
        assert (item["steps"], item["guidance"], item["dtype"]) == (g.steps, g.guidance, g.dtype)
        assert (item["lora"], item["optimizations"]) == (g.lora, g.optimizations)
        assert (item["width"], item["height"], item["sha256"]) == (64, 64, g.image_sha256)
        assert item["image_url"] == f"/media/{g.image_path}?v={g.image_sha256[:12]}"
        assert item["thumb_url"] == f"/media/{g.thumb_path}?v={g.image_sha256[:12]}"
    # by variant (config order), prompt position, seed
    order = [
        (
            rows[i["generation_id"]].variant.position,
            rows[i["generation_id"]].prompt.position,
            i["seed"],
        )
        for i in body["items"]
    ]
    assert order == sorted(order)


def test_api_generations_image_url_serves_the_image(
    demo_client: TestClient, demo_data: DemoData
) -> None:
    item = api(demo_client, f"/runs/{demo_data.run_id}/generations", limit=1)["items"][0]
    image = demo_client.get(item["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert hashlib.sha256(image.content).hexdigest() == item["sha256"]
    assert demo_client.get(item["thumb_url"]).status_code == 200


@pytest.mark.parametrize(
    ("params", "count"),
    [
        ({"variant": "dev-turbo"}, 12),
        ({"variant": "schnell-fp8"}, 0),  # failed: no images
        ({"variant": "no-such-variant"}, 0),
        ({"seed": 1}, 18),
        ({"seed": 1, "variant": "dev"}, 6),
        ({"seed": 7}, 0),
        ({"size": "64x64"}, 36),  # the run's one size
        ({"size": "64x64", "seed": 1}, 18),
        ({"size": "96x64"}, 0),
    ],
)
def test_api_generations_filters(
    demo_client: TestClient, demo_data: DemoData, params: dict[str, Any], count: int
) -> None:
    body = api(demo_client, f"/runs/{demo_data.run_id}/generations", limit=500, **params)
    assert body["total"] == len(body["items"]) == count
    for item in body["items"]:
        assert item["variant"] == params.get("variant", item["variant"])
        assert item["seed"] == params.get("seed", item["seed"])


def test_api_generations_filter_by_prompt(
    demo_client: TestClient, demo_data: DemoData, db: Session
) -> None:
    prompt = db.scalars(select(Prompt).where(Prompt.category == "Vehicles")).one()
    body = api(demo_client, f"/runs/{demo_data.run_id}/generations", prompt_id=prompt.id)
    assert body["total"] == 3 * 2
    assert {i["prompt"] for i in body["items"]} == {prompt.text}
    assert {i["variant"] for i in body["items"]} == {"dev", "dev-turbo", "schnell"}
    turbo = next(i for i in body["items"] if i["variant"] == "dev-turbo")
    assert turbo["lora"]["path"] == "tiny:turbo-lora" and turbo["steps"] == 2


def test_api_generations_pagination(demo_client: TestClient, demo_data: DemoData) -> None:
    path = f"/runs/{demo_data.run_id}/generations"
    everything = [i["generation_id"] for i in api(demo_client, path, limit=500)["items"]]
    paged: list[int] = []
    for offset in range(0, 40, 5):
        page = api(demo_client, path, limit=5, offset=offset)
        assert page["total"] == 36 and page["limit"] == 5 and page["offset"] == offset
        paged += [i["generation_id"] for i in page["items"]]
    assert paged == everything and len(set(paged)) == 36

    # The cursor walks the same order, page after page, and says when it ends; with a
    # filter too.
    for params in ({}, {"variant": "dev-turbo"}, {"seed": 0}):
        expected = [
            i["generation_id"] for i in api(demo_client, path, limit=500, **params)["items"]
        ]
        walked: list[int] = []
        cursor: str | None = None
        while True:
            extra = {"after": cursor} if cursor else {}
            page = api(demo_client, path, limit=5, **params, **extra)
            walked += [i["generation_id"] for i in page["items"]]
            cursor = page["next"]
            if cursor is None:
                break
        assert walked == expected, params
    response = demo_client.get(f"/api/v1{path}", params={"after": "not-a-cursor"})
    assert response.status_code == 422 and "cursor" in response.json()["detail"]


@pytest.mark.parametrize(
    "params",
    [{"seed": -1}, {"seed": 2**63}, {"prompt_id": "abc"}, {"prompt_id": 0}, {"limit": 501}],
)
def test_api_generations_bad_params_are_422(
    demo_client: TestClient, demo_data: DemoData, params: dict[str, Any]
) -> None:
    for path in ("generations", "export/generations.csv"):
        if path.endswith(".csv") and "limit" in params:
            continue  # the export is not paginated
        response = demo_client.get(f"/api/v1/runs/{demo_data.run_id}/{path}", params=params)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", next(iter(params))]


def test_api_export_generations_csv(demo_client: TestClient, demo_data: DemoData) -> None:
    response = demo_client.get(f"/api/v1/runs/{demo_data.run_id}/export/generations.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="webtest-run{demo_data.run_id}-generations.csv"'
    )
    rows = parse_csv(response.text)
    assert list(rows[0]) == list(GenerationOut.model_fields)
    assert "latency_s" in rows[0]
    items = api(demo_client, f"/runs/{demo_data.run_id}/generations", limit=500)["items"]
    assert len(rows) == len(items) == 36
    for row, item in zip(rows, items, strict=True):
        assert int(row["generation_id"]) == item["generation_id"]
        assert row["prompt"] == item["prompt"] and row["image_url"] == item["image_url"]
        assert float(row["latency_s"]) == item["latency_s"]
        assert json.loads(row["optimizations"]) == item["optimizations"]
        assert (json.loads(row["lora"]) if row["lora"] else None) == item["lora"]
    assert '<script>alert("x")</script> a lighthouse & the sea' in {r["prompt"] for r in rows}


def test_api_export_generations_csv_filtered(demo_client: TestClient, demo_data: DemoData) -> None:
    response = demo_client.get(
        f"/api/v1/runs/{demo_data.run_id}/export/generations.csv",
        params={"variant": "schnell", "seed": 0},
    )
    rows = parse_csv(response.text)
    assert len(rows) == 6 and {(r["variant"], r["seed"]) for r in rows} == {("schnell", "0")}


def test_api_export_variants_csv(demo_client: TestClient, demo_data: DemoData) -> None:
    path = f"/api/v1/runs/{demo_data.run_id}/export/variants.csv"
    response = demo_client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="webtest-run{demo_data.run_id}-variants.csv"'
    )
    rows = parse_csv(response.text)
    variants = api(demo_client, f"/runs/{demo_data.run_id}/variants")["variants"]
    assert [r["name"] for r in rows] == [v["name"] for v in variants]
    header = list(rows[0])
    for column in ("latency_median_s", "usd_per_1k_images", "peak_mem_gb", "compile_s"):
        assert column in header
    assert "config" not in header
    for row, variant in zip(rows, variants, strict=True):
        assert row["usd_per_hour"] == "3.6"
        if variant["latency_median_s"] is None:
            assert row["latency_median_s"] == row["usd_per_1k_images"] == ""
        else:
            assert float(row["usd_per_1k_images"]) == variant["usd_per_1k_images"]
    doubled = parse_csv(demo_client.get(path, params={"usd_per_hour": 7.2}).text)
    assert {r["usd_per_hour"] for r in doubled} == {"7.2"}
    assert float(doubled[0]["usd_per_image"]) == pytest.approx(2 * float(rows[0]["usd_per_image"]))


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("a cat = a dog", "a cat = a dog"),
        ("", ""),
        (None, ""),
        (-1.5, -1.5),
        (3, 3),
        ({"b": 1, "a": None}, '{"a": null, "b": 1}'),
    ],
)
def test_api_csv_cell_escapes_formulas(value: object, cell: object) -> None:
    assert csv_cell(value) == cell


@pytest.fixture
def formula_client(engine: Engine, database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """A database of our own whose one prompt is a spreadsheet formula."""
    with session_scope(engine) as session:
        run = Run(
            name="evil name/../x",
            fingerprint="f",
            config_path="/x/bench.toml",
            config={"seeds": [7]},
            prompt_set="p.tsv",
            width=64,
            height=64,
            device="cpu",
            hardware="Test CPU",
            usd_per_hour=3.6,
            warmup=1,
            repeats=3,
            status=RunStatus.done,
        )
        variant = Variant(
            run=run,
            name="v",
            position=0,
            config={"steps": 2},
            status=VariantStatus.done,
        )
        prompt = Prompt(
            run=run, position=0, text='=HYPERLINK("http://evil")', category="@x", challenge="-y"
        )
        session.add_all([run, variant, prompt])
        session.flush()
        job = Job(
            run_id=run.id,
            variant=variant,
            prompt=prompt,
            seed=7,
            width=run.width,
            height=run.height,
            status=JobStatus.done,
        )
        session.add(
            Generation(
                job=job,
                run_id=run.id,
                variant=variant,
                prompt=prompt,
                seed=7,
                image_path="runs/1/v/1.png",
                thumb_path="runs/1/v/1.thumb.webp",
                image_sha256="ab" * 32,
                width=64,
                height=64,
                model="tiny:dev",
                steps=2,
                guidance=0.0,
                max_sequence_length=32,
                dtype="float32",
                lora=None,
                optimizations={},
                latency_s=0.5,
            )
        )
    settings = Settings(database_url=database_url, media_dir=tmp_path / "media")
    with TestClient(create_app(settings)) as client:
        yield client


def test_api_export_escapes_formula_prompts(formula_client: TestClient) -> None:
    run_id = api(formula_client, "/runs")[0]["id"]
    response = formula_client.get(f"/api/v1/runs/{run_id}/export/generations.csv")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="evil_name_.._x-run{run_id}-generations.csv"'
    )
    [row] = parse_csv(response.text)
    assert row["prompt"] == '\'=HYPERLINK("http://evil")'
    # the JSON keeps the prompt as given
    prompts = api(formula_client, f"/runs/{run_id}/prompts")["items"]
    assert prompts[0] | {"id": 0} == {
        "id": 0,
        "position": 0,
        "text": '=HYPERLINK("http://evil")',
        "category": "@x",
        "challenge": "-y",
    }


def test_api_runs_list_empty_database(database_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=database_url, media_dir=tmp_path / "media")
    with TestClient(create_app(settings)) as client:
        assert api(client, "/runs") == []
        assert client.get("/api/v1/runs/1").status_code == 404


def test_api_openapi_lists_the_endpoints(demo_client: TestClient) -> None:
    schema = demo_client.get("/openapi.json").json()
    for path in ENDPOINTS:
        assert "get" in schema["paths"][path], path
    assert "text/csv" in (schema["paths"][ENDPOINTS[-1]]["get"]["responses"]["200"]["content"])
    # every field with a unit in its name says what it means
    for model in ("RunOut", "VariantOut", "GenerationOut", "ShapeOut"):
        for name, field in schema["components"]["schemas"][model]["properties"].items():
            if name.endswith(("_s", "_gb")) or name.startswith("usd_"):
                assert field.get("description"), f"{model}.{name}"
    assert demo_client.get("/docs").status_code == 200
    # Every status a route can answer is in its documentation.
    for path, operations in schema["paths"].items():
        codes = set(operations["get"]["responses"])
        if "{run_id}" in path:
            assert {"404", "422"} <= codes, path
        if path.startswith("/admin/"):
            assert {"401", "404", "422", "429"} <= codes, path
    # Exactly the API, the admin's exports and the health check: no HTML page.
    paths = [path for path in schema["paths"] if path != "/healthz"]
    assert all(path.startswith(("/api/v1/", "/admin/export/")) for path in paths), sorted(
        schema["paths"]
    )
