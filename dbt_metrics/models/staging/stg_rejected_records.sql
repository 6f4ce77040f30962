select
    tenant_id,
    source_type,
    source_instance,
    {{ utc_day('rejected_at') }} as rejected_date
from {{ source('normalized', 'rejected_records') }}
