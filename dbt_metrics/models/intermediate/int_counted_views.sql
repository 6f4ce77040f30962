{#
  Anti-gaming for VIEW events, per (tenant, item, author, ip, day) of the window:
  a view counts only if it comes at least `view_dedupe_minutes` after the last *counted* view
  of the same ip on the same item, and at most `max_counted_views_per_ip_item_day` count.
  Because of the cap, "the last counted view" needs no recursion: step k is the first view at
  least the gap after step k-1, for k = 1..cap.
#}
{% set cap = var('max_counted_views_per_ip_item_day') %}
{% set gap = var('view_dedupe_minutes') %}
{% set keys = ['tenant_id', 'item_id', 'author_id', 'ip', 'event_date'] %}

with views as (
    select tenant_id, item_id, author_id, coalesce(ip, '') as ip, event_date, occurred_at_utc as viewed_at
    from {{ ref('stg_events') }}
    where event_type = 'VIEW' and item_id is not null and {{ in_window('event_date') }}
),

step_1 as (
    select {{ keys | join(', ') }}, min(viewed_at) as counted_at
    from views
    group by {{ keys | join(', ') }}
),

{% for k in range(2, cap + 1) %}
step_{{ k }} as (
    select {% for c in keys %}v.{{ c }}, {% endfor %}min(v.viewed_at) as counted_at
    from views as v
    join step_{{ k - 1 }} as p
        on v.tenant_id = p.tenant_id
        and v.item_id = p.item_id
        and v.author_id is not distinct from p.author_id
        and v.ip = p.ip
        and v.event_date = p.event_date
    where v.viewed_at >= p.counted_at + interval '{{ gap }} minutes'
    group by {% for c in keys %}v.{{ c }}{{ ", " if not loop.last }}{% endfor %}
),
{% endfor %}

counted as (
    select {{ keys | join(', ') }}, count(*) as counted_views
    from (
        {% for k in range(1, cap + 1) %}
        select * from step_{{ k }}{{ " union all" if not loop.last }}
        {% endfor %}
    ) as steps
    group by {{ keys | join(', ') }}
),

raw as (
    select {{ keys | join(', ') }}, count(*) as raw_views
    from views
    group by {{ keys | join(', ') }}
)

select
    raw.tenant_id,
    raw.item_id,
    raw.author_id,
    raw.ip,
    raw.event_date,
    raw.raw_views,
    coalesce(counted.counted_views, 0) as counted_views
from raw
left join counted
    on raw.tenant_id = counted.tenant_id
    and raw.item_id = counted.item_id
    and raw.author_id is not distinct from counted.author_id
    and raw.ip = counted.ip
    and raw.event_date = counted.event_date
