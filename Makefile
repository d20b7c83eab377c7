# Two commands do all set-up on a fresh machine:
#   make run    create .venv, install, train the tutorial model for one epoch and evaluate it
#   make test   install with test extras and run the whole suite (make test-fast: the inner loop)
#   make lock   refresh constraints.txt, the pinned versions both install from
#   make reader retrain the reader bundled in the package (predict, read and serve use it)
#   make line-reader  retrain the bundled line reader (read and /api/read use it)
#   make notebook  open the tutorial notebook (examples/tutorial.ipynb) in JupyterLab
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Use the shared datasets folder when it lies beside the project (as on CI).
SHARED_DATA := $(abspath ../shared/datasets)
ifneq ($(wildcard $(SHARED_DATA)/mnist),)
export DIGITNET_DATA ?= $(SHARED_DATA)
endif

# CI services set CI=true (some CI=1): then a missing browser or runtime fails the run, as in tests/.
IN_CI := $(if $(filter true TRUE True 1,$(CI)),true,)

.PHONY: run test test-fast test-js lint lock bench clean chromium browser-runtime axe-core reader line-reader notebook

# uv installs the same pinned packages as pip in a fraction of the time; where uv cannot be had
# or cannot install, pip does the work. The plain install compiles the bytecode as it goes, for
# commands run where PYTHONDONTWRITEBYTECODE is set (each would compile torch again).
# The venv starts without pip (ensurepip alone took 5 of the 7.5 s this step took): the pip
# beside $(PY) puts uv into it and uv adds pip, for `.venv/bin/pip install`, in 3.3 s. Where
# either fails (no pip beside $(PY), or one older than 22.3), ensurepip gives the venv its pip.
$(BIN)/python:
	$(PY) -m venv --without-pip $(VENV)
	@{ $(PY) -m pip --python $(BIN)/python install -q -c constraints.txt uv 2>/dev/null \
	  && $(BIN)/uv pip install -q --python $(BIN)/python $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS)) pip; } \
	|| { $(BIN)/python -m ensurepip --default-pip >/dev/null && { $(BIN)/pip install -q -c constraints.txt uv \
	     || echo "uv could not be installed; pip will install the packages"; }; }

# Every package is installed at the version pinned in constraints.txt (torch at its CPU build,
# found where pip finds it: PIP_FIND_LINKS), so two machines test the same code; the stamps
# re-install when either file changes.
COMPILE := --compile-bytecode
INSTALL = install() { \
	$(BIN)/uv pip install -q $(COMPILE) --python $(BIN)/python $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS)) "$$@" \
	|| $(BIN)/pip install -q "$$@"; }; install -c constraints.txt

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	@$(INSTALL) -e .
	touch $@

# The test install compiles nothing: the suite's processes share one bytecode cache in .venv,
# written as each module is first imported, even where PYTHONDONTWRITEBYTECODE is set. Compiling
# all 12,600 installed files up front took 18 s of a fresh clone's make test, most of them
# files no test imports; with no cache at all every test process compiled torch again.
$(VENV)/.installed-test: COMPILE :=
$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	@$(INSTALL) -e ".[test]"
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/digitnet train
	$(BIN)/digitnet evaluate
	@echo
	@echo "Next: type 'source $(VENV)/bin/activate' so that 'digitnet' is a command here,"
	@echo "then e.g. 'digitnet show predictions', 'digitnet serve' or 'digitnet --help'."
	@echo "(Or call it as $(BIN)/digitnet without activating.)"

# make reader: train the reader recipe (880-917 s of training in fp32 on 2 AVX2 cores; its 12 epochs
# before took 494 s with native bf16) into runs/, check it and make it the reader bundled in the package
# (src/digitnet/bundled/reader), the default of predict, read and serve. Commit the files it
# writes (weights, config, metrics, model.onnx, model-int8.onnx, first-layer.onnx).
reader: $(VENV)/.installed
	run=runs/reader-$$(date +%Y%m%d-%H%M%S) && \
	$(BIN)/digitnet train --recipe reader --out $$run && \
	$(BIN)/python -m digitnet.inference.bundled $$run

# make line-reader: train the line reader with its defaults (30 epochs) into runs/ and copy it
# with its metrics.json (validation figures, and test figures on numbers composed from MNIST
# test digits) into the package (src/digitnet/bundled/lines), the default of read and
# /api/read. Commit both files.
LINES_DIR := src/digitnet/bundled/lines
line-reader: $(VENV)/.installed
	run=runs/line-reader-$$(date +%Y%m%d-%H%M%S) && \
	$(BIN)/digitnet train-lines --out $$run && \
	for f in line-reader.safetensors metrics.json; do \
		cp $$run/$$f $(LINES_DIR)/$$f.tmp && mv $(LINES_DIR)/$$f.tmp $(LINES_DIR)/$$f || exit 1; \
	done

# make notebook: JupyterLab (the notebook extra, installed into .venv once) on the tutorial
# notebook; its kernel is the project's Python, with DIGITNET_DATA set as for every target.
notebook: $(VENV)/.installed-notebook
	$(BIN)/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) examples/tutorial.ipynb

$(VENV)/.installed-notebook: pyproject.toml constraints.txt | $(BIN)/python
	@$(INSTALL) -e ".[notebook]"
	touch $@

# One pytest worker per core, each test file whole in one worker (its module fixtures built
# once): much of the suite waits on subprocesses, browsers and servers, so two workers on two
# cores finish sooner than one, and the JavaScript tests run beside them in that slack (their
# report follows pytest's); either failing fails the target.
TEST_ENV := PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(abspath $(VENV))/pycache
test: $(VENV)/.installed-test chromium browser-runtime axe-core
	$(BIN)/ruff check .
	@mkdir -p build; \
	$(TEST_ENV) $(MAKE) --no-print-directory test-js > build/test-js.log 2>&1 & js=$$!; \
	$(TEST_ENV) $(BIN)/pytest -n auto --dist loadfile; tests=$$?; \
	wait $$js; js=$$?; cat build/test-js.log; \
	[ $$tests = 0 ] && [ $$js = 0 ]

# The browser tests drive Debian's Chromium; install it (without the recommended extras: fonts,
# drivers, desktop integration) when absent and we may (root with apt-get). When it cannot be
# installed, say so: outside CI only the browser tests skip, and say why; under CI (CI=true) a
# suite without its browser proves nothing, so the target fails.
chromium:
	@if [ -x /usr/bin/chromium ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; then \
		echo "installed Chromium for the browser tests"; \
	elif [ "$(IN_CI)" = true ]; then \
		echo "Chromium could not be installed (needs root and apt-get); CI=true needs it for the browser tests" >&2; \
		exit 1; \
	else \
		echo "Chromium could not be installed (needs root and apt-get); the browser tests will skip"; \
	fi

# The tests of reading on the device need the browser runtime, onnxruntime-web's WebAssembly build
# (about 14 MB through npm, kept in ~/.cache/digitnet); fetch it once when absent, before the
# suite, which stays offline. When it cannot be fetched (no npm, no registry), say so: outside CI
# only those tests skip, and say why; under CI the target fails.
browser-runtime: $(VENV)/.installed
	@$(BIN)/python -m digitnet.web.browser_runtime && exit 0; \
	if [ "$(IN_CI)" = true ]; then \
		echo "the browser runtime could not be fetched; CI=true needs it for the tests of reading on the device" >&2; \
		exit 1; \
	fi; \
	echo "the browser runtime could not be fetched; the tests of reading on the device will skip"

# The accessibility tests run axe-core (one 650 KB script from npm) in Chromium; fetched once
# into the same cache when absent. Without it those tests skip, or fail under CI.
axe-core: $(VENV)/.installed
	@$(BIN)/python tests/web/axe_core.py && exit 0; \
	if [ "$(IN_CI)" = true ]; then \
		echo "axe-core could not be fetched; CI=true needs it for the accessibility tests" >&2; \
		exit 1; \
	fi; \
	echo "axe-core could not be fetched; the accessibility tests will skip"

# The inner loop: everything but the slow and browser tests, on a worker per core as `test`
# runs them (about 2 minutes on 2 AVX2 cores; one process took 3.5).
test-fast: $(VENV)/.installed-test test-js
	$(TEST_ENV) $(BIN)/pytest -m "not slow and not browser" -q -n auto --dist loadfile

# The pages' JavaScript that needs no browser, with node's own test runner: the preprocessing
# (reader/imaging.js) against Python's byte for byte on golden fixtures written from a fixed seed
# first (scripts/preprocess_fixtures.py), the explanation and the verdict's words. Without node
# it skips and says so; under CI it fails.
test-js: $(VENV)/.installed-test
	@if command -v node >/dev/null; then \
		$(BIN)/python scripts/preprocess_fixtures.py build/fixtures/preprocess.bin.gz && \
		node --test --test-reporter=spec tests/js/; \
	elif [ "$(IN_CI)" = true ]; then echo "node is missing; CI=true needs it for tests/js" >&2; exit 1; \
	else echo "node is missing: the JavaScript tests (tests/js/) skip"; fi

# make lock: refresh constraints.txt to the newest versions pyproject.toml allows (run it after
# changing a dependency, run the tests, then commit constraints.txt).
lock: | $(BIN)/python
	$(BIN)/pip install -q --upgrade -e ".[test]"
	{ echo "# Every package the project and its test extras install, pinned: 'make lock' rewrites it."; \
	  echo "# The Makefile installs with 'pip install -c constraints.txt', so a fresh machine gets these."; \
	  $(BIN)/pip freeze --exclude-editable; } > constraints.txt.tmp
	mv constraints.txt.tmp constraints.txt
	touch $(VENV)/.installed $(VENV)/.installed-test

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

bench: $(VENV)/.installed
	$(BIN)/digitnet bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
