"""Fast tier: the source-type registry and the tenants file's options (no server, no run).

A source type is one package under ingest_pipeline/sources: the registry must find each one from
the folders themselves, and each must have everything the platform builds from its declaration.
A wrong setting of one instance is that instance's fault alone, named without its value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

import ingest_pipeline.sources
from ingest_pipeline.domain.tenants import (
    TenantsFileError,
    find_instance,
    load_source_instances,
    read_source_instances,
)
from ingest_pipeline.lib.source_types import (
    SOURCE_TYPES,
    SourceOptions,
    UnknownSourceTypeError,
    option_models,
)
from ingest_pipeline.sandbox.demo_world import EXAMPLE_TENANTS_FILE

SOURCES_DIR = Path(ingest_pipeline.sources.__file__).parent
SECRET = "sk_live_pasted by mistake"


def write(tmp_path: Path, tenants: dict[str, list[dict[str, Any]]]) -> Path:
    path = tmp_path / "tenants.yaml"
    document = {"tenants": {t: {"sources": s} for t, s in tenants.items()}}
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_the_registry_finds_every_package_folder_under_sources() -> None:
    folders = sorted(p.name for p in SOURCES_DIR.iterdir() if (p / "__init__.py").is_file())
    assert folders  # the listing itself, not a list kept here
    assert list(SOURCE_TYPES) == folders
    assert list(option_models()) == folders
    for name, declared in SOURCE_TYPES.items():
        assert declared.name == name
        assert declared.options is option_models()[name]


@pytest.mark.parametrize("name", sorted(option_models()))
def test_every_type_has_everything_built_from_its_declaration(
    defs: dg.Definitions, name: str
) -> None:
    declared = SOURCE_TYPES[name]
    raw = dg.AssetKey(["raw", name, declared.raw_resource])
    assert defs.resolve_assets_def(raw).group_names_by_key[raw] == name
    assert (
        defs.resolve_assets_def(raw).descriptions_by_key[raw] == declared.declared.raw.description
    )
    job = defs.resolve_job_def(declared.job_name)
    assert job.asset_layer.selected_asset_keys == {raw}
    assert defs.resolve_schedule_def(f"{declared.job_name}_schedule").job_name == job.name
    assert (
        dg.AssetKey(["normalized", declared.entity])
        in defs.resolve_asset_graph().get_all_asset_keys()
    )
    assert callable(declared.mapper) and callable(declared.declared.raw.dlt_source)
    assert issubclass(declared.options, SourceOptions)
    assert declared.options.model_config.get("extra") == "forbid"


def test_the_demo_tenants_file_has_a_valid_instance_of_every_type() -> None:
    sources = read_source_instances(EXAMPLE_TENANTS_FILE)
    assert sources.invalid == []
    assert {i.type for i in sources.instances} == set(SOURCE_TYPES)
    # Every type's demo part names an address the example uses (the demo replaces it).
    example = EXAMPLE_TENANTS_FILE.read_text(encoding="utf-8")
    for declared in SOURCE_TYPES.values():
        demo = declared.declared.demo
        assert demo is not None and demo.example_address in example


def test_a_typo_in_one_instance_leaves_it_out_naming_tenant_instance_type_and_field(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        {
            "acme": [{"type": "csv", "name": "catalog", "path": "/data", "globb": SECRET}],
            "globex": [{"type": "rss", "name": "blog", "url": "https://example.com/feed.xml"}],
        },
    )
    sources = read_source_instances(path)
    assert [i.partition_key for i in sources.instances] == ["globex.blog"]
    [invalid] = sources.invalid
    message = str(invalid)
    assert message.startswith("tenant acme: csv source catalog: invalid settings: globb: ")
    assert "Extra inputs are not permitted" in message
    assert SECRET not in message
    assert [i.name for i in load_source_instances(path)] == ["blog"]
    # The left-out instance's run (a partition that was synced before) says why it cannot run.
    with pytest.raises(TenantsFileError, match="acme: csv source catalog: invalid settings"):
        find_instance(path, "csv", "acme.catalog")


@pytest.mark.parametrize(
    ("source", "field", "why"),
    [
        ({"type": "intercom", "token_env": SECRET}, "token_env", "environment variable"),
        ({"type": "stripe", "api_key_env": "OK", "page_size": "many"}, "page_size", "integer"),
        ({"type": "rss", "url": "https://x.test/f", "schedule": SECRET}, "schedule", "cron"),
        ({"type": "playstore", "token_env": "OK"}, "package_name", "Field required"),
        (
            {
                "type": "rest_api",
                "client": {"base_url": "https://x.test", "auth": {"token_env": SECRET}},
                "resources": [{"name": "things", "endpoint": "things"}],
            },
            "client",
            "auth.token_env must name an environment variable",
        ),
        (
            {
                "type": "rest_api",
                "client": {"base_url": "https://x.test"},
                "resources": [{"name": "things", "max_pages": 0}],
            },
            "resources.0.max_pages",
            "greater than or equal to 1",
        ),
    ],
)
def test_invalid_settings_name_the_field_never_the_value(
    tmp_path: Path, source: dict[str, Any], field: str, why: str
) -> None:
    path = write(tmp_path, {"acme": [{"name": "main", **source}]})
    [invalid] = read_source_instances(path).invalid
    assert (invalid.tenant, invalid.type, invalid.name) == ("acme", source["type"], "main")
    assert f"{field}: " in invalid.reason and why in invalid.reason
    assert SECRET not in invalid.reason


def test_an_unknown_type_lists_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, {"acme": [{"type": "fax", "name": "main", "number": "1"}]})
    [invalid] = read_source_instances(path).invalid
    assert str(invalid) == (
        f"tenant acme: fax source main: unknown source type 'fax'; "
        f"known types: {', '.join(sorted(SOURCE_TYPES))}"
    )
    with pytest.raises(UnknownSourceTypeError, match="known types: csv, "):
        SOURCE_TYPES["fax"]


def test_options_read_as_a_dict_with_the_given_keys_and_the_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"acme": [{"type": "intercom", "name": "main", "token_env": "ACME_INTERCOM_TOKEN"}]},
    )
    [instance] = load_source_instances(path)
    assert instance.options == {
        "schedule": "*/15 * * * *",  # the type's default cron
        "pause_after_auth_failures": 3,  # every instance's default
        "token_env": "ACME_INTERCOM_TOKEN",
        "base_url": "https://api.intercom.io",
        "api_version": "2.11",
        "page_size": 150,
    }
    # An optional setting without a default, left unset, is absent: `.get(key)` reads None.
    [csv] = load_source_instances(
        write(tmp_path, {"acme": [{"type": "csv", "name": "catalog", "path": "/data"}]})
    )
    assert "delimiter" not in csv.options and csv.options["glob"] == "*.csv"


def test_the_tenants_sensor_syncs_the_valid_instances_and_names_the_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest_pipeline.defs.tenants.sensors import tenants_file_sensor

    path = write(
        tmp_path,
        {
            "acme": [{"type": "rss", "name": "blog", "url": "https://x.test/f", "ur1": "x"}],
            "globex": [{"type": "rss", "name": "news", "url": "https://x.test/n"}],
        },
    )
    monkeypatch.setenv("INGEST_TENANTS_FILE", str(path))
    with dg.DagsterInstance.ephemeral() as instance:
        result = tenants_file_sensor(dg.build_sensor_context(instance=instance))
        requests = {
            r.partitions_def_name: r.partition_keys for r in result.dynamic_partitions_requests
        }
        assert requests == {"rss_instances": ["globex.news"]}
        instance.add_dynamic_partitions("rss_instances", ["globex.news"])
        result = tenants_file_sensor(dg.build_sensor_context(instance=instance))
    assert "1 instance(s) left out: tenant acme: rss source blog: invalid settings: ur1: " in (
        result.skip_reason.skip_message
    )
