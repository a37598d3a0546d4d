/* ---
description: >
  The metrics of METRICS.md and how they are scored, one row per metric: the success
  dimension each belongs to and whether higher values are better. interactions and
  probe_response_hours_median are reported, benchmarked and may carry targets, but belong
  to no dimension (METRICS.md's dimension table does not list them).
columns:
  metric: Metric name, as the column of marts.company_metrics.
  dimension: Success dimension the metric's score counts towards; null when none.
  higher_is_better: False for response times (lower is better, the score is reversed).
--- */
with

definitions as (
    select
        defined.metric,
        defined.dimension,
        defined.higher_is_better
    from (
        values
        ('followers', 'reach', true),
        ('follower_growth_weekly', 'growth', true),
        ('posts_per_week', 'liveliness', true),
        ('interactions', null, true),
        ('engagement_rate', 'engagement', true),
        ('likes_per_1k', 'sympathy', true),
        ('service_level', 'liveliness', true),
        ('response_hours_median', 'liveliness', false),
        ('unique_interactors', 'relationships', true),
        ('repeat_interactor_share', 'relationships', true),
        ('interactions_per_effort_hour', 'efficiency', true),
        ('probe_answer_rate', 'liveliness', true),
        ('probe_response_hours_median', null, false),
        ('findability', 'findability', true),
        ('image', 'image', true)
    ) as defined (metric, dimension, higher_is_better)
),

typed as (
    select
        metric::varchar as metric,
        dimension::varchar as dimension,
        higher_is_better::boolean as higher_is_better
    from definitions
)

select * from typed
