/* ---
description: >
  The company's own posts (kind original, rule 3, of the accounts the registry lists now,
  rule 2) with their counts at the end of the period they were created in and their
  account's followers at post time, one row per post and period type (each post falls in
  exactly one week and one month).
columns:
  company_id: Registry id of the company.
  platform: Platform the post is on.
  post_id: The platform's id of the post.
  account_id: The company account that published the post.
  created_at: When the post was published (UTC).
  period_type: week or month.
  period_start: First day of the period the post was created in.
  likes: Likes at period end (state at period end, rule 1); null where the platform hides them.
  replies: Replies at period end.
  reposts: Reposts at period end.
  quotes: Quotes at period end.
  interactions: likes + replies + reposts + quotes at period end (hidden likes add 0, rule 4).
  counts_observed_at: The observation the counts come from.
  followers_at_post: The account's followers at created_at (latest snapshot at or before, else the
    earliest after; rule 4); null for a feed, which has no followers.
--- */
with

accounts_current as (
    select
        company_id,
        platform,
        account_id
    from intermediate.int_accounts_current
),

posts as (
    -- own posts: originals of the accounts the registry lists now (rules 2 and 3)
    select
        stg_posts.platform,
        stg_posts.post_id,
        stg_posts.account_id,
        accounts_current.company_id,
        stg_posts.created_at
    from staging.stg_posts
    inner join accounts_current
        on
            stg_posts.platform = accounts_current.platform
            and stg_posts.account_id = accounts_current.account_id
    where stg_posts.kind = 'original'
),

observations as (
    select
        platform,
        post_id,
        observed_at,
        likes,
        replies,
        reposts,
        quotes
    from staging.stg_post_observations
),

snapshots as (
    select
        platform,
        account_id,
        observed_at,
        followers
    from staging.stg_account_snapshots
),

periods as (
    select
        period_type,
        period_start,
        start_at,
        end_at
    from intermediate.int_periods_generated
),

post_periods as (
    select
        posts.company_id,
        posts.platform,
        posts.post_id,
        posts.account_id,
        posts.created_at,
        periods.period_type,
        periods.period_start,
        periods.end_at
    from posts
    inner join periods
        on
            posts.created_at >= periods.start_at
            and posts.created_at < periods.end_at
),

counts_at_end as (
    -- the latest observation at or before the period end, else the earliest after it:
    -- one hash join and aggregate (a post has at most one observation per fetch within its
    -- lookback), four times cheaper than two as-of joins (docs/benchmarks.md)
    select
        post_periods.company_id,
        post_periods.platform,
        post_periods.post_id,
        post_periods.account_id,
        post_periods.created_at,
        post_periods.period_type,
        post_periods.period_start,
        arg_min(
            {
                'observed_at': observations.observed_at,
                'likes': observations.likes,
                'replies': observations.replies,
                'reposts': observations.reposts,
                'quotes': observations.quotes
            },
            (
                observations.observed_at > post_periods.end_at,
                case
                    when observations.observed_at <= post_periods.end_at
                        then -epoch_us(observations.observed_at)
                    else epoch_us(observations.observed_at)
                end
            )
        ) as counts
    from post_periods
    inner join observations
        on
            post_periods.platform = observations.platform
            and post_periods.post_id = observations.post_id
    group by
        post_periods.company_id,
        post_periods.platform,
        post_periods.post_id,
        post_periods.account_id,
        post_periods.created_at,
        post_periods.period_type,
        post_periods.period_start
),

followers_at_or_before_post as (
    select
        counts_at_end.company_id,
        counts_at_end.platform,
        counts_at_end.post_id,
        counts_at_end.account_id,
        counts_at_end.created_at,
        counts_at_end.period_type,
        counts_at_end.period_start,
        counts_at_end.counts.observed_at as counts_observed_at,
        counts_at_end.counts.likes,
        counts_at_end.counts.replies,
        counts_at_end.counts.reposts,
        counts_at_end.counts.quotes,
        snapshots.followers
    from counts_at_end
    asof left join snapshots
        on
            counts_at_end.platform = snapshots.platform
            and counts_at_end.account_id = snapshots.account_id
            and counts_at_end.created_at >= snapshots.observed_at
),

followers_at_post as (
    select
        followers_at_or_before_post.company_id,
        followers_at_or_before_post.platform,
        followers_at_or_before_post.post_id,
        followers_at_or_before_post.account_id,
        followers_at_or_before_post.created_at,
        followers_at_or_before_post.period_type,
        followers_at_or_before_post.period_start,
        followers_at_or_before_post.likes,
        followers_at_or_before_post.replies,
        followers_at_or_before_post.reposts,
        followers_at_or_before_post.quotes,
        followers_at_or_before_post.counts_observed_at,
        coalesce(followers_at_or_before_post.followers, snapshots.followers) as followers_at_post
    from followers_at_or_before_post
    asof left join snapshots
        on
            followers_at_or_before_post.platform = snapshots.platform
            and followers_at_or_before_post.account_id = snapshots.account_id
            and followers_at_or_before_post.created_at < snapshots.observed_at
),

measured as (
    -- column order = the documented output order
    select  -- noqa: ST06
        company_id,
        platform,
        post_id,
        account_id,
        created_at,
        period_type,
        period_start,
        likes,
        replies,
        reposts,
        quotes,
        -- a count the platform does not deliver (hidden likes) adds 0 (rule 4)
        coalesce(likes, 0) + replies + reposts + quotes as interactions,
        counts_observed_at,
        followers_at_post
    from followers_at_post
)

select * from measured
