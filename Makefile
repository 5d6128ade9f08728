# Aperture: `make serve` runs the examples, `make test` runs everything CI runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PORT ?= 5006
# The OpenID Connect provider the identity tests run (oidc-provider from the npm registry, on Node.js).
PROVIDER := tests/identity/provider
PROVIDER_STAMP := $(PROVIDER)/node_modules/.installed-stamp

.PHONY: install provider serve test check unit docs bench bench-quick clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# `npm ci` only when the lock file changed since the last install (nothing is fetched otherwise).
# Without npm the identity tests skip locally, and fail under CI=true.
$(PROVIDER_STAMP): $(PROVIDER)/package.json $(PROVIDER)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(PROVIDER) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed-stamp; \
	else \
		echo "npm not found: the identity tests will skip (install nodejs and npm)"; \
	fi

provider: $(PROVIDER_STAMP)

serve: $(STAMP)
	$(VENV)/bin/aperture serve examples/sliders.py examples/streaming.py examples/dashboard examples/panel_dashboard.py --port $(PORT)

check: $(STAMP)
	$(VENV)/bin/ruff check aperture tests bench examples
	$(VENV)/bin/ruff format --check aperture tests bench examples
	$(VENV)/bin/mypy aperture

test: check $(PROVIDER_STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

docs: $(STAMP)
	$(PY) -m aperture.cli.docs > docs/cli.md

bench: $(STAMP)
	$(PY) -m bench.run

bench-quick: $(STAMP)
	$(PY) -m bench.run --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
