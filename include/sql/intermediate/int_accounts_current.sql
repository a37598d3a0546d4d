/* ---
description: >
  The company accounts that count (METRICS.md rules 2 and 5), one row per account the
  registry lists now, resolved to the platform's account id: the account_id of the latest
  snapshot taken for that platform and handle. Raw rows are attributed to a company through
  this model by (platform, account_id), never by the company_id they were loaded with, so
  the rows of a replaced feed or handle count in no period, and an account moved to another
  company in the registry takes its history along.
columns:
  company_id: Registry id of the company that lists the account now.
  platform: Platform of the account.
  handle: The handle as configured in the registry.
  account_id: The platform's id of the account (the latest snapshot's); null while the account
    has never been fetched successfully.
  resolved_at: When that snapshot was taken; null when never fetched.
--- */
with

accounts as (
    select
        company_id,
        platform,
        handle
    from staging.stg_accounts
),

snapshots as (
    select
        platform,
        handle,
        account_id,
        observed_at
    from staging.stg_account_snapshots
),

latest_per_handle as (
    select
        platform,
        handle,
        account_id,
        observed_at
    from snapshots
    qualify row_number() over (
        partition by platform, handle
        order by observed_at desc, account_id asc
    ) = 1
),

resolved as (
    select
        accounts.company_id,
        accounts.platform,
        accounts.handle,
        latest_per_handle.account_id,
        latest_per_handle.observed_at as resolved_at
    from accounts
    left join latest_per_handle
        on
            accounts.platform = latest_per_handle.platform
            and accounts.handle = latest_per_handle.handle
)

select * from resolved
