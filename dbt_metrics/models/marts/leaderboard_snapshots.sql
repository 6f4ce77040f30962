-- For each day: the top `leaderboard_top_n` items and authors by weighted activity over the
-- windows daily, weekly (7 days), monthly (30 days) and all-time. Ties: lower id ranks first.
with
{{ entity_window_scores('item', 'item_id', 'item_metrics_daily') }},
{{ entity_window_scores('author', 'author_id', 'author_metrics_daily') }},

ranked as (
    select
        *,
        row_number() over (
            partition by tenant_id, metric_date, entity_type, window_name
            order by score desc, entity_id
        ) as rank
    from (
        select * from item_scores
        union all
        select * from author_scores
    ) as scores
)

select
    tenant_id,
    metric_date,
    window_name,
    entity_type,
    case when entity_type = 'item' then entity_id end as item_id,
    case when entity_type = 'author' then entity_id end as author_id,
    cast(rank as integer) as rank,
    score
from ranked
where rank <= {{ var('leaderboard_top_n') }}
