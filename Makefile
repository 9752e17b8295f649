# Every target is self-sufficient on a fresh machine: it creates .venv and installs if needed.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: install run test lint fmt migrate bench bench-gateway lock clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

## make run: every app on the embedded default (SQLite under var/), Ctrl-C stops all
run: install
	$(VENV)/bin/kassa run

## make test: the whole suite; SQLite always, PostgreSQL and Redis when reachable
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## make migrate: upgrade every app's database to head (the same databases make run uses)
migrate: install
	$(VENV)/bin/kassa migrate

## make bench [BENCH=name]: benchmarks that print ratios against a peer measured in the same run
bench: install
	$(PY) -m bench $(BENCH)

## make bench-gateway: the same upstream direct, behind nginx and behind the gateway, under wrk
bench-gateway: install
	$(PY) -m bench gateway

## make lock: re-pin constraints.txt from the current environment
lock: install
	{ echo "# Pins for the whole dependency tree (pip install -c constraints.txt -e '.[dev]')."; \
	  echo "# Regenerate: make lock"; \
	  $(PY) -m pip freeze --exclude-editable | grep -vi '^kassa' | sort -f; } > constraints.txt

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
