"""The worker: builds diffusers pipelines from variants, generates and times images."""
