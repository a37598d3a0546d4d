/* ---
description: >
  The companies of the registry, one row per company.
columns:
  company_id: Registry id of the company.
  company_name: Display name of the company.
  segment: craft or corporation; companies are only compared within their segment.
  employees: Number of employees.
  effort_hours_per_week: Hours per week the company spends on social media; null when not
    configured.
  has_goals: True when the company states its own goals (dimension weights).
--- */
with

source as (
    select
        company_id,
        name,
        segment,
        employees,
        effort_hours_per_week,
        has_goals
    from ref.companies
),

renamed as (
    select
        company_id::varchar as company_id,
        name::varchar as company_name,
        segment::varchar as segment,
        employees::bigint as employees,
        effort_hours_per_week::double as effort_hours_per_week,
        coalesce(has_goals, false) as has_goals
    from source
)

select * from renamed
