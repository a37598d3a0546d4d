/* ---
description: >
  Success against the company's own goals and its segment, one row per company and period.
  Success index = sum(weight x dimension score) / sum(weight) over the dimensions that have
  a score (dimensions weighted 0 do not count); null when no weighted dimension has a score,
  and in periods that are not observed (METRICS.md rule 8: a company without data is never
  scored).
  Goal attainment = targets met / targets evaluated, where a target is evaluated when its
  metric has a value in the period (a null metric is neither met nor missed); null when no
  target could be evaluated (including companies without targets).
columns:
  company_id: Registry id of the company.
  company_name: Display name of the company.
  segment: craft or corporation.
  period_type: week or month.
  period_start: First day of the period (inclusive).
  period_end: First day after the period (exclusive).
  is_complete: True when the period ended at or before the latest account snapshot.
  is_observed: True when one of the company's current accounts was fetched so that the period was
    looked at (rule 8); the success index is null when false.
  reach_score: Dimension score (mean of metric scores, 0-100) of followers.
  growth_score: Dimension score of follower_growth_weekly.
  engagement_score: Dimension score of engagement_rate.
  liveliness_score: Mean of the scores of posts_per_week, service_level, response_hours_median
    (reversed) and probe_answer_rate.
  sympathy_score: Dimension score of likes_per_1k.
  relationships_score: Mean of the scores of unique_interactors and repeat_interactor_share.
  efficiency_score: Dimension score of interactions_per_effort_hour.
  findability_score: Dimension score of findability.
  image_score: Dimension score of image.
  success_index: Sum(weight x dimension score) / sum(weight) over the dimensions with a score and
    weight > 0 (0-100); null when none, and when the period is not observed.
  goal_attainment: targets_met / targets_evaluated; null when no target could be evaluated.
  targets_met: Targets whose metric value satisfied the target in the period.
  targets_evaluated: Targets whose metric has a value in the period.
  segment_rank: Rank by success_index (descending, nulls last) among the companies of the segment in
    the period; ties share a rank.
--- */
with

spine as (
    select
        company_id,
        company_name,
        segment,
        period_type,
        period_start,
        period_end,
        is_complete,
        is_observed
    from intermediate.int_company_periods_joined
),

dimension_scores as (
    select
        company_id,
        period_type,
        period_start,
        dimension,
        weight,
        dimension_score
    from intermediate.int_dimension_scores
),

targets as (
    select
        company_id,
        period_type,
        period_start,
        is_evaluated,
        is_met
    from intermediate.int_targets_evaluated
),

indexed as (
    select
        company_id,
        period_type,
        period_start,
        max(dimension_score) filter (where dimension = 'reach') as reach_score,
        max(dimension_score) filter (where dimension = 'growth') as growth_score,
        max(dimension_score) filter (where dimension = 'engagement') as engagement_score,
        max(dimension_score) filter (where dimension = 'liveliness') as liveliness_score,
        max(dimension_score) filter (where dimension = 'sympathy') as sympathy_score,
        max(dimension_score) filter (where dimension = 'relationships') as relationships_score,
        max(dimension_score) filter (where dimension = 'efficiency') as efficiency_score,
        max(dimension_score) filter (where dimension = 'findability') as findability_score,
        max(dimension_score) filter (where dimension = 'image') as image_score,
        -- scored dimensions only; weight-0 dimensions add nothing, all-0 weights give null
        sum(weight * dimension_score)
        / nullif(sum(weight) filter (where dimension_score is not null), 0) as success_index
    from dimension_scores
    group by company_id, period_type, period_start
),

attainment as (
    select
        company_id,
        period_type,
        period_start,
        count(*) filter (where is_met) as targets_met,
        count(*) filter (where is_evaluated) as targets_evaluated
    from targets
    group by company_id, period_type, period_start
),

joined as (
    select
        spine.company_id,
        spine.company_name,
        spine.segment,
        spine.period_type,
        spine.period_start,
        spine.period_end,
        spine.is_complete,
        spine.is_observed,
        indexed.reach_score,
        indexed.growth_score,
        indexed.engagement_score,
        indexed.liveliness_score,
        indexed.sympathy_score,
        indexed.relationships_score,
        indexed.efficiency_score,
        indexed.findability_score,
        indexed.image_score,
        case when spine.is_observed then indexed.success_index end as success_index,
        coalesce(attainment.targets_met, 0) as targets_met,
        coalesce(attainment.targets_evaluated, 0) as targets_evaluated
    from spine
    left join indexed
        on
            spine.company_id = indexed.company_id
            and spine.period_type = indexed.period_type
            and spine.period_start = indexed.period_start
    left join attainment
        on
            spine.company_id = attainment.company_id
            and spine.period_type = attainment.period_type
            and spine.period_start = attainment.period_start
),

final as (
    -- column order = the documented output order
    select  -- noqa: ST06
        company_id,
        company_name,
        segment,
        period_type,
        period_start,
        period_end,
        is_complete,
        is_observed,
        reach_score::double as reach_score,
        growth_score::double as growth_score,
        engagement_score::double as engagement_score,
        liveliness_score::double as liveliness_score,
        sympathy_score::double as sympathy_score,
        relationships_score::double as relationships_score,
        efficiency_score::double as efficiency_score,
        findability_score::double as findability_score,
        image_score::double as image_score,
        success_index::double as success_index,
        (targets_met / nullif(targets_evaluated, 0))::double as goal_attainment,
        targets_met::bigint as targets_met,
        targets_evaluated::bigint as targets_evaluated,
        -- rounded so that float noise ties (the mean's last bit depends on the order in
        -- which a parallel aggregate added it up)
        rank() over (
            partition by segment, period_type, period_start
            order by round(success_index, 10) desc nulls last
        ) as segment_rank
    from joined
)

select * from final
