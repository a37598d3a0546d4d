/* ---
description: >
  Values measured by hand (survey, search checks), one row per company, metric and
  period_start, from the latest observation.
columns:
  company_id: Registry id of the company.
  metric: findability or image.
  period_start: First day of the ISO week or calendar month measured.
  metric_value: Value 0-100.
  observed_at: When the value was recorded (UTC).
--- */
with

source as (
    select
        company_id,
        metric,
        period_start,
        value,
        observed_at
    from raw.manual_metrics
),

latest as (
    select
        company_id::varchar as company_id,
        metric::varchar as metric,
        period_start::date as period_start,
        value::double as metric_value,
        observed_at::timestamp as observed_at
    from source
    qualify row_number() over (
        partition by company_id, metric, period_start
        order by observed_at desc
    ) = 1
)

select * from latest
