/* ---
description: >
  Every metric of METRICS.md per company and period, one row per company and period (week
  and month). Counts are 0 when nothing happened; rates, shares and medians with nothing to
  average are null (rule 7). In a period that is not observed (rule 8) every metric computed
  from platform data is null, counts included; probes and manual metrics are unaffected.
  Also carries the counts the rates are built from.
columns:
  company_id: Registry id of the company.
  company_name: Display name of the company.
  segment: craft or corporation.
  period_type: week or month.
  period_start: First day of the period (inclusive).
  period_end: First day after the period (exclusive).
  days_in_period: Days in the period.
  is_complete: True when the period ended at or before the latest account snapshot.
  is_observed: True when one of the company's current accounts was fetched so that the period was
    looked at (rule 8); platform metrics are null when false.
  own_posts: Own original posts created in the period.
  direct_replies: Third-party replies to the company's posts or answers created in the period
    (service_level denominator).
  answered_replies: Those of direct_replies the company answered.
  probes_sent: Probes sent to the company in the period.
  probes_answered: Those of probes_sent that got an answer.
  followers: The company's followers at period end, sum over its current accounts that have
    followers (rules 1, 2); null without any such snapshot.
  follower_growth_weekly: (F_end / F_start)^(7 / d) - 1 over the accounts seen again in the period
    (rule 2); null without such an account or when F_start = 0.
  posts_per_week: Own original posts created in the period x 7 / days in period.
  interactions: Sum over own original posts created in the period of likes + replies + reposts +
    quotes at period end.
  engagement_rate: Mean over own original posts of interactions / followers of that account at post
    time; posts at 0 followers left out; null without posts.
  likes_per_1k: Mean over the same posts of likes / followers at post time x 1000; posts whose
    likes are hidden (null) are left out of the mean.
  service_level: Share of third-party direct replies created in the period that got a reply from any
    of the company's accounts.
  response_hours_median: Median hours from a third-party reply under the company's posts created in
    the period to the company's first reply to it, over answered ones (any third-party reply, not
    only direct ones).
  unique_interactors: Distinct third-party authors (platform, id) of replies created in the period
    in threads whose root is an original of the company.
  repeat_interactor_share: Share of those authors with 2 or more replies in the period.
  interactions_per_effort_hour: interactions / (effort_hours_per_week x days / 7); 0 in an observed
    period without own posts; null when the company states no effort.
  probe_answer_rate: Share of probes sent in the period that got an answer.
  probe_response_hours_median: Median hours from sent_at to answered_at over answered probes sent in
    the period.
  findability: Manual findability value (0-100) measured for this period (same period_type and
    period_start).
  image: Manual image value (0-100) measured for this period (same period_type and period_start).
--- */
with

spine as (
    select
        company_id,
        company_name,
        segment,
        effort_hours_per_week,
        period_type,
        period_start,
        period_end,
        days_in_period,
        is_complete,
        is_observed
    from intermediate.int_company_periods_joined
),

periods as (
    select
        period_type,
        period_start,
        start_at,
        end_at
    from intermediate.int_periods_generated
),

followers as (
    select
        company_id,
        period_type,
        period_start,
        followers_end,
        follower_growth_weekly
    from intermediate.int_company_followers_measured
),

posts as (
    select
        company_id,
        period_type,
        period_start,
        likes,
        interactions,
        followers_at_post
    from intermediate.int_posts_measured
),

replies as (
    select
        company_id,
        platform,
        author_id,
        created_at,
        is_third_party,
        is_direct,
        is_in_original_thread,
        first_answer_at,
        response_hours
    from intermediate.int_replies_classified
),

probes as (
    select
        company_id,
        sent_at,
        answered_at
    from staging.stg_probes
),

manual_metrics as (
    select
        company_id,
        metric,
        period_type,
        period_start,
        metric_value
    from staging.stg_manual_metrics
),

post_stats as (
    select
        company_id,
        period_type,
        period_start,
        count(*) as own_posts,
        sum(interactions) as interactions,
        avg(interactions / followers_at_post)
        filter (where followers_at_post > 0) as engagement_rate,
        avg(likes / followers_at_post * 1000)
        filter (where followers_at_post > 0) as likes_per_1k
    from posts
    group by company_id, period_type, period_start
),

third_party_replies as (
    select
        replies.company_id,
        replies.platform,
        replies.author_id,
        replies.is_direct,
        replies.is_in_original_thread,
        replies.first_answer_at,
        replies.response_hours,
        periods.period_type,
        periods.period_start
    from replies
    inner join periods
        on
            replies.created_at >= periods.start_at
            and replies.created_at < periods.end_at
    where replies.is_third_party
),

reply_stats as (
    select
        company_id,
        period_type,
        period_start,
        count(*) filter (where is_direct) as direct_replies,
        count(*) filter (
            where is_direct and first_answer_at is not null
        ) as answered_replies,
        -- every answered third-party reply, direct or not (unanswered ones are null)
        median(response_hours) as response_hours_median
    from third_party_replies
    group by company_id, period_type, period_start
),

authors as (
    select
        company_id,
        period_type,
        period_start,
        platform,
        author_id,
        count(*) as author_replies
    from third_party_replies
    where is_in_original_thread
    group by company_id, period_type, period_start, platform, author_id
),

author_stats as (
    select
        company_id,
        period_type,
        period_start,
        count(*) as unique_interactors,
        count(*) filter (where author_replies >= 2) / count(*) as repeat_interactor_share
    from authors
    group by company_id, period_type, period_start
),

probe_stats as (
    select
        probes.company_id,
        periods.period_type,
        periods.period_start,
        count(*) as probes_sent,
        count(probes.answered_at) as probes_answered,
        median(
            (epoch(probes.answered_at) - epoch(probes.sent_at)) / 3600.0
        ) as probe_response_hours_median
    from probes
    inner join periods
        on
            probes.sent_at >= periods.start_at
            and probes.sent_at < periods.end_at
    group by probes.company_id, periods.period_type, periods.period_start
),

manual_stats as (
    select
        company_id,
        period_type,
        period_start,
        max(metric_value) filter (where metric = 'findability') as findability,
        max(metric_value) filter (where metric = 'image') as image
    from manual_metrics
    group by company_id, period_type, period_start
),

computed as (
    -- column order = the documented output order; platform metrics only where observed
    select  -- noqa: ST06
        spine.company_id,
        spine.company_name,
        spine.segment,
        spine.period_type,
        spine.period_start,
        spine.period_end,
        spine.days_in_period,
        spine.is_complete,
        spine.is_observed,
        case when spine.is_observed then coalesce(post_stats.own_posts, 0) end as own_posts,
        case
            when spine.is_observed then coalesce(reply_stats.direct_replies, 0)
        end as direct_replies,
        case
            when spine.is_observed then coalesce(reply_stats.answered_replies, 0)
        end as answered_replies,
        coalesce(probe_stats.probes_sent, 0) as probes_sent,
        coalesce(probe_stats.probes_answered, 0) as probes_answered,
        case when spine.is_observed then followers.followers_end end as followers,
        case
            when spine.is_observed then followers.follower_growth_weekly
        end as follower_growth_weekly,
        case
            when spine.is_observed
                then coalesce(post_stats.own_posts, 0) * 7.0 / spine.days_in_period
        end as posts_per_week,
        case
            when spine.is_observed then coalesce(post_stats.interactions, 0)::bigint
        end as interactions,
        case when spine.is_observed then post_stats.engagement_rate end as engagement_rate,
        case when spine.is_observed then post_stats.likes_per_1k end as likes_per_1k,
        case
            when spine.is_observed
                then reply_stats.answered_replies / nullif(reply_stats.direct_replies, 0)
        end as service_level,
        case
            when spine.is_observed then reply_stats.response_hours_median
        end as response_hours_median,
        case
            when spine.is_observed then coalesce(author_stats.unique_interactors, 0)
        end as unique_interactors,
        case
            when spine.is_observed then author_stats.repeat_interactor_share
        end as repeat_interactor_share,
        -- effort stated: 0 when nothing was posted (rule 9); no effort: null (never per post)
        case
            when spine.is_observed and spine.effort_hours_per_week > 0
                then
                    coalesce(post_stats.interactions, 0)
                    / (spine.effort_hours_per_week * spine.days_in_period / 7.0)
        end as interactions_per_effort_hour,
        probe_stats.probes_answered / nullif(probe_stats.probes_sent, 0) as probe_answer_rate,
        probe_stats.probe_response_hours_median,
        manual_stats.findability,
        manual_stats.image
    from spine
    left join followers
        on
            spine.company_id = followers.company_id
            and spine.period_type = followers.period_type
            and spine.period_start = followers.period_start
    left join post_stats
        on
            spine.company_id = post_stats.company_id
            and spine.period_type = post_stats.period_type
            and spine.period_start = post_stats.period_start
    left join reply_stats
        on
            spine.company_id = reply_stats.company_id
            and spine.period_type = reply_stats.period_type
            and spine.period_start = reply_stats.period_start
    left join author_stats
        on
            spine.company_id = author_stats.company_id
            and spine.period_type = author_stats.period_type
            and spine.period_start = author_stats.period_start
    left join probe_stats
        on
            spine.company_id = probe_stats.company_id
            and spine.period_type = probe_stats.period_type
            and spine.period_start = probe_stats.period_start
    left join manual_stats
        on
            spine.company_id = manual_stats.company_id
            and spine.period_type = manual_stats.period_type
            and spine.period_start = manual_stats.period_start
)

select * from computed
