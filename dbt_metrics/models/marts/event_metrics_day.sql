-- depends_on: {{ ref('stg_events') }}
{{ event_metrics('day') }}
