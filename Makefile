# Two entry points for a fresh machine: `make run` and `make test`. Each installs what it needs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements/dev.txt requirements/bootstrap.txt | sha256sum | cut -c1-12)
PORT ?= 8080
HOST ?= 127.0.0.1

.PHONY: install compile run test lint fmt migrate stub run-live bench clean figures mutate mutate-report

install: $(STAMP)

# uv itself is installed from a hash-pinned requirements file, then installs everything else
# from hash-pinned lock files (no download URLs are committed).
$(STAMP): requirements/dev.txt requirements/bootstrap.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/bootstrap.txt
	$(VENV)/bin/uv pip install --quiet --python $(PY) --require-hashes --compile-bytecode -r requirements/dev.txt
	@rm -f $(VENV)/.installed-*; touch $@

migrate: install
	$(PY) -m app.cli migrate

# Bytecode is compiled ahead (PYTHONDONTWRITEBYTECODE may be set): a cold start then skips
# compiling every module, which is most of its time (2.7 s -> ~1 s measured).
compile: install
	$(PY) -m compileall -q app jangar_stub migrations

run: install compile
	$(PY) -m app.cli migrate
	HOST=$(HOST) PORT=$(PORT) exec $(PY) -m app.cli serve

test: install
	bash scripts/test.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pyright
	$(VENV)/bin/hadolint Dockerfile

# README figures come from here, not from memory.
figures: install
	@$(PY) -m pytest --collect-only -q | tail -1

# Mutation testing of the decision core (gates, final decision, heuristic, registry states and
# promotion, rollout splitter, drift statistics): every mutant is run (~30-40 min on 2 cores), then
# docs/mutation-report.md is rewritten; exits 1 when a module is under its target. Not part of
# `make test` (too slow for every change); run it when the decision core changes.
MUTATE_CHILDREN ?= 2
mutate: install
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children $(MUTATE_CHILDREN)
	$(PY) scripts/mutation_report.py --write --check

# The report again from the last run's results (mutants/), without re-running anything.
mutate-report: install
	$(PY) scripts/mutation_report.py --write --check

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache var

STUB_PORT ?= 8181
stub: install
	$(PY) -m jangar_stub --port $(STUB_PORT) --behaviour valid

run-live: install compile
	$(PY) -m app.cli migrate
	JANGAR_BASE_URL=http://127.0.0.1:$(STUB_PORT) HOST=$(HOST) PORT=$(PORT) exec $(PY) -m app.cli serve

# Benchmarks (never part of `make test`): every scenario of bench/README.md, < 10 min with the
# defaults; BENCH_RUNS / BENCH_DURATION / BENCH_SCENARIOS override. Writes bench/RESULTS.md.
bench: install
	bash bench/run.sh
