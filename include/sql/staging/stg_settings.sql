/* ---
description: >
  The pipeline settings the models need, one row. lookback_days is L of METRICS.md rule 8
  (SOCIALPULSE_LOOKBACK_DAYS, written by the ingestion run's registry sync; 35 before any
  sync).
columns:
  lookback_days: Days a fetch re-reads posts (L); used for snapshots that do not say how far
    back their fetch read (posts_since null).
--- */
with

source as (
    select lookback_days
    from ref.settings
),

one_row as (
    -- the documented default when no ingestion run has written the settings yet
    select coalesce(max(lookback_days), 35)::bigint as lookback_days
    from source
)

select * from one_row
