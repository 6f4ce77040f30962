"""The code location: everything under `defs/` (one folder per source or concern), merged.

`defs()` is what Dagster loads (the UI, the daemon, the tests' snapshot). `ingest_defs()` is the
same defs folder without the modules an ingest run never uses (the dbt metrics, the S3 sensors),
for `ingest-pipeline ingest`: it builds each module's definitions exactly as the defs-folder
loader does, so the raw and normalized assets, their checks and the `ingest_<type>` and
`normalize_<entity>` jobs are the code location's own, without importing dbt, dagster-dbt and
dagster-aws, and without the component library that `load_from_defs_folder` adds for the UI.
"""

import importlib
import pkgutil
import warnings

import dagster as dg

from ingest_pipeline.lib.repo_files import FILES_ROOT

# Left out of `ingest_defs()`: what only the metrics runs and the sensors need.
NOT_FOR_INGEST = (
    "ingest_pipeline.defs.metrics",
    "ingest_pipeline.defs.landing.sensors",
    "ingest_pipeline.defs.alerts",
)


@dg.definitions
def defs() -> dg.Definitions:
    # The project's config (pyproject.toml's [tool.dg]) at the repo root, or the copy an
    # installed wheel carries (lib/repo_files.py): dagster looks for it there, then above.
    return dg.load_from_defs_folder(path_within_project=FILES_ROOT)


def ingest_defs() -> dg.Definitions:
    """The defs folder's modules but those in `NOT_FOR_INGEST`, each loaded as the defs-folder
    loader loads a Python file: its `@dg.definitions` function, else its module-level objects."""
    from dagster.components.definitions import LazyDefinitions

    import ingest_pipeline.defs as root

    parts = []
    for found in pkgutil.walk_packages(root.__path__, f"{root.__name__}."):
        if found.ispkg or found.name.startswith(NOT_FOR_INGEST):
            continue
        module = importlib.import_module(found.name)
        lazy = [value for value in vars(module).values() if isinstance(value, LazyDefinitions)]
        if lazy:
            parts.extend(load() for load in lazy)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", dg.PreviewWarning)
                parts.append(dg.load_definitions_from_module(module))
    return dg.Definitions.merge(*parts)
