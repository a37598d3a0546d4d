/* ---
description: >
  The accounts the registry lists now, one row per company and platform (a company has at
  most one account per platform). Only these accounts count (METRICS.md rule 2): rows of an
  account the registry no longer lists count in no period.
columns:
  company_id: Registry id of the company.
  platform: Platform of the account.
  handle: The account's handle as configured in the registry (the snapshots carry the same
    handle, which resolves it to the platform's account id).
--- */
with

source as (
    select
        company_id,
        platform,
        handle
    from ref.accounts
),

renamed as (
    select
        company_id::varchar as company_id,
        platform::varchar as platform,
        handle::varchar as handle
    from source
)

select * from renamed
