"""Errors as pages (or JSON under /api): a 4xx with a reason, never a traceback."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.web.templating import render


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get(
        "accept", ""
    )


def _validation_reasons(exc: RequestValidationError) -> list[str]:
    reasons = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "query")
        reasons.append(f"{where}: {error.get('msg', 'invalid')}")
    return reasons


def install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_json(request):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        context = {"status": exc.status_code, "reasons": [str(exc.detail)]}
        response = render(request, "error.html", context, status_code=exc.status_code)
        # Retry-After, WWW-Authenticate...: the page carries them as the JSON answer does.
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": exc.errors()}, status_code=422)
        context = {"status": 422, "reasons": _validation_reasons(exc)}
        return render(request, "error.html", context, status_code=422)
