# The image of docker-compose.yml: the package installed from its wheel (not an editable
# checkout), run by a non-root user. The dbt manifest is parsed here, at build time, and shipped
# in the wheel (setup.py): no process of the image parses it, and none writes into the installed
# package (dbt's target folder is under INGEST_DATA_DIR, the volume at /data).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# The pinned dependencies first (a layer of their own: a code change does not reinstall them).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip install -r requirements.txt
COPY setup.py MANIFEST.in README.md dagster.yaml tenants.example.yaml ./
COPY deploy ./deploy
COPY dbt_metrics ./dbt_metrics
COPY ingest_pipeline ./ingest_pipeline
# The build step (`make manifest`): the manifest parsed from the models, then the wheel that
# carries it, installed; the installed package must find its project and that manifest.
RUN cd dbt_metrics && dbt parse --profiles-dir . --quiet
RUN pip wheel --no-deps -w /wheels . \
    && pip install --no-deps /wheels/*.whl \
    && cd / && python -c "from ingest_pipeline.lib.repo_files import DBT_PROJECT_DIR, INSTALLED; assert INSTALLED and (DBT_PROJECT_DIR / 'target' / 'manifest.json').is_file()"

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 ingest \
    && mkdir -p /data /opt/dagster/home /opt/ingest \
    && chown ingest:ingest /data /opt/dagster/home /opt/ingest
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH INGEST_DATA_DIR=/data DAGSTER_HOME=/opt/dagster/home
WORKDIR /opt/ingest
USER ingest
