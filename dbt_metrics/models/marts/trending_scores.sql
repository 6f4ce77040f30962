{#
  trending(item, D) = sum over every earlier-or-same day d of
      activity_score(item, d) * 2 ^ (-(D - d) / half_life_days)
  (activity_score: weighted counted views, copies, saves, forks, votes; weights are vars).
  Computed without a days x days join: with r = min_date,
      trending(D) = 2^(-(D - r)/h) * (base_r + running sum over r <= d <= D of score(d) * 2^((d - r)/h))
  where base_r = sum over d < r of score(d) * 2^(-(r - d)/h). It reads item_metrics_daily of
  earlier days, so backfill in day order or as one range (one run builds the metrics first).
#}
{% set h = var('trending_half_life_days') %}

with daily as (
    select tenant_id, item_id, metric_date, {{ activity_score() }} as score
    from {{ ref('item_metrics_daily') }}
    where metric_date < {{ max_date() }}
),

base as (
    select
        tenant_id,
        item_id,
        sum(score * power(2.0, -cast({{ min_date() }} - metric_date as double precision) / {{ h }}))
            as base_score
    from daily
    where metric_date < {{ min_date() }}
    group by tenant_id, item_id
),

grid as (
    select i.tenant_id, i.item_id, s.metric_date
    from (select distinct tenant_id, item_id from daily) as i
    cross join ({{ day_spine() }}) as s
),

growing as (
    select
        g.tenant_id,
        g.item_id,
        g.metric_date,
        coalesce(b.base_score, 0)
            + sum(
                coalesce(d.score, 0)
                * power(2.0, cast(g.metric_date - {{ min_date() }} as double precision) / {{ h }})
            ) over (
                partition by g.tenant_id, g.item_id
                order by g.metric_date
                rows between unbounded preceding and current row
            ) as scaled
    from grid as g
    left join daily as d
        on g.tenant_id = d.tenant_id and g.item_id = d.item_id and g.metric_date = d.metric_date
    left join base as b
        on g.tenant_id = b.tenant_id and g.item_id = b.item_id
)

select
    tenant_id,
    item_id,
    metric_date,
    scaled * power(2.0, -cast(metric_date - {{ min_date() }} as double precision) / {{ h }})
        as trending_score
from growing
where scaled > 0
