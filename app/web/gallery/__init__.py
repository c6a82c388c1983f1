"""Gallery `/prompts`: every prompt of a run as a row of thumbnails, one per variant, filtered
and paged ("Load more" appends the next page with htmx); and `/prompts/{id}`: one prompt's
images (thumbnails, each linking to its PNG) with their settings, a compare slider between two
variants at full resolution, and previous/next navigation. Each image's settings list ends
with its automatic metrics (SSIM and PSNR against its reference, CLIP score), when computed.
Both show one seed at one of the run's sizes (`size=WxH`, default the main size): a run with
several sizes has one image per (variant, prompt, seed, size).

This package joins the two pages' routers: grid.py (`/prompts`) and prompt_page.py
(`/prompts/{id}`), on choices.py (the seed and size shown) and cells.py (one variant's image)."""

from __future__ import annotations

from fastapi import APIRouter

from app.web.gallery import grid, prompt_page

# A page, not the API: kept out of the OpenAPI schema (/docs documents the API only).
router = APIRouter(include_in_schema=False)
router.include_router(grid.router)
router.include_router(prompt_page.router)
