# Two commands do all the set-up: `make run` runs the product, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run dev stop test install clean messages bench chromium toolchains screenshots

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# The compiled catalogues (.mo) are built from the .po files in the repository, never committed.
CATALOGUES := $(patsubst %.po,%.mo,$(wildcard translations/*/LC_MESSAGES/messages.po))

%.mo: %.po $(STAMP)
	$(BIN)/pybabel compile --use-fuzzy -i $< -o $@

install: $(STAMP) $(CATALOGUES)

run: install
	$(BIN)/python scripts/run.py

# The same, with the admin served by `flask run --debug` (reloads when the code changes).
dev: install
	$(BIN)/python scripts/run.py --dev

# Stop the embedded Redis that a hand-started `flask run` or `flask worker` left running.
stop: install
	$(BIN)/python -c 'import os; from notify import embedded_redis; embedded_redis.stop(os.path.join(os.environ.get("INSTANCE_PATH") or "instance", "redis"))'

# The browser tests drive Debian's Chromium: installed here where it is missing (root and apt-get),
# else they are skipped with a loud message (CI requires them: MN_REQUIRE_BROWSER=1).
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null) ; } \
		|| echo "*** Chromium is missing and cannot be installed here: the browser tests will be SKIPPED ***"

# The verifiers in receiver_demo/examples are tested with their own toolchains: Debian's packages
# for the missing ones are installed here (root and apt-get), else those tests are skipped with a
# loud message (CI requires them: MN_REQUIRE_TOOLCHAINS=1). javac: a JRE's java cannot run a source file.
TOOLCHAINS := javac:default-jdk-headless php:php-cli node:nodejs go:golang-go
toolchains:
	@missing="$(foreach t,$(TOOLCHAINS),$$(command -v $(word 1,$(subst :, ,$(t))) >/dev/null || echo $(word 2,$(subst :, ,$(t)))))"; \
	missing=$$(echo $$missing); [ -z "$$missing" ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get update -qq && apt-get install -y -qq $$missing >/dev/null) ; } \
		|| echo "*** $$missing missing and cannot be installed here: those verifiers' tests will be SKIPPED ***"

# The whole suite on SQLite; again on PostgreSQL when TEST_POSTGRES_URL is set (CI sets it).
test: install chromium toolchains
	$(BIN)/python -m pytest
	@if [ -n "$$TEST_POSTGRES_URL" ]; then \
		echo "== the suite again on PostgreSQL ($$TEST_POSTGRES_URL) =="; \
		TEST_DATABASE_URL="$$TEST_POSTGRES_URL" $(BIN)/python -m pytest tests; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache

# Re-extract every translatable string into translations/messages.pot (after changing texts) and
# add the new ones, untranslated, to each catalogue (tests/test_i18n.py fails until they are translated).
messages: install
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output \
		--ignore-dirs=".venv instance receiver_demo tests migrations" -o translations/messages.pot .
	$(BIN)/pybabel update -i translations/messages.pot -d translations --no-fuzzy-matching

# Screenshots of the main pages in both languages, for the README (docs/screenshots/).
screenshots: install chromium
	$(BIN)/python scripts/screenshots.py

# Benchmarks (not tests): about five minutes; writes bench/results.md. Needs wrk for the ingest run.
bench: install
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt
	@command -v wrk >/dev/null || apt-get install -y -qq wrk || echo "wrk is missing: the ingest benchmark will be skipped"
	$(BIN)/python -m bench.suite
