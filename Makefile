# The workshop's everyday commands. `make run` and `make test` do their own set-up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAGE ?= 01-monolith
PORT ?= 8000

.PHONY: help setup system-deps run test bench lint format diff slides clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/workshop: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

setup: $(BIN)/workshop  ## create .venv and install the project with its test tools

system-deps:  ## install the Debian packages the browser test needs (chromium)
	scripts/install-system-deps.sh

run: setup  ## run a stage with the sample data: make run [STAGE=01-monolith] [PORT=8000] [TRACE=1]
	$(BIN)/workshop up $(STAGE) --port $(PORT)$(if $(filter 1 yes true,$(TRACE)), --trace)

test: setup system-deps  ## run every test: unit, acceptance (each stage), fuzz, browser
	$(BIN)/pytest

bench: setup  ## run the same load on every stage, side by side: make bench [BENCH_ARGS="--duration 10"]
	$(BIN)/workshop bench $(BENCH_ARGS)

lint: setup  ## check style with ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup  ## reformat with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

diff: setup  ## what a step changed, renamed files paired: make diff FROM=01-monolith TO=02-rest-api [DIFF_ARGS=--stat]
	@if [ -z "$(FROM)" ]; then \
		echo "usage: make diff FROM=01-monolith [TO=02-rest-api] [DIFF_ARGS='--stat --code-only --full']" >&2; \
		echo "  FROM and TO are stage names or numbers; TO defaults to the stage after FROM." >&2; \
		exit 2; \
	fi
	$(BIN)/workshop diff $(FROM) $(TO) $(DIFF_ARGS)

slides:  ## build the workshop deck as HTML with Marp (needs npx): slides/workshop.html
	npx --yes @marp-team/marp-cli@4 slides/workshop.md -o slides/workshop.html

clean:  ## remove the virtualenv and local state
	rm -rf $(VENV) .workshop .pytest_cache
