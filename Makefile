# Two commands from a fresh clone:  `make demo` (set up + run ftfix on a bundled example)
# and `make test` (lint, types, tests). `.ci/run` calls `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := build/demo

.PHONY: setup demo test lint bench mutation clean venv-tf4

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

# transformers 4.x beside the dev venv's 5.x, for the cross-version tests (tokenizers only, no
# torch): tests/builders_config.py finds it, and skips those tests when it cannot be built.
TF4_VENV ?= .venv-tf4
$(TF4_VENV)/bin/.installed:
	$(PYTHON) -m venv $(TF4_VENV)
	$(TF4_VENV)/bin/python -m pip install -q 'transformers>=4.57,<4.58' jinja2
	touch $@

venv-tf4: $(TF4_VENV)/bin/.installed

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	-$(MAKE) venv-tf4  # the cross-version tests skip if it cannot be built
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
