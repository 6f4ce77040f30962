{#
  Window scores of one entity (item or author) for every day of the partition window, from its
  daily metrics: daily, weekly (7 days), monthly (30 days) and all-time, ending on that day.
  A dense grid of (entity, day) from 29 days before the window makes the rolling windows plain
  window functions; all-time adds the sum of everything older.
#}
{% macro entity_window_scores(entity_type, id_column, metrics_model) %}
    {% set prefix = entity_type ~ '_' %}
    {{ prefix }}daily as (
        select tenant_id, {{ id_column }} as entity_id, metric_date, {{ activity_score() }} as score
        from {{ ref(metrics_model) }}
        where metric_date < {{ max_date() }}
    ),
    {{ prefix }}first as (
        select tenant_id, entity_id, min(metric_date) as first_day
        from {{ prefix }}daily
        group by tenant_id, entity_id
    ),
    {{ prefix }}older as (
        select tenant_id, entity_id, sum(score) as older_score
        from {{ prefix }}daily
        where metric_date < {{ min_date(-29) }}
        group by tenant_id, entity_id
    ),
    {{ prefix }}grid as (
        select f.tenant_id, f.entity_id, s.metric_date
        from {{ prefix }}first as f
        join ({{ day_spine(29) }}) as s on s.metric_date >= f.first_day
    ),
    {{ prefix }}windows as (
        select
            g.tenant_id,
            g.entity_id,
            g.metric_date,
            coalesce(d.score, 0) as daily,
            sum(coalesce(d.score, 0)) over (
                partition by g.tenant_id, g.entity_id order by g.metric_date
                rows between 6 preceding and current row
            ) as weekly,
            sum(coalesce(d.score, 0)) over (
                partition by g.tenant_id, g.entity_id order by g.metric_date
                rows between 29 preceding and current row
            ) as monthly,
            coalesce(o.older_score, 0) + sum(coalesce(d.score, 0)) over (
                partition by g.tenant_id, g.entity_id order by g.metric_date
                rows between unbounded preceding and current row
            ) as all_time
        from {{ prefix }}grid as g
        left join {{ prefix }}daily as d
            on g.tenant_id = d.tenant_id and g.entity_id = d.entity_id
            and g.metric_date = d.metric_date
        left join {{ prefix }}older as o
            on g.tenant_id = o.tenant_id and g.entity_id = o.entity_id
    ),
    {{ prefix }}scores as (
        {% for window_name in ['daily', 'weekly', 'monthly', 'all_time'] %}
        select tenant_id, metric_date, '{{ entity_type }}' as entity_type,
               '{{ window_name }}' as window_name, entity_id, {{ window_name }} as score
        from {{ prefix }}windows
        where {{ in_window('metric_date') }} and {{ window_name }} > 0
        {{ "union all" if not loop.last }}
        {% endfor %}
    )
{% endmacro %}
