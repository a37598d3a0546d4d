/* ---
description: >
  What is normal in a segment, one row per segment, period and metric: the number of
  companies with a value and the continuous quartiles of their values (linear
  interpolation, as DuckDB's quantile_cont). Published only when n >= 3.
columns:
  segment: craft or corporation.
  period_type: week or month.
  period_start: First day of the period (inclusive).
  period_end: First day after the period (exclusive).
  metric: Metric name, as the column of marts.company_metrics.
  n: Companies of the segment with a value for the metric in the period (at least 3).
  p25: First quartile (continuous) of the values.
  median: Median (continuous) of the values.
  p75: Third quartile (continuous) of the values.
--- */
with

metric_values as (
    select
        segment,
        period_type,
        period_start,
        period_end,
        metric,
        metric_value
    from intermediate.int_metric_scores
),

benchmarks as (
    select
        segment,
        period_type,
        period_start,
        period_end,
        metric,
        count(metric_value) as n,
        quantile_cont(metric_value, 0.25) as p25,
        median(metric_value) as median,
        quantile_cont(metric_value, 0.75) as p75
    from metric_values
    group by segment, period_type, period_start, period_end, metric
    having count(metric_value) >= 3
)

select * from benchmarks
