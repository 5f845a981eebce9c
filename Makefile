# jamtui set-up, run and test. `make run` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Installed only when the venv has no torch yet, so a CUDA build you put there stays.
TORCH ?= torch==2.13.0

.PHONY: run test setup setup-test setup-audio jack bench clean

run: setup
	$(BIN)/jamtui jam

test: setup-test jack
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/jamtui bench

setup: $(VENV)/.installed

setup-test: $(VENV)/.installed-test

# The audio extra (transcribe, render, audio in the corpus): FluidSynth and its piano soundfont from the
# system, the Python packages, then transkun without its declared dependencies (see pyproject.toml).
setup-audio: $(VENV)/.installed-audio

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e .
	touch $@

$(VENV)/.installed-audio: $(VENV)/.installed
	scripts/install-fluidsynth
	$(BIN)/python -m pip install -e ".[audio]"
	$(BIN)/python -m pip install --no-deps "transkun==2.0.1"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed $(VENV)/.installed-audio
	$(BIN)/python -m pip install -e ".[test]"
	touch $@

jack:
	scripts/install-jack

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
