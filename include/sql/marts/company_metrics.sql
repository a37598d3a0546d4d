/* ---
description: >
  The measurement contract (METRICS.md) per company and period, one row per company of
  the registry and period (every ISO week and calendar month of the data). Counts are 0
  when nothing happened; rates, shares and medians with nothing to average are null. In a
  period that is not observed (no fetch of the company's current accounts looked at it,
  rule 8) every platform metric is null, counts and followers included.
columns:
  company_id: Registry id of the company.
  company_name: Display name of the company.
  segment: craft or corporation.
  period_type: week (ISO week, Monday 00:00 UTC) or month (calendar month).
  period_start: First day of the period (inclusive).
  period_end: First day after the period (exclusive).
  is_complete: True when period_end is at or before the latest account snapshot (the period is over
    for the data).
  is_observed: True when one of the company's current accounts has a snapshot taken at or after the
    period's start by a fetch that read posts created before its end (observed_at in [start, end +
    L) for a fetch re-reading L days; METRICS.md rule 8). When false, every platform metric is null.
  followers: The company's followers at period end, sum over the accounts the registry lists now of
    each account's state at period end (rules 1, 2; feeds have none and are left out); null without
    any snapshot with followers.
  follower_growth_weekly: (F_end / F_start)^(7 / d) - 1 over the accounts seen again in the period
    (snapshot used at the end later than the one used at the start), d = days from the earliest of
    their start snapshots to the latest of their end snapshots; null without such an account or
    when F_start = 0 (Fanpage Karma growth).
  posts_per_week: Own original posts created in the period x 7 / days in period (0 without posts).
  interactions: Sum over own original posts created in the period of likes + replies + reposts +
    quotes, state at period end.
  engagement_rate: Mean over own original posts created in the period of interactions / followers of
    that account at post time; null without posts (Rival IQ engagement rate per post by follower).
  likes_per_1k: Mean over the same posts of likes / followers at post time x 1000; posts whose
    likes are hidden (null) are left out of the mean.
  service_level: Share of third-party direct replies (to an original or reply of the company or to
    one of its answers, never to a repost), created in the period, that got a reply from any of the
    company's accounts; null without such replies.
  response_hours_median: Median hours from a third-party reply created in the period anywhere in the
    company's threads to the company's first reply to it, over the answered ones; any third-party
    reply counts, not only direct ones (Fanpage Karma response time).
  unique_interactors: Distinct third-party authors (platform, id) of replies created in the period
    in threads whose root is an original of the company (0 when none).
  repeat_interactor_share: Share of those authors with 2 or more replies in the period; null without
    authors.
  interactions_per_effort_hour: interactions / (effort_hours_per_week x days / 7); 0 in an observed
    period without own posts; null when the company states no effort (a per-post figure would be
    ranked against per-hour ones).
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
        is_observed,
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
        is_observed,
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
