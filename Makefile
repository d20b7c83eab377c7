# Two commands do all set-up on a fresh machine:
#   make run    create .venv, install, train the tutorial model for one epoch and evaluate it
#   make test   install with test extras and run the whole suite (make test-fast: the inner loop)
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Use the shared datasets folder when it lies beside the project (as on CI).
SHARED_DATA := $(abspath ../shared/datasets)
ifneq ($(wildcard $(SHARED_DATA)/mnist),)
export DIGITNET_DATA ?= $(SHARED_DATA)
endif

.PHONY: run test test-fast lint bench clean chromium

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch is pinned to the CPU build in pyproject.toml; the stamps re-install when it changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/digitnet train
	$(BIN)/digitnet evaluate
	@echo
	@echo "Next: type 'source $(VENV)/bin/activate' so that 'digitnet' is a command here,"
	@echo "then e.g. 'digitnet show predictions', 'digitnet serve' or 'digitnet --help'."
	@echo "(Or call it as $(BIN)/digitnet without activating.)"

test: $(VENV)/.installed-test chromium
	$(BIN)/ruff check .
	$(BIN)/pytest

# The browser tests drive Debian's Chromium; install it when absent and we may (root with apt-get).
# Otherwise those tests skip and say why.
chromium:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi

# The inner loop: everything but the slow and browser tests, in under a minute.
test-fast: $(VENV)/.installed-test
	$(BIN)/pytest -m "not slow and not browser" -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

bench: $(VENV)/.installed
	$(BIN)/digitnet bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
