# Two commands after a clone: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.data/dagster
# A range run plans each asset once with its partition range, not once per partition.
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS ?= true

.PHONY: install demo test test-fast lint format dev bench clean manifest wheel compose-schema

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# dagster-dbt loads the dbt manifest with the definitions: keep it in step with the models.
MANIFEST = cd dbt_metrics && ../$(BIN)/dbt parse --profiles-dir . --quiet

# The Compose Specification's JSON schema, which test_settings_and_tenants.py validates
# docker-compose.yml against: compose-spec/compose-spec's schema/compose-spec.json as of
# 2025-07-20, as the npm package dclint 3.1.0 ships it, checked against its sha256. No Python
# package carries a schema that knows `configs.content` (docker-compose 1.29.2's rejects it).
COMPOSE_SCHEMA := .data/compose-spec/compose-spec.json
COMPOSE_SCHEMA_SHA256 := 46b7d35f19dd93a05f8fea530291bf84d881c1791ec167ecf0e6fb94e639d496
$(COMPOSE_SCHEMA):
	rm -rf $(@D) && mkdir -p $(@D)
	cd $(@D) && npm pack --silent dclint@3.1.0 >/dev/null \
		&& tar -xzf dclint-3.1.0.tgz package/schemas/compose.schema.json
	echo "$(COMPOSE_SCHEMA_SHA256)  $(@D)/package/schemas/compose.schema.json" | sha256sum --check --quiet
	mv $(@D)/package/schemas/compose.schema.json $@
	rm -rf $(@D)/package $(@D)/dclint-3.1.0.tgz

compose-schema: $(COMPOSE_SCHEMA)

install: $(STAMP) $(COMPOSE_SCHEMA)

demo: $(STAMP)
	$(MANIFEST)
	$(BIN)/ingest-pipeline demo

# The whole suite, the slow kill -9 trials included: the fast tier first (a failure there shows
# in seconds), then the integration tests on two workers (pytest-xdist), a test file each at a
# time: most of them wait on servers, daemons and databases rather than on the CPU. Files go out
# in collection order, where conftest puts the slow kill trials first (xdist would otherwise
# send the files with most tests first, and the one-test trials last, alone).
test: $(STAMP) lint $(COMPOSE_SCHEMA)
	$(MANIFEST)
	$(BIN)/pytest -q -p no:cacheprovider -m "not integration"
	$(BIN)/pytest -q -p no:cacheprovider -m integration --durations=20 -n 2 --dist loadfile \
		--no-loadscope-reorder

DBT_MANIFEST := dbt_metrics/target/manifest.json
DBT_FILES := $(shell find dbt_metrics \( -path dbt_metrics/target -o -path dbt_metrics/logs \) \
	-prune -o -type f \( -name '*.sql' -o -name '*.yml' -o -name '*.csv' \) -print)
$(DBT_MANIFEST): $(STAMP) $(DBT_FILES)
	$(MANIFEST)
	touch $@

# The build step of a wheel or an image: the dbt manifest parsed from the models. setup.py puts
# it in the wheel when it is newer than every file of dbt_metrics/ (else the installed package
# parses on first load, into INGEST_DBT_TARGET_DIR).
manifest: $(DBT_MANIFEST)

# dist/ingest_pipeline-<version>-py3-none-any.whl: the package with dbt_metrics/, its manifest,
# the instance configs and the example tenants file (`pip install` it anywhere; the Dockerfile
# does the same).
wheel: $(DBT_MANIFEST)
	$(BIN)/pip wheel --quiet --no-deps -w dist .

# Pure logic and the definitions' snapshot (asset keys, checks, jobs, schedules, sensors): no
# database, S3, server, daemon or Dagster run (the `integration` marker, ingest_pipeline_tests/
# conftest.py). Under 30 s; the manifest is parsed again only when a dbt file changed.
test-fast: $(STAMP) lint $(DBT_MANIFEST) $(COMPOSE_SCHEMA)
	$(BIN)/pytest -q -p no:cacheprovider -m "not integration"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The whole local system until Ctrl-C: S3 emulator, sandboxes, demo tenants, intake, and the
# Dagster UI on http://127.0.0.1:3000 with the daemon; its settings in .data/dev.env.
dev: $(STAMP)
	$(MANIFEST)
	$(BIN)/ingest-pipeline dev

bench: $(STAMP)
	$(MANIFEST)
	$(BIN)/python benchmarks/csv_load.py
	$(BIN)/python benchmarks/metrics_backfill.py
	$(BIN)/python benchmarks/landing_events.py
	$(BIN)/python benchmarks/intake_load.py
	$(BIN)/python benchmarks/throughput.py --rows 1000000 3000000 --events 1000000
	$(BIN)/python benchmarks/startup.py

clean:
	rm -rf .data
