select
    tenant_id,
    source_type,
    source_instance,
    event_id,
    upper(event_type) as event_type,
    occurred_at,
    {{ utc('occurred_at') }} as occurred_at_utc,
    {{ utc_day('occurred_at') }} as event_date,
    item_id,
    author_id,
    actor_id,
    ip,
    session_id,
    ingested_at
from {{ source('normalized', 'events') }}
