/* ---
description: >
  The effective weight of every success dimension for every company, one row per company
  and dimension (defaults already applied by the registry; no goals means the first seven
  dimensions weigh 1 and findability and image 0).
columns:
  company_id: Registry id of the company.
  dimension: One of reach, growth, engagement, liveliness, sympathy, relationships, efficiency,
    findability, image.
  weight: Weight of the dimension in the company's success index (0 = ignored).
--- */
with

source as (
    select
        company_id,
        dimension,
        weight
    from ref.company_weights
),

renamed as (
    select
        company_id::varchar as company_id,
        dimension::varchar as dimension,
        weight::double as weight
    from source
)

select * from renamed
