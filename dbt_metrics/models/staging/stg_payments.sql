select
    tenant_id,
    payment_id,
    author_id,
    item_id,
    amount,
    lower(currency) as currency,
    status,
    {{ utc_day('created_at') }} as payment_date
from {{ source('normalized', 'payments') }}
