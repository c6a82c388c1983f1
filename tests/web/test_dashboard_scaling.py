"""The dashboard's scaling section (sizes and batch sizes) and the shapes API and CSV, on
the sized run the real worker made with an out-of-memory error injected at 96x64, batch 2
(tests/conftest.py `sized_data`), and on a machine where 96x64 does not fit at all
(tests/hardware_runs.py). HTML checked with CSS selectors."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api_schemas import ShapeOut
from app.config import Settings
from app.db import make_engine
from app.models import Run, ShapeSeries, Variant
from app.web.main import create_app
from tests.conftest import DemoData
from tests.hardware_runs import HardwareRuns, hardware_runs

VARIANTS = ["dev", "dev-turbo", "schnell"]
SIZES = ["64x64", "96x64"]


def client_for(database_url: str, media_dir: Path, **settings: Any) -> TestClient:
    return TestClient(
        create_app(
            Settings(database_url=database_url, media_dir=media_dir, page_cache_s=0, **settings)
        )
    )


@pytest.fixture(scope="module")
def client(sized_data: DemoData) -> Iterator[TestClient]:
    with client_for(sized_data.database_url, sized_data.media_dir) as client:
        yield client


@pytest.fixture(scope="module")
def soup(client: TestClient, sized_data: DemoData) -> BeautifulSoup:
    response = client.get(f"/dashboard?run={sized_data.run_id}")
    assert response.status_code == 200, response.text
    return BeautifulSoup(response.text, "html.parser")


@pytest.fixture(scope="module")
def stored(sized_data: DemoData) -> dict[tuple[str, str, int], ShapeSeries]:
    engine = make_engine(sized_data.database_url)
    with Session(engine) as session:
        rows = session.execute(
            select(Variant.name, ShapeSeries)
            .join(Variant, ShapeSeries.variant_id == Variant.id)
            .where(Variant.run_id == sized_data.run_id)
        ).all()
        session.expunge_all()
    engine.dispose()
    return {(name, f"{s.width}x{s.height}", s.batch_size): s for name, s in rows}


def test_dashboard_scaling_charts_each_with_a_label_and_a_table(soup: BeautifulSoup) -> None:
    section = soup.select_one("section#scaling")
    assert section is not None
    for chart in ("latency", "throughput", "memory"):
        canvas = section.select_one(f"canvas#chart-scaling-{chart}")
        assert canvas is not None and canvas["role"] == "img" and canvas["aria-label"], chart
        card = canvas.find_parent("figure")
        assert card is not None
        # The no-JS fallback: the chart's numbers as a table in the same card.
        table = card.select_one(f"table.scaling-table[data-table='{chart}']")
        assert table is not None, chart
        assert [str(tr["data-variant"]) for tr in table.select("tbody tr")] == VARIANTS
    data = json.loads(soup.select_one("script#scaling-data").text)  # type: ignore[union-attr]
    assert data["main_size"] == "64x64" and data["batch_sizes"] == [1, 2]
    assert [s["size"] for s in data["sizes"]] == SIZES
    assert [v["name"] for v in data["variants"]] == VARIANTS
    # A CPU run: peak RSS, so no GPU lines on the memory chart.
    assert data["peak_mem_kind"] == "process_peak_rss" and data["gpu_memory_gb"] == []


def test_dashboard_scaling_fallback_tables_hold_the_stored_figures(
    soup: BeautifulSoup, stored: dict[tuple[str, str, int], ShapeSeries]
) -> None:
    latency = soup.select_one("table[data-table='latency']")
    throughput = soup.select_one("table[data-table='throughput']")
    memory = soup.select_one("table[data-table='memory']")
    assert latency and throughput and memory
    for variant in VARIANTS:
        for size in SIZES:
            cell = latency.select_one(f"tr[data-variant='{variant}'] td[data-size='{size}']")
            assert cell is not None
            assert float(str(cell["data-value"])) == stored[(variant, size, 1)].latency_per_image_s
            cell = memory.select_one(f"tr[data-variant='{variant}'] td[data-size='{size}']")
            assert cell is not None and cell["data-state"] == "fits"
            assert float(str(cell["data-value"])) == stored[(variant, size, 1)].peak_mem_gb
        cells = throughput.select(f"tr[data-variant='{variant}'] td")
        assert [float(str(c["data-value"])) for c in cells] == [
            stored[(variant, "64x64", b)].images_per_s for b in (1, 2)
        ]
        # The best batch at the main size is marked.
        [best] = [c for c in cells if "best" in (c.get("class") or [])]
        top = max((1, 2), key=lambda b: stored[(variant, "64x64", b)].images_per_s or 0.0)
        assert best["data-batch"] == str(top)
        # At 96x64 batch 2 does not fit: batch 1 is the best there.
        best_96 = soup.select_one(
            f"table[data-table='best-batch'] tr[data-variant='{variant}'] td[data-size='96x64']"
        )
        assert best_96 is not None and best_96["data-batch"] == "1"


def test_dashboard_scaling_fits_matrix(
    soup: BeautifulSoup, stored: dict[tuple[str, str, int], ShapeSeries]
) -> None:
    matrix = soup.select_one("table.fits-matrix")
    assert matrix is not None
    cells = matrix.select("tbody td.fit")
    assert len(cells) == 3 * 2 * 2
    for cell in cells:
        key = (
            str(cell.parent["data-variant"]),
            str(cell["data-size"]),
            int(str(cell["data-batch"])),
        )  # type: ignore[index]
        series = stored[key]
        if key[1:] == ("96x64", 2):
            assert cell["data-state"] == "does_not_fit"
            reached, total = series.peak_mem_gb, series.device_total_gb
            assert cell.text == f"✗ does not fit, {reached:.2f} of {total:.2f} GB"
            assert str(cell["title"]).startswith("does not fit at 96x64, batch 2:")
        else:
            assert cell["data-state"] == "fits"
            assert cell.text == f"✓ {series.peak_mem_gb:.2f} GB"


def test_dashboard_scaling_batch_vs_single_similarity(
    soup: BeautifulSoup, stored: dict[tuple[str, str, int], ShapeSeries]
) -> None:
    rows = soup.select("table.similarity-table tbody tr")
    # Batch 2 measured at 64x64 only (it does not fit at 96x64).
    assert [(r["data-variant"], r["data-size"], r["data-batch"]) for r in rows] == [
        (v, "64x64", "2") for v in VARIANTS
    ]
    for row in rows:
        series = stored[(str(row["data-variant"]), "64x64", 2)]
        text = row.select_one("td.similarity").text  # type: ignore[union-attr]
        assert series.batch_compared == 2
        if series.batch_identical == series.batch_compared:
            assert row["data-identical"] == "true" and text == "identical"
        else:
            assert row["data-identical"] == "false"
            assert text.startswith(f"SSIM min {series.batch_ssim_min:.4f}, mean ")


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> HardwareRuns:
    return hardware_runs(tmp_path_factory, tiny_models)


def test_dashboard_scaling_not_measured_says_why(machines: HardwareRuns) -> None:
    with client_for(machines.database_url, machines.media_dir) as client:
        response = client.get(f"/dashboard?run={machines.big}")
    soup = BeautifulSoup(response.text, "html.parser")
    for variant in ("dev", "dev-turbo"):
        row = f"tr[data-variant='{variant}']"
        cell = soup.select_one(f"table.fits-matrix {row} td[data-size='96x64'][data-batch='2']")
        assert cell is not None and cell["data-state"] == "not_measured"
        assert cell.text == "not measured: batch 1 does not fit at this size"
        cell = soup.select_one(f"table[data-table='latency'] {row} td[data-size='96x64']")
        assert cell is not None and not cell.has_attr("data-value")
        assert cell.text.startswith("✗ does not fit, ")


def test_dashboard_scaling_gpu_lines_for_cuda_peaks(sized_data: DemoData, tmp_path: Path) -> None:
    from tests.conftest import sqlite_copy

    copy = sqlite_copy(sized_data, tmp_path)
    engine = make_engine(copy.database_url)
    with Session(engine) as session:
        for series in session.scalars(select(ShapeSeries)):
            series.peak_mem_kind = "cuda_max_memory_allocated"
            series.peak_mem_gb = 20.0 if series.status == "measured" else 30.0
        session.commit()
    engine.dispose()
    with client_for(copy.database_url, copy.media_dir, gpu_memory_gb="16,24,48,80") as client:
        soup = BeautifulSoup(client.get(f"/dashboard?run={copy.run_id}").text, "html.parser")
    data = json.loads(soup.select_one("script#scaling-data").text)  # type: ignore[union-attr]
    # The sizes up to the first that holds every peak (30 GB reached): 16, 24 and 48.
    assert data["gpu_memory_gb"] == [16.0, 24.0, 48.0]
    fits_on = soup.select("table[data-table='memory'] .fits-on")
    assert fits_on and {f.text for f in fits_on} == {"fits on: 24 GB, 48 GB, 80 GB"}


def test_dashboard_scaling_not_shown_for_one_shape(demo_client: TestClient) -> None:
    soup = BeautifulSoup(demo_client.get("/dashboard").text, "html.parser")
    assert soup.select_one("table.dashboard-table") is not None
    assert soup.select("section#scaling, script#scaling-data") == []


def test_dashboard_scaling_price_swap_leaves_it_out(
    client: TestClient, sized_data: DemoData
) -> None:
    response = client.get(
        f"/dashboard?run={sized_data.run_id}&usd_per_hour=2",
        headers={"HX-Request": "true", "HX-Target": "dashboard-figures"},
    )
    assert response.status_code == 200 and 'id="scaling"' not in response.text


# --- GET /api/v1/runs/{id}/shapes and /export/shapes.csv ----------------------------------


def test_api_shapes_json(client: TestClient, sized_data: DemoData, stored: dict) -> None:  # type: ignore[type-arg]
    response = client.get(f"/api/v1/runs/{sized_data.run_id}/shapes")
    assert response.status_code == 200
    body = response.json()
    assert body["run_id"] == sized_data.run_id and body["main_size"] == "64x64"
    assert body["sizes"] == SIZES and body["batch_sizes"] == [1, 2]
    assert body["gpu_memory_gb"] == [16.0, 24.0, 48.0, 80.0, 141.0]
    shapes = body["shapes"]
    assert [(s["variant"], f"{s['width']}x{s['height']}", s["batch_size"]) for s in shapes] == [
        (v, size, b) for v in VARIANTS for size in SIZES for b in (1, 2)
    ]
    for shape in shapes:
        series = stored[
            (shape["variant"], f"{shape['width']}x{shape['height']}", shape["batch_size"])
        ]
        assert shape["status"] == series.status
        assert shape["latency_median_s"] == series.latency_median_s
        assert shape["latency_per_image_s"] == series.latency_per_image_s
        assert shape["images_per_s"] == series.images_per_s
        assert shape["peak_mem_gb"] == series.peak_mem_gb
        assert shape["device_total_gb"] == series.device_total_gb
        assert shape["batch_ssim_min"] == series.batch_ssim_min
        assert shape["megapixels"] == series.megapixels
        assert shape["fits_on_gb"] is None  # a CPU peak: not comparable
        if shape["status"] == "does_not_fit":
            assert shape["error"].startswith("does not fit at 96x64, batch 2:")
    best = {(s["variant"], s["width"]): s["batch_size"] for s in shapes if s["best_batch"]}
    assert len(best) == 3 * 2 and {best[(v, 96)] for v in VARIANTS} == {1}


def test_api_shapes_csv_has_the_json_rows(client: TestClient, sized_data: DemoData) -> None:
    shapes = client.get(f"/api/v1/runs/{sized_data.run_id}/shapes").json()["shapes"]
    response = client.get(f"/api/v1/runs/{sized_data.run_id}/export/shapes.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="sizes-run{sized_data.run_id}-shapes.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == list(ShapeOut.model_fields)
    assert len(rows) == len(shapes)
    for row, shape in zip(rows, shapes, strict=True):
        assert row["variant"] == shape["variant"] and row["status"] == shape["status"]
        assert int(row["batch_size"]) == shape["batch_size"]
        assert (float(row["latency_median_s"]) if row["latency_median_s"] else None) == shape[
            "latency_median_s"
        ]
        assert row["error"] == (shape["error"] or "")


@pytest.mark.parametrize("path", ["shapes", "export/shapes.csv"])
def test_api_shapes_unknown_run_is_404(client: TestClient, path: str) -> None:
    response = client.get(f"/api/v1/runs/999999/{path}")
    assert response.status_code == 404
    assert response.json() == {"detail": "run 999999 not found"}


def test_api_shapes_of_a_blind_run_are_public_like_its_timings(
    sized_data: DemoData, tmp_path: Path
) -> None:
    from tests.conftest import sqlite_copy

    copy = sqlite_copy(sized_data, tmp_path)
    engine = make_engine(copy.database_url)
    with Session(engine) as session:
        session.get_one(Run, copy.run_id).blind = True
        session.commit()
    engine.dispose()
    with client_for(copy.database_url, copy.media_dir) as client:
        # The images are hidden; the figures (no image in them) are not.
        assert client.get(f"/api/v1/runs/{copy.run_id}/generations").status_code == 403
        assert client.get(f"/api/v1/runs/{copy.run_id}/shapes").status_code == 200
        assert client.get(f"/api/v1/runs/{copy.run_id}/export/shapes.csv").status_code == 200
