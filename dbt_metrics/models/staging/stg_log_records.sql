select
    tenant_id,
    upload_id,
    coalesce(service, 'unknown') as service,
    upper(coalesce(level, 'UNKNOWN')) as level,
    {{ utc_day('ts') }} as log_date
from {{ source('normalized', 'log_records') }}
where ts is not null
