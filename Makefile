# perfstats.profiler — developer entry points.
#   make demo   a demo playbook profiled on localhost (fresh machine: needs only Python and pip)
#   make test   ruff, ansible-test sanity, unit and integration tests, the version matrix's CI rows
#   make bench  overhead, fidelity and footprint benchmarks -> docs/benchmarks.md (~70 min; make bench-quick: ~3 min)
#   make matrix the whole version matrix (Ansible 2.9 -> ansible-core 2.21), one cached venv per row in build/matrix
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BUILD := build
COLLECTIONS := $(BUILD)/collections
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
TARBALL := $(BUILD)/perfstats-profiler-$(VERSION).tar.gz

.PHONY: demo test lint lint-role sanity unit integration collection bench bench-quick matrix matrix-ci clean

$(BIN)/.installed: requirements/run.txt requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	touch $@

venv: $(BIN)/.installed

collection: $(BIN)/.installed
	rm -rf $(BUILD)/ansible_collections_build $(COLLECTIONS)
	mkdir -p $(BUILD)
	$(BIN)/ansible-galaxy collection build --force --output-path $(BUILD) .
	$(BIN)/ansible-galaxy collection install --force --offline -p $(COLLECTIONS) $(TARBALL)

demo: collection
	cd demo && ANSIBLE_CONFIG=ansible.cfg ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/$(COLLECTIONS) \
		PERFSTATS_OUTPUT_DIR=$(CURDIR)/demo/output $(CURDIR)/$(BIN)/ansible-playbook site.yml

LINTVENV ?= $(BUILD)/lintvenv

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MAKE) lint-role

# ansible-lint lives in a venv of its own: it pulls its own ansible-core.
lint-role: collection
	test -x $(LINTVENV)/bin/ansible-lint || ($(PYTHON) -m venv $(LINTVENV) && $(LINTVENV)/bin/pip install --quiet ansible-lint==26.10.1)
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/$(COLLECTIONS) $(LINTVENV)/bin/ansible-lint --offline roles/controller

sanity: $(BIN)/.installed
	$(BIN)/python tests/sanity/run_sanity.py

unit: $(BIN)/.installed
	$(BIN)/python -m pytest tests/unit

integration: $(BIN)/.installed
	$(BIN)/python -m pytest tests/integration

test: $(BIN)/.installed
	$(MAKE) lint
	$(MAKE) sanity
	$(BIN)/python -m pytest tests/unit tests/integration runner/tests benchmarks/test_bench.py
	$(MAKE) matrix-ci

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

bench-quick: $(BIN)/.installed
	$(BIN)/python benchmarks/bench.py --quick

matrix: $(BIN)/.installed
	$(BIN)/python tests/matrix/run_matrix.py $(MATRIX_ARGS)

matrix-ci: $(BIN)/.installed
	$(BIN)/python tests/matrix/run_matrix.py --ci

clean:
	rm -rf $(BUILD) demo/output tests/output
