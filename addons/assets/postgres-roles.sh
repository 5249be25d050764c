#!/bin/bash
# Managed PostgreSQL (RDS / Cloud SQL): one login role per platform layer, and a database it owns.
# Idempotent: creates what is missing and (re)sets each role's password from its Secret.
# Env: PGHOST/PGUSER/PGPASSWORD/PGSSLMODE (the admin), ROLES, PASSWORD_<ROLE> per role.
set -euo pipefail
for role in $ROLES; do
  var="PASSWORD_${role^^}"
  psql -v ON_ERROR_STOP=1 -v role="$role" -v password="${!var}" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN PASSWORD :'password';
-- PostgreSQL 16+: creating a database owned by a role needs membership in it.
GRANT :"role" TO CURRENT_USER;
SELECT format('CREATE DATABASE %I OWNER %I', :'role', :'role')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'role') \gexec
SQL
  echo "role and database $role: ready"
done
