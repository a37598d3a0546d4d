/* ---
description: >
  Dimension scores and weights, one row per company, period and success dimension (all
  nine dimensions for every company). Dimension score = mean of the dimension's non-null
  metric scores; null when none of them has a score. The weight is the company's effective
  weight from the registry (0 when the registry holds none).
columns:
  company_id: Registry id of the company.
  segment: craft or corporation.
  period_type: week or month.
  period_start: First day of the period.
  dimension: reach, growth, engagement, liveliness, sympathy, relationships, efficiency, findability
    or image.
  weight: The company's weight for the dimension (its goals; defaults when it has none).
  dimension_score: Mean of the dimension's non-null metric scores (0-100); null when none.
--- */
with

spine as (
    select
        company_id,
        segment,
        period_type,
        period_start
    from intermediate.int_company_periods_joined
),

definitions as (
    select distinct dimension
    from intermediate.int_metrics_defined
    where dimension is not null
),

scores as (
    select
        company_id,
        period_type,
        period_start,
        dimension,
        metric_score
    from intermediate.int_metric_scores
    where dimension is not null
),

weights as (
    select
        company_id,
        dimension,
        weight
    from staging.stg_company_weights
),

dimension_means as (
    select
        company_id,
        period_type,
        period_start,
        dimension,
        avg(metric_score) as dimension_score
    from scores
    group by company_id, period_type, period_start, dimension
),

joined as (
    -- column order = the documented output order
    select  -- noqa: ST06
        spine.company_id,
        spine.segment,
        spine.period_type,
        spine.period_start,
        definitions.dimension,
        coalesce(weights.weight, 0) as weight,
        dimension_means.dimension_score
    from spine
    cross join definitions
    left join weights
        on
            spine.company_id = weights.company_id
            and definitions.dimension = weights.dimension
    left join dimension_means
        on
            spine.company_id = dimension_means.company_id
            and spine.period_type = dimension_means.period_type
            and spine.period_start = dimension_means.period_start
            and definitions.dimension = dimension_means.dimension
)

select * from joined
