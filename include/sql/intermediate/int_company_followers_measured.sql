/* ---
description: >
  Followers of each company at the start and end of each period and the weekly compound
  follower growth between them, one row per company with account snapshots and period
  (METRICS.md rules 1 and 2). State at t = per account the latest snapshot with observed_at
  <= t, else the earliest one after t. Only the accounts the registry lists now count, and
  accounts whose platform has no followers (feeds: followers null) are left out of the sums.
  A company's followers at t = the sum over its accounts. Growth is taken only over the
  accounts seen again in the period (the snapshot used at the end later than the one used at
  the start): an account not seen again says nothing about growth, so with no such account
  growth is null, never an invented 0.
columns:
  company_id: Registry id of the company.
  period_type: week or month.
  period_start: First day of the period.
  followers_start: The company's followers at period start (sum over its accounts).
  followers_end: The company's followers at period end (sum over its accounts).
  growth_accounts: Accounts seen again in the period (snapshot used at the end later than the one
    used at the start); only they take part in growth.
  growth_followers_start: F_start, the followers of those accounts at period start.
  growth_followers_end: F_end, the followers of those accounts at period end.
  start_observed_at: The earliest snapshot used for F_start; null without growth accounts.
  end_observed_at: The latest snapshot used for F_end; null without growth accounts.
  growth_days: d, days from start_observed_at to end_observed_at.
  follower_growth_weekly: (F_end / F_start)^(7 / d) - 1; null without growth accounts or when
    F_start = 0.
--- */
with

accounts_current as (
    select
        company_id,
        platform,
        account_id
    from intermediate.int_accounts_current
),

snapshots as (
    -- current accounts only; feeds (no followers) are left out of the sums
    select
        accounts_current.company_id,
        stg_account_snapshots.platform,
        stg_account_snapshots.account_id,
        stg_account_snapshots.observed_at,
        stg_account_snapshots.followers
    from staging.stg_account_snapshots
    inner join accounts_current
        on
            stg_account_snapshots.platform = accounts_current.platform
            and stg_account_snapshots.account_id = accounts_current.account_id
    where stg_account_snapshots.followers is not null
),

periods as (
    select
        period_type,
        period_start,
        start_at,
        end_at
    from intermediate.int_periods_generated
),

accounts as (
    select distinct
        company_id,
        platform,
        account_id
    from snapshots
),

boundary_points as (
    select start_at as point_at from periods
    union
    select end_at as point_at from periods
),

account_points as (
    select
        accounts.company_id,
        accounts.platform,
        accounts.account_id,
        boundary_points.point_at
    from accounts
    cross join boundary_points
),

state_at_or_before as (
    select
        account_points.company_id,
        account_points.platform,
        account_points.account_id,
        account_points.point_at,
        snapshots.followers,
        snapshots.observed_at
    from account_points
    asof left join snapshots
        on
            account_points.company_id = snapshots.company_id
            and account_points.platform = snapshots.platform
            and account_points.account_id = snapshots.account_id
            and account_points.point_at >= snapshots.observed_at
),

account_states as (
    select
        state_at_or_before.company_id,
        state_at_or_before.platform,
        state_at_or_before.account_id,
        state_at_or_before.point_at,
        coalesce(state_at_or_before.followers, snapshots.followers) as followers,
        coalesce(state_at_or_before.observed_at, snapshots.observed_at) as observed_at
    from state_at_or_before
    asof left join snapshots
        on
            state_at_or_before.company_id = snapshots.company_id
            and state_at_or_before.platform = snapshots.platform
            and state_at_or_before.account_id = snapshots.account_id
            and state_at_or_before.point_at < snapshots.observed_at
),

account_periods as (
    select
        period_starts.company_id,
        periods.period_type,
        periods.period_start,
        period_starts.followers as followers_start,
        period_ends.followers as followers_end,
        period_starts.observed_at as start_observed_at,
        period_ends.observed_at as end_observed_at,
        period_ends.observed_at > period_starts.observed_at as is_seen_again
    from periods
    inner join account_states as period_starts
        on periods.start_at = period_starts.point_at
    inner join account_states as period_ends
        on
            periods.end_at = period_ends.point_at
            and period_starts.company_id = period_ends.company_id
            and period_starts.platform = period_ends.platform
            and period_starts.account_id = period_ends.account_id
),

company_periods as (
    select
        company_id,
        period_type,
        period_start,
        sum(followers_start)::bigint as followers_start,
        sum(followers_end)::bigint as followers_end,
        count(*) filter (where is_seen_again) as growth_accounts,
        sum(followers_start) filter (where is_seen_again)::bigint as growth_followers_start,
        sum(followers_end) filter (where is_seen_again)::bigint as growth_followers_end,
        min(start_observed_at) filter (where is_seen_again) as start_observed_at,
        max(end_observed_at) filter (where is_seen_again) as end_observed_at
    from account_periods
    group by company_id, period_type, period_start
),

growth_days as (
    select
        company_id,
        period_type,
        period_start,
        followers_start,
        followers_end,
        growth_accounts,
        growth_followers_start,
        growth_followers_end,
        start_observed_at,
        end_observed_at,
        (epoch(end_observed_at) - epoch(start_observed_at)) / 86400.0 as growth_days
    from company_periods
),

measured as (
    select
        company_id,
        period_type,
        period_start,
        followers_start,
        followers_end,
        growth_accounts,
        growth_followers_start,
        growth_followers_end,
        start_observed_at,
        end_observed_at,
        growth_days,
        case
            -- growth_days > 0: accounts seen again (null without any)
            when growth_days > 0 and growth_followers_start > 0
                then power(growth_followers_end / growth_followers_start, 7.0 / growth_days) - 1
        end as follower_growth_weekly
    from growth_days
)

select * from measured
