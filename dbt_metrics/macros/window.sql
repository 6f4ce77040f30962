{# A UTC wall-clock timestamp of a timestamptz column (the same on DuckDB and PostgreSQL). #}
{% macro utc(column) -%}
    ({{ column }} at time zone 'UTC')
{%- endmacro %}

{# The UTC day of a timestamptz column. #}
{% macro utc_day(column) -%}
    cast({{ utc(column) }} as date)
{%- endmacro %}

{# The partition window as dates: [min_date, max_date). #}
{% macro min_date(offset_days=0) -%}
    (cast('{{ var("min_date") }}' as date) + {{ offset_days }})
{%- endmacro %}

{% macro max_date() -%}
    cast('{{ var("max_date") }}' as date)
{%- endmacro %}

{# Rows of a day column inside the window. #}
{% macro in_window(day_column) -%}
    ({{ day_column }} >= {{ min_date() }} and {{ day_column }} < {{ max_date() }})
{%- endmacro %}

{# Pre-hook of every mart: delete the window's days, so the insert replaces them exactly. #}
{% macro delete_window() -%}
    {% if is_incremental() %}
        delete from {{ this }} where {{ in_window('metric_date') }}
    {% endif %}
{%- endmacro %}

{# Every day of the window (optionally starting some days earlier), one row each. #}
{% macro day_spine(days_before=0) -%}
    select cast(generate_series as date) as metric_date
    from generate_series(
        cast({{ min_date(-days_before) }} as timestamp),
        cast({{ max_date() }} as timestamp) - interval '1 day',
        interval '1 day'
    )
{%- endmacro %}

{# Weighted activity of a metrics row (weights are vars). #}
{% macro activity_score(prefix='') -%}
    ({{ var('weight_view') }} * {{ prefix }}views + {{ var('weight_copy') }} * {{ prefix }}copies
     + {{ var('weight_save') }} * {{ prefix }}saves + {{ var('weight_fork') }} * {{ prefix }}forks
     + {{ var('weight_vote') }} * {{ prefix }}votes)
{%- endmacro %}

{# The activity counts of a daily metrics row, summed over a group. #}
{% macro summed_activity() -%}
    {% for column in ['raw_views', 'views', 'copies', 'saves', 'forks', 'votes'] -%}
    cast(sum({{ column }}) as bigint) as {{ column }}{{ "," if not loop.last }}
    {% endfor %}
{%- endmacro %}
