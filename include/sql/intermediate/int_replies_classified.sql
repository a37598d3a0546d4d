/* ---
description: >
  Replies in threads under company posts, classified for the service and relationship
  metrics (METRICS.md rule 5), one row per reply in a thread of an account the registry
  lists now (rule 2). Accounts, posts and authors are identified by (platform, id). Third
  party = the author is none of the company's accounts. A direct reply is a third-party
  reply whose in_reply_to_id is an original or a reply posted by one of its accounts, or
  one of its answers in a thread (a follow-up question deserves an answer too), never a
  repost; the thread's root counts as the company's original unless the company's post
  observations say it is not one (connectors only read threads under originals, so a root
  older than every observation still counts). The company's answer to a reply r is a reply
  by one of its accounts with in_reply_to_id = r.reply_id; its first answer is the earliest
  such, whenever it came.
columns:
  company_id: Registry id of the company whose post the thread sits under.
  platform: Platform the thread is on.
  reply_id: The platform's id of the reply.
  root_post_id: The company post the thread starts at.
  in_reply_to_id: The post or reply this reply answers.
  author_id: The platform's id of the reply's author.
  created_at: When the reply was published (UTC).
  is_third_party: True when the author is none of the company's accounts.
  is_direct: True for a third-party reply to an original or reply of the company or to one of its
    answers, never to a repost (counted in service_level).
  is_in_original_thread: True when the thread's root is an original of the company
    (unique_interactors and repeat_interactor_share count only these threads).
  first_answer_at: When the company first answered this reply; null if never.
  response_hours: Hours from created_at to first_answer_at; null if unanswered.
--- */
with

accounts_current as (
    select
        company_id,
        platform,
        account_id
    from intermediate.int_accounts_current
),

thread_replies as (
    select
        platform,
        reply_id,
        account_id,
        root_post_id,
        in_reply_to_id,
        author_id,
        author_is_company,
        created_at
    from staging.stg_thread_replies
),

posts as (
    select
        platform,
        post_id,
        account_id,
        kind
    from staging.stg_posts
),

replies as (
    -- threads of current accounts only; the author is the company's when the connector
    -- says so or when it is one of the company's current accounts
    select
        accounts_current.company_id,
        thread_replies.platform,
        thread_replies.reply_id,
        thread_replies.root_post_id,
        thread_replies.in_reply_to_id,
        thread_replies.author_id,
        thread_replies.created_at,
        (
            thread_replies.author_is_company
            or author_accounts.account_id is not null
        ) as is_by_company
    from thread_replies
    inner join accounts_current
        on
            thread_replies.platform = accounts_current.platform
            and thread_replies.account_id = accounts_current.account_id
    left join accounts_current as author_accounts
        on
            accounts_current.company_id = author_accounts.company_id
            and thread_replies.platform = author_accounts.platform
            and thread_replies.author_id = author_accounts.account_id
),

company_posts as (
    select
        accounts_current.company_id,
        posts.platform,
        posts.post_id,
        posts.kind
    from posts
    inner join accounts_current
        on
            posts.platform = accounts_current.platform
            and posts.account_id = accounts_current.account_id
),

company_items as (
    -- what a third party can answer the company on: its originals and replies, and its
    -- answers in threads; never its reposts
    select
        company_id,
        platform,
        post_id as item_id
    from company_posts
    where kind in ('original', 'reply')
    union
    select
        company_id,
        platform,
        reply_id as item_id
    from replies
    where is_by_company
),

not_originals as (
    select
        company_id,
        platform,
        post_id
    from company_posts
    where kind != 'original'
),

first_answers as (
    select
        company_id,
        platform,
        in_reply_to_id as answered_id,
        min(created_at) as first_answer_at
    from replies
    where is_by_company
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
        not replies.is_by_company as is_third_party,
        (
            not replies.is_by_company
            and (
                company_items.item_id is not null
                or (
                    replies.in_reply_to_id = replies.root_post_id
                    and not_originals.post_id is null
                )
            )
        ) as is_direct,
        not_originals.post_id is null as is_in_original_thread,
        first_answers.first_answer_at,
        (epoch(first_answers.first_answer_at) - epoch(replies.created_at))
        / 3600.0 as response_hours
    from replies
    left join company_items
        on
            replies.company_id = company_items.company_id
            and replies.platform = company_items.platform
            and replies.in_reply_to_id = company_items.item_id
    left join not_originals
        on
            replies.company_id = not_originals.company_id
            and replies.platform = not_originals.platform
            and replies.root_post_id = not_originals.post_id
    left join first_answers
        on
            replies.company_id = first_answers.company_id
            and replies.platform = first_answers.platform
            and replies.reply_id = first_answers.answered_id
)

select * from classified
