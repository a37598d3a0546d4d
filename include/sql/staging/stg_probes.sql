/* ---
description: >
  The field study, one row per inquiry sent to a company (probe_id): the raw table holds
  its latest observation (the loader replaces a probe's row by key).
columns:
  probe_id: Unique id of the inquiry.
  company_id: Registry id of the company the inquiry was sent to.
  platform: Platform the inquiry was sent on; null for e-mail, phone and web forms.
  channel: How the inquiry was sent (public_post, direct_message, email, web_form, phone).
  sent_at: When the inquiry was sent (UTC).
  question_ref: Reference to the question (URL or id).
  answered_at: When the first answer came (UTC); null if none yet.
  answer_ref: Reference to the answer.
  quality: Quality of the answer, 1 (useless) to 5 (excellent).
  observed_at: When this state of the inquiry was recorded (UTC).
--- */
with

source as (
    select
        probe_id,
        company_id,
        platform,
        channel,
        sent_at,
        question_ref,
        answered_at,
        answer_ref,
        quality,
        observed_at
    from raw.probes
),

renamed as (
    select
        probe_id::varchar as probe_id,
        company_id::varchar as company_id,
        platform::varchar as platform,
        channel::varchar as channel,
        sent_at::timestamp as sent_at,
        question_ref::varchar as question_ref,
        answered_at::timestamp as answered_at,
        answer_ref::varchar as answer_ref,
        quality::bigint as quality,
        observed_at::timestamp as observed_at
    from source
)

select * from renamed
