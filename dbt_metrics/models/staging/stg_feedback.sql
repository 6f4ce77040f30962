select
    tenant_id,
    source_type,
    source_instance,
    external_id as feedback_id,
    rating,
    {{ utc_day('coalesce(created_at, updated_at, ingested_at)') }} as feedback_date,
    ingested_at
from {{ source('normalized', 'feedback') }}
