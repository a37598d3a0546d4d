/* ---
description: >
  The pipeline settings the models need, one row (written by the ingestion run's registry
  sync; the documented defaults before any sync). lookback_days is L of METRICS.md rule 8
  (SOCIALPULSE_LOOKBACK_DAYS); the alert thresholds are those of marts.alerts.
columns:
  lookback_days: Days a fetch re-reads posts (L); used for snapshots that do not say how far
    back their fetch read (posts_since null).
  alert_liveliness_drop: A liveliness score falling by more than this many points against the
    previous period is an alert (SOCIALPULSE_ALERT_LIVELINESS_DROP, default 20).
  alert_service_level_drop: A service level falling by more than this (a share, 0.2 = 20
    percentage points) against the previous period is an alert
    (SOCIALPULSE_ALERT_SERVICE_LEVEL_DROP, default 0.2).
--- */
with

source as (
    select
        lookback_days,
        alert_liveliness_drop,
        alert_service_level_drop
    from ref.settings
),

one_row as (
    -- the documented defaults when no ingestion run has written the settings yet
    select
        coalesce(max(lookback_days), 35)::bigint as lookback_days,
        coalesce(max(alert_liveliness_drop), 20)::double as alert_liveliness_drop,
        coalesce(max(alert_service_level_drop), 0.2)::double as alert_service_level_drop
    from source
)

select * from one_row
