"""`python -m ftfix` runs the CLI."""

from .cli import run

run()
