# ketreg — two commands on a fresh machine with python3 (>= 3.11) and pip: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

# Published on purpose: the demo runs on synthetic data only. Real registries set their own secret, and
# `ketreg run` refuses this key unless KETREG_ALLOW_DEMO_KEY=1, which only this demo (and the tests) set.
DEMO_PSEUDONYM_KEY := ketreg-demo-key-synthetic-data-only
DEMO := demo

.PHONY: install browser demo test test-fast lint lock docs clean mutation

install: $(STAMP)

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

demo: install
	rm -rf $(DEMO)/landing
	mkdir -p $(DEMO)/dagster_home
	@# Telemetry off and no "No dagster.yaml found" warning; an existing file (yours) is left alone.
	test -f $(DEMO)/dagster_home/dagster.yaml || printf 'telemetry:\n  enabled: false\n' > $(DEMO)/dagster_home/dagster.yaml
	$(BIN)/python -m synthetic generate --out $(DEMO)/landing --sites 4 --patients-per-site 60 --seed 7 --error-rate 0.02 \
		--shapes canonical,semicolon,excel,redcap
	@echo "Using the published demo pseudonym key (synthetic data only; real runs need their own KETREG_PSEUDONYM_KEY)."
	@# Exit 3 = published, but some exports rejected: the synthetic landing holds a broken export on purpose
	@# (--error-rate), so 3 is the demo's expected outcome; 1 or 2 still fail the target.
	DAGSTER_HOME=$(CURDIR)/$(DEMO)/dagster_home KETREG_PSEUDONYM_KEY=$(DEMO_PSEUDONYM_KEY) KETREG_ALLOW_DEMO_KEY=1 \
		$(BIN)/ketreg run --landing $(DEMO)/landing --db $(DEMO)/registry.duckdb; \
		code=$$?; test $$code -eq 0 -o $$code -eq 3
	@echo ""
	@echo "Landing folder (synthetic exports): $(DEMO)/landing"
	@echo "Analysts' registry (DuckDB):         $(DEMO)/registry.duckdb   e.g. $(BIN)/python -c \"import duckdb; print(duckdb.connect('$(DEMO)/registry.duckdb', read_only=True).sql('FROM exports'))\""
	@echo "Pipeline's working database:         $(DEMO)/registry_work.duckdb (private)"
	@echo "Quality dashboard (open in a browser): $(DEMO)/reports/index.html   Data Docs: $(DEMO)/reports/data_docs/index.html"
	@echo "Each site's own records (data-manager folders, 0640): $(DEMO)/reports/sites/<site_id>/index.html"
	@echo "Shareable figures, small cells suppressed: $(BIN)/ketreg release NAME --db $(DEMO)/registry.duckdb  ->  releases/NAME/aggregates/"
	@echo "Dagster UI with this run:            DAGSTER_HOME=$(CURDIR)/$(DEMO)/dagster_home KETREG_PSEUDONYM_KEY=$(DEMO_PSEUDONYM_KEY) KETREG_ALLOW_DEMO_KEY=1 $(BIN)/dagster dev -w workspace.yaml"

test: install browser
	$(BIN)/pytest -q

# While developing: everything but the whole-pipeline runs marked `slow` (CI and `make test` run them all).
test-fast: install browser
	$(BIN)/pytest -q -m "not slow"

# Curated mutations of the safety nets, each applied to a temporary copy of the repo with the tests that must
# catch it (tests/mutation/; score and survivors in tests/README.md). Slow: not part of `make test`.
mutation: install
	$(BIN)/python tests/mutation/run.py

# The browser test (tests/test_browser.py) drives Debian's Chromium through Playwright; no browser is downloaded.
# CI runs `make test` as root on a fresh machine, so this installs the package when it is missing.
browser:
	@test -x /usr/bin/chromium || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

docs: install
	$(BIN)/python -m schemas.dictionary

# sqlfluff reads its rules from pyproject.toml ([tool.sqlfluff.*]: DuckDB dialect, and why each rule that is off is off);
# mypy its configuration ([tool.mypy]: which packages, which checks, which untyped libraries).
lint: install
	$(BIN)/ruff check .
	$(BIN)/sqlfluff lint sql
	$(BIN)/mypy

# Re-resolve dependencies from pyproject.toml and pin them again (then commit requirements.lock). --all keeps
# setuptools in the lock (the wheel test builds offline with it); pip itself is left to the venv.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,postgres]'
	(echo "# Exact versions that \`make\` installs (pip freeze of a working .venv, Python 3.11)."; \
	 echo "# Regenerate: make lock"; .venv-lock/bin/python -m pip freeze --all --exclude-editable | grep -v '^pip==') > requirements.lock
	rm -rf .venv-lock

clean:
	rm -rf $(DEMO) .pytest_cache test-artifacts
