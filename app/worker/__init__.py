"""The worker: turns jobs into images and timings. Imports torch; the web tier never does.

Import-time noise from the ML stack (torchao's optional CUDA kernels that a CPU build cannot
load, bitsandbytes' optional Hub kernel for CPU 4-bit matmuls — the `kernels` package it
suggests would download from the Hub at run time, so it stays uninstalled — torch's pytree
deprecation notes, transformers' torchvision fallbacks) is silenced here,
before any of them is imported, so the worker's own progress bars stay readable. Real errors
still surface as exceptions.
"""

import logging
import os
import warnings

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
for _name in ("torchao", "bitsandbytes", "torch.utils._pytree"):
    logging.getLogger(_name).setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message=".*_stable_hash_for_caching.*")
