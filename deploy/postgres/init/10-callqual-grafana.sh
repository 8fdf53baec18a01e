#!/bin/sh
# First start of the postgres container: the read-only role for Grafana (password from the environment).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v grafana_password="$CALLQUAL_GRAFANA_DB_PASSWORD" -v store_owner="$POSTGRES_USER" \
  -f /callqual-sql/grafana-readonly.sql
