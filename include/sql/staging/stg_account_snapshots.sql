/* ---
description: >
  Every successful fetch of a company account, one row per account and fetch
  (platform, account_id, observed_at). All observations are kept because the state of an
  account "at" a time t is resolved later (METRICS.md rule 1).
columns:
  platform: Platform the snapshot comes from.
  company_id: Registry id of the company the account belongs to.
  account_id: The platform's stable id of the company account.
  handle: The account's handle as configured in the registry.
  observed_at: When the fetch observed this state (UTC, naive timestamp).
  followers: Followers of the account at observed_at; null where the platform has none (a feed).
  following: Accounts this account follows at observed_at (null where not reported).
  posts_total: Posts the platform reports for the account at observed_at (null where not reported).
  posts_since: The fetch read the account's posts created since this time; null when unknown
    (then observed_at minus the lookback is assumed, METRICS.md rule 8).
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
        posts_total,
        posts_since
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
        posts_total::bigint as posts_total,
        posts_since::timestamp as posts_since
    from source
)

select * from renamed
