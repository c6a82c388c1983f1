"""The shapes world (specs, renderer, prompts) and the training of the tiny models on it."""

# Work in progress (issue 22), for the next engineer: shapes.py, prompt_file.py and
# app/quality/adherence.py are done and tested. parts.py, flow.py, loop.py, autoencoder.py,
# denoiser.py, export.py, evaluate.py, manifest.py and recipe.py are a first draft of the
# training, never run yet: no `train-tiny` command, no committed weights, not type-checked.
# Next: measure a training step's time on 2 cores, size the recipe to <= 30 minutes, add the
# command (app/cli/train.py, a Rich progress bar per stage), the few-step model and the LoRA.
