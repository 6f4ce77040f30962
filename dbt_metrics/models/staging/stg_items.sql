select
    tenant_id,
    source_type,
    source_instance,
    external_id as item_id,
    title,
    url,
    author,
    published_at,
    updated_at,
    ingested_at
from {{ source('normalized', 'items') }}
