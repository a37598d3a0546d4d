/* ---
description: >
  The targets companies set for single metrics, one row per company and target
  (e.g. posts_per_week >= 3).
columns:
  company_id: Registry id of the company.
  metric: The metric the target is set on (a metric of METRICS.md).
  op: Comparison the metric value must satisfy, one of >=, <=, >, <.
  target: The target value.
--- */
with

source as (
    select
        company_id,
        metric,
        op,
        target
    from ref.company_targets
),

renamed as (
    select
        company_id::varchar as company_id,
        metric::varchar as metric,
        op::varchar as op,
        target::double as target  -- noqa: RF04
    from source
)

select * from renamed
