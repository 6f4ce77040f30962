{#
  Activity per (tenant, item, author, day) of the window: raw and counted views from the
  anti-gaming step, and every other interaction as it came.
#}
select
    tenant_id,
    item_id,
    author_id,
    metric_date,
    {{ summed_activity() }}
from (
    select
        tenant_id, item_id, author_id, event_date as metric_date,
        raw_views, counted_views as views, 0 as copies, 0 as saves, 0 as forks, 0 as votes
    from {{ ref('int_counted_views') }}
    union all
    select
        tenant_id, item_id, author_id, event_date as metric_date,
        0, 0,
        case when event_type = 'COPY' then 1 else 0 end,
        case when event_type = 'SAVE' then 1 else 0 end,
        case when event_type = 'FORK' then 1 else 0 end,
        case when event_type = 'VOTE' then 1 else 0 end
    from {{ ref('stg_events') }}
    where event_type in ('COPY', 'SAVE', 'FORK', 'VOTE') and {{ in_window('event_date') }}
) as activity
group by tenant_id, item_id, author_id, metric_date
