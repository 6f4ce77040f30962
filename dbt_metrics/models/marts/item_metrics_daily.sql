select
    tenant_id,
    item_id,
    metric_date,
    {{ summed_activity() }}
from {{ ref('int_activity') }}
where item_id is not null
group by tenant_id, item_id, metric_date
