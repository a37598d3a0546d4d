/* ---
description: >
  The reporting periods, one row per period: every ISO week (Monday 00:00 UTC) and every
  calendar month from the one holding the earliest activity or snapshot in the raw data up
  to the one holding the latest account snapshot. A period is [period_start, period_end).
columns:
  period_type: week (ISO week) or month (calendar month).
  period_start: First day of the period (inclusive).
  period_end: First day after the period (exclusive).
  start_at: period_start as a timestamp (00:00 UTC).
  end_at: period_end as a timestamp (00:00 UTC).
  days_in_period: Days in the period (7 for weeks, 28-31 for months).
  is_complete: True when period_end is at or before the latest account snapshot, i.e. the period is
    fully observed.
--- */
with

snapshots as (
    select observed_at
    from staging.stg_account_snapshots
),

post_observations as (
    select created_at
    from staging.stg_post_observations
),

thread_replies as (
    select created_at
    from staging.stg_thread_replies
),

probes as (
    select sent_at
    from staging.stg_probes
),

manual_metrics as (
    select period_start
    from staging.stg_manual_metrics
),

activity as (
    select observed_at as happened_at from snapshots
    union all
    select created_at as happened_at from post_observations
    union all
    select created_at as happened_at from thread_replies
    union all
    select sent_at as happened_at from probes
    union all
    select period_start::timestamp as happened_at from manual_metrics
),

first_activity as (
    select min(happened_at) as first_at
    from activity
),

last_snapshot as (
    select max(observed_at) as last_snapshot_at
    from snapshots
),

bounds as (
    select
        last_snapshot.last_snapshot_at,
        first_activity.first_at  -- activity includes the snapshots: never after the last
    from first_activity
    cross join last_snapshot
    where last_snapshot.last_snapshot_at is not null
),

week_starts as (
    select
        'week' as period_type,
        last_snapshot_at,
        unnest(generate_series(
            date_trunc('week', first_at),
            date_trunc('week', last_snapshot_at),
            interval 7 day
        )) as start_at
    from bounds
),

month_starts as (
    select
        'month' as period_type,
        last_snapshot_at,
        unnest(generate_series(
            date_trunc('month', first_at),
            date_trunc('month', last_snapshot_at),
            interval 1 month
        )) as start_at
    from bounds
),

periods as (
    select
        period_type,
        last_snapshot_at,
        start_at::timestamp as start_at,
        (start_at + interval 7 day)::timestamp as end_at
    from week_starts
    union all
    select
        period_type,
        last_snapshot_at,
        start_at::timestamp as start_at,
        (start_at + interval 1 month)::timestamp as end_at
    from month_starts
),

final as (
    select
        period_type,
        start_at::date as period_start,
        end_at::date as period_end,
        start_at,
        end_at,
        date_diff('day', start_at::date, end_at::date) as days_in_period,
        end_at <= last_snapshot_at as is_complete
    from periods
)

select * from final
