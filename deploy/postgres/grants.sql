-- aigateway-operator: the PostgreSQL privileges of the operator's database role.
--
-- Run once, connected to Coder's database as the owner of Coder's tables (the role coderd
-- connects as) or a superuser, after creating the operator's login role:
--
--   CREATE ROLE aigw_operator LOGIN PASSWORD '...';
--   psql "$CODER_DATABASE_URL" -v ON_ERROR_STOP=1 -v role=aigw_operator \
--        -f deploy/postgres/grants.sql
--
-- Add -v coder_schema=<schema> when coderd's tables are not in "public". Run it again after
-- a Coder upgrade that adds a table the operator uses (e.g. v2.34 -> v2.35: ai_gateway_keys).
--
-- Exactly the grants below, nothing more: coderd owns Coder's schema. The operator never
-- creates, alters or drops anything in it (it only verifies it at start), never writes
-- dbcrypt_keys, never hard-deletes a provider (it soft-deletes, as coderd does), and only
-- inserts into audit_logs. Its own bookkeeping lives in the schema aigateway_operator, created
-- here; the role gets USAGE and CREATE on it and creates and migrates its tables there at start
-- (it owns those tables). Instead of the CREATE SCHEMA at the end you may GRANT CREATE ON
-- DATABASE to the role; the operator then creates the schema itself at its first start.
--
-- PUBLIC's default privileges (CONNECT on the database, USAGE on schema public and on
-- types) are not relied upon: everything the role uses is granted here explicitly.
-- The operator checks these privileges at start and names any that is missing, e.g.
-- "DELETE on table public.ai_provider_keys". The list in the code is
-- aigateway_operator.store.privileges.required_grants; a unit test keeps the two equal.

\if :{?role}
\else
  \echo 'usage: psql -v role=<operator role> [-v coder_schema=<schema>] -f grants.sql'
  \quit
\endif
\if :{?coder_schema}
\else
  \set coder_schema public
\endif

SELECT to_regclass(format('%I.%I', :'coder_schema', 'ai_gateway_keys')) IS NOT NULL
         AS has_gateway_keys,
       to_regclass(format('%I.%I', :'coder_schema', 'audit_logs')) IS NOT NULL
         AS has_audit
\gset

BEGIN;

GRANT CONNECT ON DATABASE :"DBNAME" TO :"role";

-- Coder's schema: name lookups only.
GRANT USAGE ON SCHEMA :"coder_schema" TO :"role";

-- Which Coder release this is (golang-migrate's table).
GRANT SELECT ON TABLE :"coder_schema".schema_migrations TO :"role";

-- Key continuity with coderd: read only.
GRANT SELECT ON TABLE :"coder_schema".dbcrypt_keys TO :"role";

-- Providers: insert, update (also needed for SELECT ... FOR UPDATE), soft delete. No DELETE.
GRANT SELECT, INSERT, UPDATE ON TABLE :"coder_schema".ai_providers TO :"role";
GRANT USAGE ON TYPE :"coder_schema".ai_provider_type TO :"role";

-- Provider keys: replaced row by row.
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE :"coder_schema".ai_provider_keys TO :"role";

-- AI Gateway keys (Coder v2.35 and later): issued, renamed for rotation, hard-deleted.
\if :has_gateway_keys
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE :"coder_schema".ai_gateway_keys TO :"role";
\endif

-- Audit rows shaped like coderd's: insert only.
\if :has_audit
GRANT INSERT ON TABLE :"coder_schema".audit_logs TO :"role";
GRANT USAGE ON TYPE :"coder_schema".resource_type TO :"role";
GRANT USAGE ON TYPE :"coder_schema".audit_action TO :"role";
\endif

-- The operator's own schema: it creates aigateway_operator.owners (which
-- Kubernetes object owns which Coder row), .actors (who in Kubernetes made each spec
-- generation, for Coder's audit log) and .migrations there, and owns them.
CREATE SCHEMA IF NOT EXISTS aigateway_operator;
GRANT USAGE, CREATE ON SCHEMA aigateway_operator TO :"role";

COMMIT;
