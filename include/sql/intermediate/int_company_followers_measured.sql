/* ---
description: >
  Followers of each company at the start and end of each period and the weekly compound
  follower growth between them, one row per company with account snapshots and period.
  State at t (rule 1) = per account the latest snapshot with observed_at <= t, else the
  earliest one after t; a company's followers at t = sum over its accounts (rule 2).
columns:
  company_id: Registry id of the company.
  period_type: week or month.
  period_start: First day of the period.
  followers_start: F_start, the company's followers at period start (sum over its accounts, rule 2).
  followers_end: F_end, the company's followers at period end (sum over its accounts, rule 2).
  start_observed_at: The earliest snapshot used for F_start.
  end_observed_at: The latest snapshot used for F_end.
  growth_days: d, days from start_observed_at to end_observed_at.
  follower_growth_weekly: (F_end / F_start)^(7 / d) - 1; null if d = 0 or F_start = 0.
--- */
with

snapshots as (
    select
        platform,
        account_id,
        company_id,
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

company_states as (
    select
        company_id,
        point_at,
        sum(followers)::bigint as followers,
        min(observed_at) as earliest_observed_at,
        max(observed_at) as latest_observed_at
    from account_states
    group by company_id, point_at
),

company_periods as (
    select
        period_starts.company_id,
        periods.period_type,
        periods.period_start,
        period_starts.followers as followers_start,
        period_ends.followers as followers_end,
        period_starts.earliest_observed_at as start_observed_at,
        period_ends.latest_observed_at as end_observed_at
    from periods
    inner join company_states as period_starts
        on periods.start_at = period_starts.point_at
    inner join company_states as period_ends
        on
            periods.end_at = period_ends.point_at
            and period_starts.company_id = period_ends.company_id
),

growth_days as (
    select
        company_id,
        period_type,
        period_start,
        followers_start,
        followers_end,
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
        start_observed_at,
        end_observed_at,
        growth_days,
        case
            when growth_days > 0 and followers_start > 0
                then power(followers_end / followers_start, 7.0 / growth_days) - 1
        end as follower_growth_weekly
    from growth_days
)

select * from measured
