-- Rows the normalized layer took in (by the day they were last written) and rows it
-- rejected, per source instance and day.
with loaded as (
    {% for entity in ['items', 'feedback', 'events'] %}
    select tenant_id, source_type, source_instance, {{ utc_day('ingested_at') }} as metric_date
    from {{ source('normalized', entity) }}
    {{ "union all" if not loop.last }}
    {% endfor %}
),

counts as (
    select tenant_id, source_type, source_instance, metric_date, 1 as loaded, 0 as rejected
    from loaded
    where {{ in_window('metric_date') }}
    union all
    select tenant_id, source_type, source_instance, rejected_date, 0, 1
    from {{ ref('stg_rejected_records') }}
    where {{ in_window('rejected_date') }}
)

select
    tenant_id,
    source_type,
    source_instance,
    metric_date,
    cast(sum(loaded) as bigint) as rows_loaded,
    cast(sum(rejected) as bigint) as rows_rejected
from counts
group by tenant_id, source_type, source_instance, metric_date
