"""`flux-playground doctor`: what of a benchmark config this machine can run, before it runs.

Each check is a small function from facts (the config, what torch reports, free space) to a
`Check` row, so the rules can be tested with any GPU described as data. `run_checks` gathers
the facts of this machine and runs them all in well under a minute: no weights are
downloaded; the Hub is asked only whether the token may read each repository, and only when
HF_HUB_OFFLINE is not set and the Hub answers within a few seconds.

Memory and disk figures are estimates from public file sizes, not measurements: they tell
"fits easily" from "cannot fit", not the last gigabyte.

Modules: check (the `Check` row), figures (the public file sizes the estimates rest on),
machine (torch, CUDA, the GPU, fp8), memory (each variant's estimate), hub (token, access,
cache), disk (weights and media), software (the compiler, optional backends), checkup
(`run_checks`: all of them, in order).
"""
