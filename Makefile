# Two commands from a fresh clone:  `make demo` (set up + run ftfix on a bundled example)
# and `make test` (lint, types, tests). `.ci/run` calls `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := build/demo

.PHONY: setup demo test lint bench mutation clean

$(BIN)/.installed: pyproject.toml constraints-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned to the CPU wheel on this machine's disk; peft would pull a CUDA build
	$(BIN)/python -m pip install -q -c constraints-dev.txt torch
	$(BIN)/python -m pip install -q -c constraints-dev.txt -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

demo: setup
	rm -rf $(DEMO)
	$(BIN)/python examples/make_toy_checkpoints.py $(DEMO)
	@printf '\n== before: what transformers renders ==\n'
	$(BIN)/python examples/show_generation_prompt.py $(DEMO)/finetuned
	@printf '\n== ftfix check (exit 1: an error) ==\n'
	-$(BIN)/ftfix check $(DEMO)/base $(DEMO)/finetuned
	@printf '\n== ftfix repair ==\n'
	$(BIN)/ftfix repair $(DEMO)/base $(DEMO)/finetuned
	@printf '\n== ftfix check (exit 0) ==\n'
	$(BIN)/ftfix check $(DEMO)/base $(DEMO)/finetuned
	@printf '\n== after: what transformers renders ==\n'
	$(BIN)/python examples/show_generation_prompt.py $(DEMO)/finetuned

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

# Cost vs model size, then the real Llama-3 tokenizer on 1B/8B/70B-shaped sparse checkpoints.
bench: setup
	$(BIN)/python benchmarks/bench_check.py
	$(BIN)/python benchmarks/bench_embeddings.py --no-transformers

# Hand-written mutants of the core (tools/mutants.toml); prints the score per area.
mutation: setup
	$(BIN)/python tools/mutation.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
