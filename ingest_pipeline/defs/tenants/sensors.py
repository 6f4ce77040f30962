"""Keep each source type's instance partitions in step with the tenants file.

The tenants file is read at every tick, so a tenant added to it becomes a partition (and is
scheduled) without restarting anything; a removed instance's partition goes away. An instance
the file configures wrongly (an unknown type, an invalid setting) is left out like a removed one,
and every tick names it and why in its log and its reason, so the fault stays that instance's:
the other instances are synced as usual.
"""

import dagster as dg

from ingest_pipeline.domain.tenants import (
    InvalidInstance,
    TenantsFileError,
    read_source_instances,
)
from ingest_pipeline.lib.source_types import SOURCE_TYPES
from ingest_pipeline.settings import get_settings

PartitionsRequest = dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest


def partition_requests(instance: dg.DagsterInstance) -> list[PartitionsRequest]:
    """What to add and delete so the partitions equal the tenants file's valid instances."""
    return _sync_plan(instance)[0]


def _sync_plan(
    instance: dg.DagsterInstance,
) -> tuple[list[PartitionsRequest], list[InvalidInstance]]:
    sources = read_source_instances(get_settings().tenants_file)
    requests: list[PartitionsRequest] = []
    for source_type in SOURCE_TYPES.values():
        name = source_type.partitions_name
        wanted = {i.partition_key for i in sources.instances if i.type == source_type.name}
        existing = set(instance.get_dynamic_partitions(name))
        if wanted - existing:
            requests.append(dg.AddDynamicPartitionsRequest(name, sorted(wanted - existing)))
        if existing - wanted:
            requests.append(dg.DeleteDynamicPartitionsRequest(name, sorted(existing - wanted)))
    return requests, sources.invalid


def sync_partitions(instance: dg.DagsterInstance) -> None:
    """Apply the requests directly (the CLI does this before it launches runs)."""
    for request in partition_requests(instance):
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def tenants_file_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    try:
        requests, invalid = _sync_plan(context.instance)
    except TenantsFileError as exc:
        return dg.SensorResult(skip_reason=str(exc))
    for left_out in invalid:
        context.log.error(f"left out of the partitions: {left_out}")
    if not requests:
        reason = "partitions already match the tenants file"
        if invalid:
            reason += f"; {len(invalid)} instance(s) left out: " + " | ".join(map(str, invalid))
        return dg.SensorResult(skip_reason=reason)
    return dg.SensorResult(dynamic_partitions_requests=requests)
