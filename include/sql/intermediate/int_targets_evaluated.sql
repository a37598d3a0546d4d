/* ---
description: >
  The company's targets checked against its metric values, one row per target and period.
  A target is evaluated only when its metric has a value in that period (a null is neither
  met nor missed).
columns:
  company_id: Registry id of the company.
  period_type: week or month.
  period_start: First day of the period.
  metric: The metric the target is set on.
  op: Comparison, one of >=, <=, >, <.
  target: The target value.
  metric_value: The metric's value in the period; null when there was nothing to measure.
  is_evaluated: True when metric_value is not null.
  is_met: True when metric_value op target holds; null when not evaluated.
--- */
with

targets as (
    select
        company_id,
        metric,
        op,
        target
    from staging.stg_company_targets
),

metric_values as (
    select
        company_id,
        period_type,
        period_start,
        metric,
        metric_value
    from intermediate.int_metric_scores
),

evaluated as (
    select
        targets.company_id,
        metric_values.period_type,
        metric_values.period_start,
        targets.metric,
        targets.op,
        targets.target,
        metric_values.metric_value,
        metric_values.metric_value is not null as is_evaluated,
        case targets.op
            when '>=' then metric_values.metric_value >= targets.target
            when '<=' then metric_values.metric_value <= targets.target
            when '>' then metric_values.metric_value > targets.target
            when '<' then metric_values.metric_value < targets.target
        end as is_met
    from targets
    inner join metric_values
        on
            targets.company_id = metric_values.company_id
            and targets.metric = metric_values.metric
)

select * from evaluated
