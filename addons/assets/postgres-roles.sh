#!/bin/bash
# Managed PostgreSQL (RDS / Cloud SQL): one login role per platform layer, a database it owns, and the
# extensions layers ask for in it.
# Idempotent: creates what is missing and (re)sets each role's password from its Secret.
# Env: PGHOST/PGUSER/PGPASSWORD/PGSSLMODE (the admin), ROLES, PASSWORD_<ROLE> per role, and
# EXTENSIONS_<ROLE> (space-separated extension names) for a role whose database needs extensions.
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
  exts="EXTENSIONS_${role^^}"
  for ext in ${!exts:-}; do
    # As the admin, in the role's database: extensions that are not "trusted" (pgvector is not) need more
    # than the database's owner: a superuser, or RDS's rds_superuser / Cloud SQL's cloudsqlsuperuser for
    # the extensions the cloud supports.
    if ! psql -v ON_ERROR_STOP=1 -d "$role" -v ext="$ext" <<'SQL'
CREATE EXTENSION IF NOT EXISTS :"ext";
SQL
    then
      echo "extension $ext in database $role: CREATE EXTENSION failed as $PGUSER (it needs a superuser, or" \
        "rds_superuser on RDS / cloudsqlsuperuser on Cloud SQL, and the extension installed on the server)" >&2
      exit 1
    fi
    echo "extension $ext in database $role: present"
  done
done
