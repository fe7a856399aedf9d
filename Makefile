# `make test` builds .venv from scratch if needed, installs lipvae_tf with its test extra, runs pytest.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test venv bench clean

$(VENV)/.installed: setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,bench,notebooks]"
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) -m lipvae_tf

test: venv
	$(PY) -m pytest -q tests

bench: venv
	$(PY) bench/constraint_overhead.py
	$(PY) bench/train_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
