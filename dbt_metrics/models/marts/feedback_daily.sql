select
    tenant_id,
    source_type,
    feedback_date as metric_date,
    count(*) as feedback_count,
    count(rating) as rated_count,
    avg(cast(rating as double precision)) as avg_rating
from {{ ref('stg_feedback') }}
where {{ in_window('feedback_date') }}
group by tenant_id, source_type, feedback_date
