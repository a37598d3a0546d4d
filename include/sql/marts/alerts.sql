/* ---
description: >
  Liveliness dropped: one row per company and complete period in which its liveliness score
  (marts.success_index) or its service level (marts.company_metrics) fell by more than the
  configured amount against the period of the same type just before it
  (SOCIALPULSE_ALERT_LIVELINESS_DROP points, default 20; SOCIALPULSE_ALERT_SERVICE_LEVEL_DROP,
  a share, default 0.2; both from ref.settings). Only observed periods count (METRICS.md rule
  8): both periods must be observed and both values non-null; a drop equal to the threshold
  is no alert. The models DAG notifies each alert of the latest complete period once
  (ops.alerts_sent).
columns:
  company_id: Registry id of the company.
  company_name: Display name of the company.
  segment: craft or corporation.
  period_type: week or month.
  period_start: First day of the period whose value dropped (inclusive).
  period_end: First day after the period (exclusive).
  previous_period_start: First day of the period of the same type just before, compared with.
  liveliness_score: Liveliness dimension score (0-100) in the period.
  previous_liveliness_score: Liveliness dimension score in the previous period.
  liveliness_drop: previous_liveliness_score - liveliness_score (points; negative is a rise);
    null when either is null.
  service_level: Service level (share of third-party direct replies answered) in the period.
  previous_service_level: Service level in the previous period.
  service_level_drop: previous_service_level - service_level (negative is a rise); null when
    either is null.
  is_liveliness_alert: True when liveliness_drop is greater than the liveliness threshold.
  is_service_level_alert: True when service_level_drop is greater than the service level
    threshold.
--- */
with

thresholds as (
    select
        alert_liveliness_drop,
        alert_service_level_drop
    from staging.stg_settings
),

scores as (
    select
        company_id,
        company_name,
        segment,
        period_type,
        period_start,
        period_end,
        is_complete,
        is_observed,
        liveliness_score
    from marts.success_index
),

metrics as (
    select
        company_id,
        period_type,
        period_start,
        service_level
    from marts.company_metrics
),

periods as (
    select
        scores.company_id,
        scores.company_name,
        scores.segment,
        scores.period_type,
        scores.period_start,
        scores.period_end,
        scores.is_complete,
        scores.is_observed,
        scores.liveliness_score,
        metrics.service_level
    from scores
    left join metrics
        on
            scores.company_id = metrics.company_id
            and scores.period_type = metrics.period_type
            and scores.period_start = metrics.period_start
),

compared as (
    -- the previous period of the same type ends where this one starts; both observed
    select
        cur.company_id,
        cur.company_name,
        cur.segment,
        cur.period_type,
        cur.period_start,
        cur.period_end,
        prev.period_start as previous_period_start,
        cur.liveliness_score,
        prev.liveliness_score as previous_liveliness_score,
        cur.service_level,
        prev.service_level as previous_service_level,
        prev.liveliness_score - cur.liveliness_score as liveliness_drop,
        prev.service_level - cur.service_level as service_level_drop
    from periods as cur
    inner join periods as prev
        on
            cur.company_id = prev.company_id
            and cur.period_type = prev.period_type
            and cur.period_start = prev.period_end
    where cur.is_complete and cur.is_observed and prev.is_observed
),

flagged as (
    select
        compared.*,
        coalesce(
            compared.liveliness_drop > thresholds.alert_liveliness_drop, false
        ) as is_liveliness_alert,
        coalesce(
            compared.service_level_drop > thresholds.alert_service_level_drop, false
        ) as is_service_level_alert
    from compared
    cross join thresholds
),

final as (
    select
        company_id,
        company_name,
        segment,
        period_type,
        period_start,
        period_end,
        previous_period_start,
        liveliness_score::double as liveliness_score,
        previous_liveliness_score::double as previous_liveliness_score,
        liveliness_drop::double as liveliness_drop,
        service_level::double as service_level,
        previous_service_level::double as previous_service_level,
        service_level_drop::double as service_level_drop,
        is_liveliness_alert,
        is_service_level_alert
    from flagged
    where is_liveliness_alert or is_service_level_alert
)

select * from final
