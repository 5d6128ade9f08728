# Aperture: `make serve` runs the examples, `make test` runs everything CI runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PORT ?= 5006

.PHONY: install serve test check unit docs bench bench-quick clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/aperture serve examples/sliders.py examples/streaming.py examples/dashboard examples/panel_dashboard.py --port $(PORT)

check: $(STAMP)
	$(VENV)/bin/ruff check aperture tests bench examples
	$(VENV)/bin/ruff format --check aperture tests bench examples
	$(VENV)/bin/mypy aperture

test: check
	$(PY) -m pytest -q -p no:cacheprovider

docs: $(STAMP)
	$(PY) -m aperture.cli.docs > docs/cli.md

bench: $(STAMP)
	$(PY) -m bench.run

bench-quick: $(STAMP)
	$(PY) -m bench.run --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
