/* ---
description: >
  Replies in threads under company posts, classified for the service metrics (rule 5), one
  row per reply. Third party = author_is_company is false. A direct reply is a
  third-party reply whose in_reply_to_id is any post of the company (original, reply or
  repost), the thread's root_post_id (a company post by definition, even when the post
  itself was never observed in post_observations) or one of the company's own answers in a
  thread (a follow-up question deserves an answer too). The company's answer to a reply r
  is a reply by one of its accounts with in_reply_to_id = r.reply_id; its first answer is
  the earliest such, whenever it came.
columns:
  company_id: Registry id of the company whose post the thread sits under.
  platform: Platform the thread is on.
  reply_id: The platform's id of the reply.
  root_post_id: The company post the thread starts at.
  in_reply_to_id: The post or reply this reply answers.
  author_id: The platform's id of the reply's author.
  created_at: When the reply was published (UTC).
  is_third_party: True when the author is none of the company's accounts.
  is_direct: True for a third-party reply to a post (observed or the thread's root) or an answer of
    the company (counted in service_level).
  first_answer_at: When the company first answered this reply; null if never.
  response_hours: Hours from created_at to first_answer_at; null if unanswered.
--- */
with

replies as (
    select
        company_id,
        platform,
        reply_id,
        root_post_id,
        in_reply_to_id,
        author_id,
        author_is_company,
        created_at
    from staging.stg_thread_replies
),

posts as (
    select
        company_id,
        platform,
        post_id
    from staging.stg_posts
),

company_replies as (
    select
        company_id,
        platform,
        reply_id,
        in_reply_to_id,
        created_at
    from replies
    where author_is_company
),

company_items as (
    select
        company_id,
        platform,
        post_id as item_id
    from posts
    union
    select
        company_id,
        platform,
        reply_id as item_id
    from company_replies
),

first_answers as (
    select
        company_id,
        platform,
        in_reply_to_id as answered_id,
        min(created_at) as first_answer_at
    from company_replies
    group by company_id, platform, in_reply_to_id
),

classified as (
    -- column order = the documented output order
    select  -- noqa: ST06
        replies.company_id,
        replies.platform,
        replies.reply_id,
        replies.root_post_id,
        replies.in_reply_to_id,
        replies.author_id,
        replies.created_at,
        not replies.author_is_company as is_third_party,
        (
            not replies.author_is_company
            and (
                company_items.item_id is not null
                or replies.in_reply_to_id = replies.root_post_id
            )
        ) as is_direct,
        first_answers.first_answer_at,
        (epoch(first_answers.first_answer_at) - epoch(replies.created_at))
        / 3600.0 as response_hours
    from replies
    left join company_items
        on
            replies.company_id = company_items.company_id
            and replies.platform = company_items.platform
            and replies.in_reply_to_id = company_items.item_id
    left join first_answers
        on
            replies.company_id = first_answers.company_id
            and replies.platform = first_answers.platform
            and replies.reply_id = first_answers.answered_id
)

select * from classified
