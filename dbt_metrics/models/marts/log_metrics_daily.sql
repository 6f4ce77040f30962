with lines as (
    select tenant_id, service, level, log_date as metric_date, count(*) as lines
    from {{ ref('stg_log_records') }}
    where {{ in_window('log_date') }}
    group by tenant_id, service, level, log_date
)

select
    tenant_id,
    service,
    level,
    metric_date,
    lines,
    sum(lines) over (partition by tenant_id, service, metric_date) as service_lines,
    cast(
        sum(case when level in ('ERROR', 'FATAL', 'CRITICAL') then lines else 0 end)
            over (partition by tenant_id, service, metric_date) as double precision
    ) / sum(lines) over (partition by tenant_id, service, metric_date) as error_rate
from lines
