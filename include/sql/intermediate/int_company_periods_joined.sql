/* ---
description: >
  The reporting spine, one row per company of the registry and period (weeks and
  months): every company gets a row for every period, whether anything happened or not,
  with whether the period was observed (METRICS.md rule 8). A company's period is observed
  when one of its current accounts has a snapshot (a successful fetch) taken at or after the
  period's start by a fetch that read posts created before the period's end: observed_at in
  [start, end + L) for a fetch that re-reads the last L days, further back for a backfill
  (posts_since). Nothing happened is not the same as nothing was looked at: in periods that
  are not observed the platform metrics are null, not 0.
columns:
  company_id: Registry id of the company.
  company_name: Display name of the company.
  segment: craft or corporation.
  effort_hours_per_week: Hours per week the company spends on social media; null when not
    configured.
  period_type: week or month.
  period_start: First day of the period (inclusive).
  period_end: First day after the period (exclusive).
  start_at: period_start as a timestamp.
  end_at: period_end as a timestamp.
  days_in_period: Days in the period.
  is_complete: True when the period ended at or before the latest account snapshot.
  is_observed: True when a snapshot of one of the company's current accounts observed the period
    (rule 8).
--- */
with

companies as (
    select
        company_id,
        company_name,
        segment,
        effort_hours_per_week
    from staging.stg_companies
),

periods as (
    select
        period_type,
        period_start,
        period_end,
        start_at,
        end_at,
        days_in_period,
        is_complete
    from intermediate.int_periods_generated
),

accounts as (
    select
        company_id,
        platform,
        account_id
    from intermediate.int_accounts_current
),

snapshots as (
    select
        platform,
        account_id,
        observed_at,
        posts_since
    from staging.stg_account_snapshots
),

settings as (
    select lookback_days
    from staging.stg_settings
),

fetches as (
    -- what each fetch of a current account looked at: posts created since read_since
    select
        accounts.company_id,
        snapshots.observed_at,
        coalesce(
            snapshots.posts_since,
            snapshots.observed_at - to_days(settings.lookback_days::integer)
        ) as read_since
    from snapshots
    inner join accounts
        on
            snapshots.platform = accounts.platform
            and snapshots.account_id = accounts.account_id
    cross join settings
),

observed as (
    select distinct
        fetches.company_id,
        periods.period_type,
        periods.period_start
    from fetches
    inner join periods
        on
            fetches.observed_at >= periods.start_at
            and fetches.read_since < periods.end_at
),

joined as (
    select
        companies.company_id,
        companies.company_name,
        companies.segment,
        companies.effort_hours_per_week,
        periods.period_type,
        periods.period_start,
        periods.period_end,
        periods.start_at,
        periods.end_at,
        periods.days_in_period,
        periods.is_complete,
        observed.company_id is not null as is_observed
    from companies
    cross join periods
    left join observed
        on
            companies.company_id = observed.company_id
            and periods.period_type = observed.period_type
            and periods.period_start = observed.period_start
)

select * from joined
