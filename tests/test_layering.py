"""DESIGN.md: the web tier never imports torch; the worker never imports FastAPI; the
worker's parent process never imports torch (its children do)."""

from __future__ import annotations

import subprocess
import sys


def imported_after(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return {name.split(".")[0] for name in out.stdout.split()}


def test_layering_web_does_not_import_torch() -> None:
    modules = imported_after("app.web.main")
    assert "fastapi" in modules
    assert not {"torch", "diffusers", "transformers"} & modules


def test_layering_worker_does_not_import_fastapi() -> None:
    modules = imported_after("app.worker.child") | imported_after("app.worker.pipelines")
    assert "torch" in modules
    assert not {"fastapi", "starlette", "uvicorn"} & modules


def test_layering_worker_parent_does_not_import_torch() -> None:
    # The parent only claims, drives children and writes results: no torch in it means no
    # CUDA context, and no torch state that a child could be thought to inherit.
    modules = imported_after("app.worker.runner")
    assert "sqlalchemy" in modules
    assert not {"torch", "diffusers", "fastapi"} & modules
