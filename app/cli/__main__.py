"""`python -m app.cli`: the same command line as `flux-playground`."""

from app.cli import app

app()
