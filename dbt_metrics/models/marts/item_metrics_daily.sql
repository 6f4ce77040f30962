select
    tenant_id,
    item_id,
    metric_date,
    cast(sum(raw_views) as bigint) as raw_views,
    cast(sum(views) as bigint) as views,
    cast(sum(copies) as bigint) as copies,
    cast(sum(saves) as bigint) as saves,
    cast(sum(forks) as bigint) as forks,
    cast(sum(votes) as bigint) as votes
from {{ ref('int_activity') }}
where item_id is not null
group by tenant_id, item_id, metric_date
