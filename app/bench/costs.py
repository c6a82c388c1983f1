"""What an image costs, from measured latency and the price of the hardware it was measured on.

usd_per_image = latency_s × usd_per_hour / 3600. Compile/warm-up time amortized over N
images is reported apart: (compile_s + N × latency_s) / N. Nothing is extrapolated to
hardware that was not measured.
"""

from __future__ import annotations


def usd_per_image(latency_s: float, usd_per_hour: float) -> float:
    return latency_s * usd_per_hour / 3600.0


def usd_per_1k_images(latency_s: float, usd_per_hour: float) -> float:
    return 1000.0 * usd_per_image(latency_s, usd_per_hour)


def amortized_latency_s(latency_s: float, compile_s: float, n_images: int) -> float:
    """Per-image time when the first-call (compile) time is spread over n_images."""
    if n_images < 1:
        raise ValueError("n_images must be at least 1")
    return (compile_s + n_images * latency_s) / n_images


def speedup(reference_latency_s: float, latency_s: float) -> float:
    """How many times faster than the reference (>1 is faster)."""
    return reference_latency_s / latency_s
