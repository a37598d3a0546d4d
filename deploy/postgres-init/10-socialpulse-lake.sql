-- The catalog database of the DuckLake warehouse (docs/deploy.md, "DuckLake"), owned by the
-- same user as the Airflow metadata DB. The postgres image runs this file once, when it
-- initialises an empty data volume; on an existing volume create it by hand:
--   docker compose exec postgres createdb -U airflow socialpulse_lake
CREATE DATABASE socialpulse_lake OWNER airflow;
