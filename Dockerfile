# Runs the worker on an NVIDIA GPU (CUDA build of torch from PyPI) and serves the app.
#   docker build -t flux-playground .
#   docker run --gpus all -v $PWD/data:/app/data -v $PWD/media:/app/media \
#     -v ~/.cache/huggingface:/root/.cache/huggingface -e HF_TOKEN \
#     flux-playground flux-playground run configs/flux.toml
#   docker run -p 8000:8000 -v $PWD/data:/app/data -v $PWD/media:/app/media \
#     -e FLUX_PLAYGROUND_SECRET_KEY=<a long random value> flux-playground
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    FLUX_PLAYGROUND_HOST=0.0.0.0

WORKDIR /app

# A C compiler: torch.compile on CUDA builds Triton's launcher stubs with one at run time,
# and the slim image has none (compiled variants would fail at their first call).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, so code changes don't reinstall torch.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir app && touch app/__init__.py \
    && pip install -c constraints.txt -e ".[worker,bitsandbytes,postgres]"

COPY . .
RUN pip install --no-deps -e .

VOLUME ["/app/data", "/app/media"]
EXPOSE 8000
CMD ["sh", "-c", "flux-playground init && flux-playground serve"]
