-- The read-only role Grafana's PostgreSQL data source logs in as (psql script).
--   psql -v grafana_password=... -v store_owner=callqual -f grafana-readonly.sql DBNAME
-- SELECT on every table of the store, now and later (the store service creates tables and
-- daily partitions as store_owner), read-only transactions and a statement timeout, so a
-- dashboard can neither change the store nor hold it up.
SELECT format('CREATE ROLE callqual_grafana LOGIN PASSWORD %L', :'grafana_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'callqual_grafana') \gexec
ALTER ROLE callqual_grafana PASSWORD :'grafana_password';
ALTER ROLE callqual_grafana SET default_transaction_read_only = on;
ALTER ROLE callqual_grafana SET statement_timeout = '30s';
SELECT format('GRANT CONNECT ON DATABASE %I TO callqual_grafana', current_database()) \gexec
GRANT USAGE ON SCHEMA public TO callqual_grafana;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO callqual_grafana;
ALTER DEFAULT PRIVILEGES FOR ROLE :"store_owner" IN SCHEMA public GRANT SELECT ON TABLES TO callqual_grafana;
