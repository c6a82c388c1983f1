"""The JSON API's response models: what /docs shows. Units are in the names (`latency_s`,
`usd_per_1k_images`); sizes are pixels, times seconds, prices US dollars."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    detail: str = Field(description="Why the request failed.")


class RunOut(BaseModel):
    id: int
    name: str = Field(description="The benchmark config's name.")
    description: str
    status: str = Field(description="pending, running, done or failed.")
    device: str = Field(description="cpu or cuda: where the latencies were measured.")
    hardware: str = Field(description="The hardware the latencies and costs refer to.")
    usd_per_hour: float = Field(description="Price of that hardware, US dollars per hour.")
    width: int = Field(description="Image width in pixels.")
    height: int = Field(description="Image height in pixels.")
    seeds: list[int] = Field(description="Every prompt is generated once per seed.")
    created_at: datetime = Field(description="UTC.")
    finished_at: datetime | None = Field(description="UTC; null while the run is not done.")
    jobs_done: int = Field(description="Images generated.")
    jobs_failed: int = Field(description="Images that failed (e.g. their variant failed).")
    jobs_do_not_fit: int = Field(
        0, description="Images not made: out of device memory at their size (a result)."
    )
    jobs_total: int = Field(description="(variant, prompt, seed, size) jobs in the run.")


class RunDetailOut(RunOut):
    prompt_set: str = Field(description="The prompt file the run's prompts were copied from.")
    warmup: int = Field(description="Untimed calls before the steady-state timing.")
    repeats: int = Field(description="Timed calls of the steady-state timing.")
    environment: dict[str, Any] = Field(
        description="GPU/CPU, driver, CUDA, torch and diffusers versions, threads: "
        "as recorded by the last worker."
    )
    config: dict[str, Any] = Field(description="The resolved benchmark config.")


class VariantOut(BaseModel):
    id: int
    name: str
    description: str
    status: str = Field(description="pending, running, done or failed.")
    error: str | None = Field(description="Why the variant failed, if it did.")
    reference: str | None = Field(description="The variant the speed-up is measured against.")
    steps: int = Field(description="Denoising steps per image.")
    latency_kind: str | None = Field(
        description="steady_state (timed calls after warm-up) or per_image (the median over "
        "the run's images); null before any timing."
    )
    latency_median_s: float | None = Field(description="Median latency per image, seconds.")
    latency_p10_s: float | None = Field(description="10th percentile latency, seconds.")
    latency_p90_s: float | None = Field(description="90th percentile latency, seconds.")
    speedup_vs_reference: float | None = Field(
        description="Reference median latency / this median latency (>1 is faster)."
    )
    usd_per_image: float | None = Field(description="latency_median_s × usd_per_hour / 3600.")
    usd_per_1k_images: float | None = Field(description="1000 × usd_per_image.")
    amortized_usd_per_image: float | None = Field(
        description="Cost per image with compile_s spread over the variant's jobs in the run."
    )
    compile_s: float | None = Field(description="First call after loading (compilation).")
    load_s: float | None = Field(description="Pipeline load time, seconds.")
    peak_mem_gb: float | None = Field(
        description="Peak memory while generating (counters reset after the first call), GB."
    )
    load_peak_gb: float | None = Field(
        description="Peak memory while loading, quantizing, compiling and the first call, GB."
    )
    peak_mem_kind: str | None = Field(
        description="cuda_max_memory_allocated or process_peak_rss (not comparable)."
    )
    compile_cache: str | None = Field(
        description="Inductor's caches at the first call: cold, warm or partial; null if "
        "nothing was compiled. A warm compile_s is not a cold compile time."
    )
    timing_flags: list[str] = Field(
        description="Why the timed series is not a clean steady state (it recompiled, or "
        "something else used the device meanwhile); empty when clean."
    )
    jobs_done: int
    jobs_failed: int
    jobs_do_not_fit: int = 0
    jobs_total: int
    config: dict[str, Any] = Field(description="The variant's resolved settings.")


class VariantsOut(BaseModel):
    run_id: int
    usd_per_hour: float = Field(description="The price the costs below are computed with.")
    stored_usd_per_hour: float = Field(description="The run's own price, from its config.")
    variants: list[VariantOut] = Field(description="In config order.")


class PromptOut(BaseModel):
    id: int
    position: int = Field(description="0-based position in the run's prompt set.")
    text: str = Field(description="The prompt, as given (user data: escape it when shown).")
    category: str
    challenge: str


class PromptPage(BaseModel):
    total: int = Field(description="Prompts matching the filters, over all pages.")
    limit: int
    offset: int
    items: list[PromptOut]


class GenerationOut(BaseModel):
    generation_id: int
    job_id: int
    variant: str = Field(description="The variant's name.")
    prompt_id: int
    prompt: str = Field(description="The prompt text.")
    seed: int
    latency_s: float = Field(description="The pipeline call with device sync, seconds.")
    steps: int
    guidance: float
    dtype: str
    lora: dict[str, Any] | None = Field(description="LoRA path, scale and fuse, if any.")
    optimizations: dict[str, Any] = Field(
        description="The speed and memory settings: compile, quantize, cache, fuse_qkv, "
        "text_encoder_quantize, offload, vae_tiling, vae_slicing, gguf, smash."
    )
    width: int = Field(description="Pixels.")
    height: int = Field(description="Pixels.")
    image_url: str = Field(description="The PNG; the ?v= part changes with its content.")
    thumb_url: str = Field(description="A small preview of the image.")
    sha256: str = Field(description="SHA-256 of the image file.")


class GenerationPage(BaseModel):
    total: int = Field(description="Images matching the filters, over all pages.")
    limit: int
    offset: int
    items: list[GenerationOut] = Field(description="By variant, prompt position, then seed.")
    next: str | None = Field(
        default=None,
        description="Pass as `after` for the next page (null on the last page).",
    )


class LeaderboardRowOut(BaseModel):
    name: str
    reference: str | None = Field(description="The variant's own reference (its base), if any.")
    rank: int | None = Field(
        description="1 + the variants whose interval lies wholly above this one's."
    )
    rating: float | None = Field(
        description="Bradley–Terry rating on the Elo scale (reference pinned at 1000); null "
        "when not a finite number (see rating_status)."
    )
    rating_status: str = Field(
        description="ok, above (+inf), below (-inf), not_connected or not_identified."
    )
    ci_low: float | None = Field(description="95% bootstrap interval, low end; null if -inf.")
    ci_high: float | None = Field(description="95% bootstrap interval, high end; null if +inf.")
    elo: float = Field(description="Online Elo (K=4) over the counted votes, in vote order.")
    votes: int = Field(description="Counted votes this variant took part in.")
    wins: int
    ties: int = Field(description="Ties, both_bad included (each counts half).")
    losses: int
    both_bad: int
    preliminary: bool = Field(
        description="Fewer votes than FLUX_PLAYGROUND_ARENA_PRELIMINARY_VOTES: may move a lot."
    )


class VerdictOut(BaseModel):
    variant: str
    reference: str
    verdict: str = Field(description="better, worse, indistinguishable or undecided.")
    test: str = Field(description="The interval the verdict is read from.")
    win_rate: float | None = Field(description="Head-to-head score share, ties half.")
    ci_low: float
    ci_high: float
    games: int
    wins: int
    losses: int
    ties: int
    margin: float = Field(description="Indistinguishable: the interval within 0.5 ± margin.")
    equivalent: bool
    votes_needed: int | None = Field(
        description="More head-to-head votes likely needed if the rate holds; 0 when decided."
    )
    message: str


class LeaderboardOut(BaseModel):
    run_id: int
    panel: str | None = Field(description="The panel whose votes are counted; null: all.")
    reference: str = Field(description="The variant pinned at 1000.")
    votes_counted: int
    votes_left_out: int = Field(
        description="Votes of raters flagged by attention checks (or by an admin), not counted."
    )
    votes_left_out_by_anomaly_flags: int = Field(
        description="Votes of raters and networks whose votes no honest rater would cast "
        "(one side, one variant, off the consensus beyond chance), not counted."
    )
    votes_over_network_cap: int = Field(
        description="Anonymous votes not counted: over the cap of votes from one network."
    )
    bootstrap_rounds: int
    confidence: float
    version: str = Field(description="Changes whenever the counted votes change.")
    rows: list[LeaderboardRowOut] = Field(description="Best first.")
    verdicts: list[VerdictOut] = Field(description="Each variant against its reference.")


class ShapeOut(BaseModel):
    variant: str = Field(description="The variant's name.")
    width: int = Field(description="Pixels.")
    height: int = Field(description="Pixels.")
    batch_size: int = Field(description="Images per pipeline call.")
    megapixels: float = Field(description="width × height / 1e6.")
    status: str = Field(
        description="measured; does_not_fit (out of device memory at this shape); skipped (a "
        "smaller batch did not fit at this size); not_measured (no series: `error` says why)."
    )
    error: str | None = Field(description="Why it does not fit or was not measured.")
    n: int = Field(description="Timed calls in the series.")
    warmup: int = Field(description="Untimed calls before them.")
    latency_median_s: float | None = Field(description="Median seconds per call (per batch).")
    latency_p10_s: float | None = Field(description="10th percentile seconds per call.")
    latency_p90_s: float | None = Field(description="90th percentile seconds per call.")
    latency_per_image_s: float | None = Field(
        description="latency_median_s / batch_size: seconds per image."
    )
    images_per_s: float | None = Field(description="batch_size / latency_median_s.")
    best_batch: bool = Field(
        description="The batch size with the most images/s at this size for this variant."
    )
    first_call_s: float | None = Field(
        description="The first call at this shape, seconds (a compiled variant's recompile)."
    )
    first_call_graphs: int | None = Field(description="Graphs compiled by that first call.")
    peak_mem_gb: float | None = Field(
        description="Peak memory at this shape, GB (1e9 bytes); for does_not_fit, the memory "
        "reached when it ran out."
    )
    peak_mem_kind: str | None = Field(
        description="cuda_max_memory_allocated or process_peak_rss (not comparable)."
    )
    device_total_gb: float | None = Field(description="The device's total memory, GB.")
    fits_on_gb: list[float] | None = Field(
        description="The configured GPU memory sizes (FLUX_PLAYGROUND_GPU_MEMORY_GB) above a "
        "measured CUDA peak; null for a CPU peak (not comparable) or when not measured."
    )
    batch_compared: int | None = Field(
        description="Batch > 1: images compared with the same prompt and seed at batch 1."
    )
    batch_identical: int | None = Field(description="Of those, identical pixel for pixel.")
    batch_ssim_mean: float | None = Field(description="Mean SSIM against batch 1.")
    batch_ssim_min: float | None = Field(description="Lowest SSIM against batch 1.")
    batch_psnr_min_db: float | None = Field(
        description="Lowest PSNR against batch 1 over the non-identical images, dB."
    )
    recompiles: int | None = Field(description="Graphs compiled during the timed calls.")
    contended: bool | None = Field(description="Something else used the device meanwhile.")


class ShapesOut(BaseModel):
    run_id: int
    main_size: str = Field(
        description="WIDTHxHEIGHT of the run's main size (its speed-ups and costs)."
    )
    sizes: list[str] = Field(description="The run's sizes, WIDTHxHEIGHT, main first.")
    batch_sizes: list[int] = Field(description="The run's batch sizes.")
    gpu_memory_gb: list[float] = Field(
        description="The GPU memory sizes `fits_on_gb` checks (FLUX_PLAYGROUND_GPU_MEMORY_GB)."
    )
    shapes: list[ShapeOut] = Field(
        description="One per (variant, size, batch size) the run asks for: variants in config "
        "order, then sizes, then batch sizes."
    )
