/* ---
description: >
  The reporting spine, one row per company of the registry and period (weeks and
  months): every company gets a row for every period, whether anything happened or not.
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
        periods.is_complete
    from companies
    cross join periods
)

select * from joined
