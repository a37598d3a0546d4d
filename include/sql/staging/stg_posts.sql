/* ---
description: >
  The company posts themselves, one row per post (platform, post_id), with the attributes
  of its latest observation. Counts are not here; they depend on the period end
  (see stg_post_observations).
columns:
  platform: Platform the post is on.
  post_id: The platform's id of the post.
  account_id: The company account that published the post.
  company_id: Registry id of the company the account belongs to.
  created_at: When the post was published (UTC).
  kind: original, reply or repost (only original posts are own posts, METRICS.md rule 3).
  url: Public URL of the post.
  last_observed_at: The latest fetch of the post.
--- */
with

observations as (
    select
        platform,
        post_id,
        account_id,
        company_id,
        created_at,
        kind,
        url,
        observed_at
    from staging.stg_post_observations
),

latest as (
    select
        platform,
        post_id,
        account_id,
        company_id,
        created_at,
        kind,
        url,
        observed_at as last_observed_at
    from observations
    qualify row_number() over (
        partition by platform, post_id
        order by observed_at desc
    ) = 1
)

select * from latest
