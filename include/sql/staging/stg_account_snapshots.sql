/* ---
description: >
  Every fetch of a company account's public counters, one row per account and fetch
  (platform, account_id, observed_at). All observations are kept because the state of an
  account "at" a time t is resolved later (METRICS.md rule 1).
columns:
  platform: Platform the snapshot comes from.
  company_id: Registry id of the company the account belongs to.
  account_id: The platform's stable id of the company account.
  handle: The account's handle as configured in the registry.
  observed_at: When the fetch observed this state (UTC, naive timestamp).
  followers: Followers of the account at observed_at.
  following: Accounts this account follows at observed_at (null where not reported).
  posts_total: Posts the platform reports for the account at observed_at (null where not reported).
--- */
with

source as (
    select
        platform,
        company_id,
        account_id,
        handle,
        observed_at,
        followers,
        following,
        posts_total
    from raw.account_snapshots
),

renamed as (
    select
        platform::varchar as platform,
        company_id::varchar as company_id,
        account_id::varchar as account_id,
        handle::varchar as handle,
        observed_at::timestamp as observed_at,
        followers::bigint as followers,
        following::bigint as following,  -- noqa: RF04
        posts_total::bigint as posts_total
    from source
)

select * from renamed
