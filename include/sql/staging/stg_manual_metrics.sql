/* ---
description: >
  Values measured by hand (survey, search checks), one row per company, metric, period_type
  and period_start (the loader replaces a value by key: the latest observation). A date
  that is both a Monday and the 1st of a month can carry a week value and a month value;
  period_type keeps them apart.
columns:
  company_id: Registry id of the company.
  metric: findability or image.
  period_type: week (ISO week) or month (calendar month) the value was measured for.
  period_start: First day of the ISO week or calendar month measured.
  metric_value: Value 0-100.
  observed_at: When the value was recorded (UTC).
--- */
with

source as (
    select
        company_id,
        metric,
        period_type,
        period_start,
        value,
        observed_at
    from raw.manual_metrics
),

renamed as (
    select
        company_id::varchar as company_id,
        metric::varchar as metric,
        period_type::varchar as period_type,
        period_start::date as period_start,
        value::double as metric_value,
        observed_at::timestamp as observed_at
    from source
)

select * from renamed
