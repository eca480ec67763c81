# poslab: `make demo` runs the product, `make test` proves it. Both set themselves up.
PYTHON ?= python3
# pytest workers: one more than the cores (-n 3 on the 2-core target). Many tests wait on host
# subprocesses, sockets and fsync, so two workers left ~30 % of the CPU idle.
# PYTEST_WORKERS=0 runs serially.
PYTEST_WORKERS ?= 3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
DEMO_STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck imports pytest clean bench bench-compare bench-scenarios \
        powerloss fuzz screenshots i18n scenarios-cup

export PIP_DISABLE_PIP_VERSION_CHECK := 1

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python -m terminal --with-host

lint: $(STAMP)
	$(BIN)/ruff check protocol host terminal scenarios webshell tests

typecheck: $(STAMP)
	$(BIN)/mypy

# Quiet when the layers hold (one line); the whole report when a contract is broken.
imports: $(STAMP)
	@out=$$($(BIN)/lint-imports --no-logo 2>&1) && echo "import layers: $$(echo "$$out" | tail -n 1)" \
	  || { echo "$$out"; exit 1; }

# worksteal: the long crash and terminal tests do not leave one worker idle at the end; tests
# marked `long` start at the head of each worker's first batch (tests/long_first.py).
# The sources are compiled once first: the suite starts ~150 interpreters (hosts, fronts,
# terminals, CLIs), and with PYTHONDONTWRITEBYTECODE set none of them keeps what it compiled,
# so each compiled every module it imported again (~0.07 s of CPU per host start).
pytest: $(STAMP)
	$(BIN)/python -m compileall -q protocol host terminal scenarios webshell
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal

# mypy (about 12 s of one core on a fresh clone, where it has no cache) runs beside pytest
# rather than before it: the suite's three workers leave a little of the two cores idle while
# they wait on hosts and fsyncs, and the two finish sooner together than one after the other.
# ruff and import-linter take a fraction of a second and still fail fast, before the suite.
test: lint imports
	@$(MAKE) --no-print-directory -j2 typecheck pytest

# Power loss (manual, not in `make test`): the ledger on a LazyFS-style FUSE filesystem
# that drops unsynced writes after kill -9 (docs/power-loss.md). Needs /dev/fuse and fuse3.
powerloss: $(STAMP)
	@command -v fusermount3 >/dev/null || (apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null)
	POSLAB_POWERLOSS=1 $(BIN)/python -m pytest tests/powerloss -q -s

# The throughput figures of docs/performance.md: the host (SQLite, synchronous=FULL) and the
# bare codec ceiling in one invocation, 50 terminals. Not part of `make test`.
# ...then poslab-host against iso8583sim's mock host under iso8583sim's load generator
# (docs/performance.md, "Against iso8583sim").
bench: $(DEMO_STAMP)
	$(BIN)/poslab-bench --with-host --ceiling --terminals 50 --duration 10
	$(MAKE) --no-print-directory bench-compare

# iso8583sim is AGPL: it gets a virtual environment of its own and is only run as a program,
# never imported by poslab. Pinned, so the load it generates stays the one measured.
ISO8583SIM_VENV := .venv-iso8583sim
ISO8583SIM := $(ISO8583SIM_VENV)/bin/iso8583sim
$(ISO8583SIM):
	$(PYTHON) -m venv $(ISO8583SIM_VENV)
	$(ISO8583SIM_VENV)/bin/python -m pip install --quiet 'iso8583sim==1.6.0'

# Alternates 3 times: iso8583sim serve, then poslab-host (SQLite, synchronous=FULL), each under
# `iso8583sim load -n 4000 -c 50 --connections 10`; msg/s, the median ratio, CPU per process.
bench-compare: $(DEMO_STAMP) $(ISO8583SIM)
	$(BIN)/python -m scenarios.loadgen.compare_iso8583sim --iso8583sim $(ISO8583SIM) \
	  --rounds 3 --count 4000 --concurrency 50 --connections 10

# The long fuzz run of docs/hardening.md: a host process gets FUZZ_FRAMES seeded, mostly mutated
# frames while one client floods it with 10 MB of echoes it never reads. Not part of `make test`
# (the suite runs 3,000 frames, 1,000 on PostgreSQL, tests/fuzz/test_fuzz_host.py). Exit 0 =
# no silence, no double answer; the JSON report has the outcomes per mutation and the host's RSS.
FUZZ_FRAMES ?= 204000
FUZZ_SEED ?= 1
fuzz: $(DEMO_STAMP)
	$(BIN)/python tests/fuzz/fuzz_host.py --frames $(FUZZ_FRAMES) --seed $(FUZZ_SEED) --flood-mb 10

# How long the bundled scenario library takes (docs/qa-guide.md): median of three runs.
bench-scenarios: $(DEMO_STAMP)
	$(BIN)/python -m scenarios.bench --runs 3

# The scenario library on the China UnionPay profile (make test runs it on both profiles too).
scenarios-cup: $(DEMO_STAMP)
	$(BIN)/poslab-scenarios run scenarios/library --profile cup

# The README's pictures of the terminal in a browser (docs/img/browser-*.png): the browser test
# saves them there. Needs Debian's chromium (apt-get install chromium).
screenshots: $(STAMP)
	POSLAB_SCREENSHOTS_DIR=docs/img POSLAB_REQUIRE_BROWSER=1 \
	  $(BIN)/python -m pytest -p no:xdist -q tests/terminal/test_term_browser.py -k sale

# The translations of the terminal and the host console (one catalogue, in protocol/ where both
# may read it): compile protocol/locale/*/LC_MESSAGES/poslab.po after editing it (the .mo is
# committed, so a fresh clone runs without this step; tests check the two agree).
i18n: $(STAMP)
	$(BIN)/pybabel compile --statistics -d protocol/locale -D poslab

clean:
	rm -rf $(VENV) $(ISO8583SIM_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info
