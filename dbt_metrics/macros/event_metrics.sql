{# Events and distinct actors per tenant, source, event type and time bucket (minute, hour, day). #}
{% macro event_metrics(grain) %}
select
    tenant_id,
    source_type,
    source_instance,
    event_type,
    date_trunc('{{ grain }}', occurred_at_utc) as bucket_start,
    event_date as metric_date,
    count(*) as events,
    count(distinct actor_id) as distinct_actors
from {{ ref('stg_events') }}
where {{ in_window('event_date') }}
group by
    tenant_id, source_type, source_instance, event_type,
    date_trunc('{{ grain }}', occurred_at_utc), event_date
{% endmacro %}
