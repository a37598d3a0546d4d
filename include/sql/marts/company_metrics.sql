/* ---
description: >
  The measurement contract (METRICS.md) per company and period, one row per company of
  the registry and period (every ISO week and calendar month of the data). Counts are 0
  when nothing happened; rates, shares and medians with nothing to average are null.
columns:
  company_id: Registry id of the company.
  company_name: Display name of the company.
  segment: craft or corporation.
  period_type: week (ISO week, Monday 00:00 UTC) or month (calendar month).
  period_start: First day of the period (inclusive).
  period_end: First day after the period (exclusive).
  is_complete: True when period_end is at or before the latest account snapshot (the period is fully
    observed).
  followers: The company's followers at period end, sum over its accounts of each account's state at
    period end (rules 1, 2); null without any snapshot.
  follower_growth_weekly: (F_end / F_start)^(7 / d) - 1 with d the days between the snapshots used;
    null if d = 0 or F_start = 0 (Fanpage Karma growth).
  posts_per_week: Own original posts created in the period x 7 / days in period (0 without posts).
  interactions: Sum over own original posts created in the period of likes + replies + reposts +
    quotes, state at period end.
  engagement_rate: Mean over own original posts created in the period of interactions / followers of
    that account at post time; null without posts (Rival IQ engagement rate per post by follower).
  likes_per_1k: Mean over the same posts of likes / followers at post time x 1000.
  service_level: Share of third-party direct replies to the company's posts or answers, created in
    the period, that got a reply from any of the company's accounts; null without such replies.
  response_hours_median: Median hours from a third-party reply under the company's posts (created in
    the period) to the company's first reply to it, over answered ones; any third-party reply
    counts, not only direct ones (Fanpage Karma response time).
  unique_interactors: Distinct third-party authors of replies under the company's posts in the
    period (0 when none).
  repeat_interactor_share: Share of those authors with 2 or more replies in the period; null without
    authors.
  interactions_per_effort_hour: interactions / (effort_hours_per_week x days / 7); interactions per
    post when no effort is configured (null without posts then).
  probe_answer_rate: Share of the probes sent in the period that got an answer; null without probes.
  probe_response_hours_median: Median hours from sending to the answer over answered probes sent in
    the period.
  findability: Manual findability value (0-100) for the period.
  image: Manual image value (0-100) for the period.
--- */
with

metrics as (
    select
        company_id,
        company_name,
        segment,
        period_type,
        period_start,
        period_end,
        is_complete,
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
    from intermediate.int_company_metrics_computed
),

final as (
    select
        company_id,
        company_name,
        segment,
        period_type,
        period_start,
        period_end,
        is_complete,
        followers::bigint as followers,
        follower_growth_weekly::double as follower_growth_weekly,
        posts_per_week::double as posts_per_week,
        interactions::bigint as interactions,
        engagement_rate::double as engagement_rate,
        likes_per_1k::double as likes_per_1k,
        service_level::double as service_level,
        response_hours_median::double as response_hours_median,
        unique_interactors::bigint as unique_interactors,
        repeat_interactor_share::double as repeat_interactor_share,
        interactions_per_effort_hour::double as interactions_per_effort_hour,
        probe_answer_rate::double as probe_answer_rate,
        probe_response_hours_median::double as probe_response_hours_median,
        findability::double as findability,
        image::double as image
    from metrics
)

select * from final
