"""A sensor whose dependency is down says so in one line and skips: no traceback per tick."""

import dagster as dg

from ingest_pipeline.lib.ports import free_port
from ingest_pipeline.sandbox.s3 import EMULATOR_CREDENTIALS


def test_a_landing_sensor_skips_in_one_line_when_the_object_store_is_down(duck_env, monkeypatch):
    for name, value in EMULATOR_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("INGEST_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody
    duck_env.write_tenants({"acme": []})
    sensor = duck_env.defs.resolve_sensor_def("landing_logs_sensor")
    context = dg.build_sensor_context(instance=duck_env.instance, resources=duck_env.defs.resources)
    result = sensor(context)
    reason = result.skip_reason.skip_message
    assert not result.run_requests
    assert reason.startswith("landing bucket landing unreachable: Could not connect")
    assert "\n" not in reason


def test_a_landing_sensor_skips_when_the_bucket_does_not_exist(duck_env, s3_endpoint):
    duck_env.write_tenants({"acme": []})
    sensor = duck_env.defs.resolve_sensor_def("landing_events_sensor")
    context = dg.build_sensor_context(instance=duck_env.instance, resources=duck_env.defs.resources)
    result = sensor(context)
    assert "NoSuchBucket" in result.skip_reason.skip_message
    assert context.cursor is None  # nothing taken: the objects wait for the next tick
