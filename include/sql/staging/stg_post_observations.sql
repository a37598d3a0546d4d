/* ---
description: >
  Every fetch of a company post's counts, one row per post and fetch (platform, post_id,
  observed_at). All observations are kept because a post's counts are taken at period end
  (METRICS.md rules 1 and 3).
columns:
  platform: Platform the post is on.
  post_id: The platform's id of the post.
  account_id: The company account that published the post.
  company_id: Registry id of the company the account belongs to.
  created_at: When the post was published (UTC).
  kind: original, reply or repost.
  likes: Likes / favourites / reactions at observed_at; null where the platform hides them.
  replies: Replies at observed_at.
  reposts: Reposts / boosts / shares at observed_at.
  quotes: Quotes at observed_at (0 where the platform has none).
  views: Views at observed_at, where the platform reports them.
  url: Public URL of the post.
  observed_at: When the fetch observed these counts (UTC).
--- */
with

source as (
    select
        platform,
        post_id,
        account_id,
        company_id,
        created_at,
        kind,
        likes,
        replies,
        reposts,
        quotes,
        views,
        url,
        observed_at
    from raw.post_observations
),

renamed as (
    select
        platform::varchar as platform,
        post_id::varchar as post_id,
        account_id::varchar as account_id,
        company_id::varchar as company_id,
        created_at::timestamp as created_at,
        kind::varchar as kind,
        likes::bigint as likes,
        replies::bigint as replies,
        reposts::bigint as reposts,
        quotes::bigint as quotes,
        views::bigint as views,  -- noqa: RF04
        url::varchar as url,
        observed_at::timestamp as observed_at
    from source
)

select * from renamed
