/* ---
description: >
  Every metric value and its score in long format, one row per company, period and metric
  (null values kept). Metric score = 100 x percent_rank of the value among the companies of
  the same segment and period that have a value, (rank - 1) / (n - 1), ties sharing the lower
  rank; null when the value is null or fewer than 3 companies of the segment have a value.
  Ranking is on round(signed value, 10), so values that are equal up to float noise tie
  (3/20 and the mean of 1/10 and 2/10 differ in the last bit). Lower-is-better metrics are
  reversed by ranking on the negated value (descending order), not by 100 minus the
  ascending score: ties share the lower rank of the reversed order, so response hours 1, 1, 3
  score 50, 50, 0 (100 minus the ascending score would give 100, 100, 0).
columns:
  company_id: Registry id of the company.
  segment: craft or corporation.
  period_type: week or month.
  period_start: First day of the period.
  period_end: First day after the period (exclusive).
  is_complete: True when the period ended at or before the latest account snapshot.
  metric: Metric name (see intermediate.int_metrics_defined).
  dimension: Success dimension the metric counts towards; null when none.
  higher_is_better: False when lower values score higher.
  metric_value: The metric's value (as double); null when there was nothing to measure.
  peers_with_value: Companies of the segment with a value for this metric and period (the company
    included).
  metric_score: 100 x percent_rank within segment, period and metric (0-100); null when metric_value
    is null or peers_with_value < 3.
--- */
with

metrics as (
    select
        company_id,
        segment,
        period_type,
        period_start,
        period_end,
        is_complete,
        followers::double as followers,
        follower_growth_weekly::double as follower_growth_weekly,
        posts_per_week::double as posts_per_week,
        interactions::double as interactions,
        engagement_rate::double as engagement_rate,
        likes_per_1k::double as likes_per_1k,
        service_level::double as service_level,
        response_hours_median::double as response_hours_median,
        unique_interactors::double as unique_interactors,
        repeat_interactor_share::double as repeat_interactor_share,
        interactions_per_effort_hour::double as interactions_per_effort_hour,
        probe_answer_rate::double as probe_answer_rate,
        probe_response_hours_median::double as probe_response_hours_median,
        findability::double as findability,
        image::double as image
    from intermediate.int_company_metrics_computed
),

definitions as (
    select
        metric,
        dimension,
        higher_is_better
    from intermediate.int_metrics_defined
),

unpivoted as (
    select
        company_id,
        segment,
        period_type,
        period_start,
        period_end,
        is_complete,
        metric,
        metric_value
    from metrics
    unpivot include nulls (
        metric_value for metric in (
            followers,
            follower_growth_weekly,
            posts_per_week,
            interactions,
            engagement_rate,
            likes_per_1k,
            service_level,
            response_hours_median,
            unique_interactors,
            repeat_interactor_share,
            interactions_per_effort_hour,
            probe_answer_rate,
            probe_response_hours_median,
            findability,
            image
        )
    )
),

defined as (
    select
        unpivoted.company_id,
        unpivoted.segment,
        unpivoted.period_type,
        unpivoted.period_start,
        unpivoted.period_end,
        unpivoted.is_complete,
        unpivoted.metric,
        definitions.dimension,
        definitions.higher_is_better,
        unpivoted.metric_value,
        -- signed so that ascending order is worst to best; rounded so float noise ties
        round(
            case
                when definitions.higher_is_better then unpivoted.metric_value
                else -unpivoted.metric_value
            end,
            10
        ) as ranking_value
    from unpivoted
    inner join definitions
        on unpivoted.metric = definitions.metric
),

ranked as (
    select
        company_id,
        segment,
        period_type,
        period_start,
        period_end,
        is_complete,
        metric,
        dimension,
        higher_is_better,
        metric_value,
        count(metric_value) over (
            partition by segment, period_type, period_start, metric
        ) as peers_with_value,
        percent_rank() over (
            partition by segment, period_type, period_start, metric, metric_value is null
            order by ranking_value asc
        ) as value_percent_rank
    from defined
),

scored as (
    select
        company_id,
        segment,
        period_type,
        period_start,
        period_end,
        is_complete,
        metric,
        dimension,
        higher_is_better,
        metric_value,
        peers_with_value,
        case
            when metric_value is not null and peers_with_value >= 3
                then 100 * value_percent_rank
        end as metric_score
    from ranked
)

select * from scored
