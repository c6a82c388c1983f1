"""`VariantUnavailable`: the one error a variant that cannot run here fails with, at load time.

A module of its own, without torch, so that what raises it (pipelines, gguf, pruna_backend)
and what reports it (child, the doctor through pruna_backend) share it without importing
each other (DESIGN.md, rule 8: optional accelerators fail loudly and early).
"""


class VariantUnavailable(RuntimeError):
    """The environment cannot run this variant; `str(err)` is the reason shown to users."""
