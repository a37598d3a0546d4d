/* ---
description: >
  Replies in threads under company posts, one row per reply (platform, reply_id), taken
  from its latest observation.
columns:
  platform: Platform the thread is on.
  reply_id: The platform's id of the reply.
  account_id: Company account whose post the thread sits under.
  company_id: Registry id of the company whose post the thread sits under.
  root_post_id: The company post the thread starts at.
  in_reply_to_id: The post or reply this reply answers.
  author_id: The platform's id of the reply's author.
  author_is_company: True when the author is one of the company's own accounts.
  created_at: When the reply was published (UTC).
  observed_at: The latest fetch that observed the reply (UTC).
--- */
with

source as (
    select
        platform,
        reply_id,
        account_id,
        company_id,
        root_post_id,
        in_reply_to_id,
        author_id,
        author_is_company,
        created_at,
        observed_at
    from raw.thread_replies
),

latest as (
    select
        platform::varchar as platform,
        reply_id::varchar as reply_id,
        account_id::varchar as account_id,
        company_id::varchar as company_id,
        root_post_id::varchar as root_post_id,
        in_reply_to_id::varchar as in_reply_to_id,
        author_id::varchar as author_id,
        author_is_company::boolean as author_is_company,
        created_at::timestamp as created_at,
        observed_at::timestamp as observed_at
    from source
    qualify row_number() over (
        partition by platform, reply_id
        order by observed_at desc
    ) = 1
)

select * from latest
