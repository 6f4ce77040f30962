with activity as (
    select
        tenant_id,
        author_id,
        metric_date,
        {{ summed_activity() }}
    from {{ ref('int_activity') }}
    where author_id is not null
    group by tenant_id, author_id, metric_date
),

donations as (
    -- Amounts in minor units, summed as they come (one currency per tenant is assumed).
    select
        tenant_id,
        author_id,
        payment_date as metric_date,
        count(*) as donation_count,
        cast(sum(amount) as bigint) as donation_amount
    from {{ ref('stg_payments') }}
    where status = 'succeeded' and author_id is not null and {{ in_window('payment_date') }}
    group by tenant_id, author_id, payment_date
)

select
    coalesce(a.tenant_id, d.tenant_id) as tenant_id,
    coalesce(a.author_id, d.author_id) as author_id,
    coalesce(a.metric_date, d.metric_date) as metric_date,
    coalesce(a.raw_views, 0) as raw_views,
    coalesce(a.views, 0) as views,
    coalesce(a.copies, 0) as copies,
    coalesce(a.saves, 0) as saves,
    coalesce(a.forks, 0) as forks,
    coalesce(a.votes, 0) as votes,
    cast(coalesce(d.donation_count, 0) as bigint) as donation_count,
    cast(coalesce(d.donation_amount, 0) as bigint) as donation_amount
from activity as a
full outer join donations as d
    on a.tenant_id = d.tenant_id and a.author_id = d.author_id and a.metric_date = d.metric_date
