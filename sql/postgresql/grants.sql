-- mibridge: least-privilege rights for the daemon's login and for the HIS's
-- login. Run as the owner of the mi_ objects (the DBA who ran install.sql),
-- after install.sql, with two psql variables and nothing edited in this file:
--   psql -1 -v ON_ERROR_STOP=1 -d hisdb \
--        -v daemon_role=mibridge_daemon -v his_role=his_app \
--        -f sql/postgresql/grants.sql
-- then give the daemon's login a password without it appearing on a command
-- line or in a file (psql sends it hashed):
--   psql -d hisdb -c '\password mibridge_daemon'
-- and put the same password in the daemon's environment (MIBRIDGE_DB_PASSWORD).
-- `mibridge db grants --url ... --daemon-role ... --his-role ...` runs this file
-- with the same two values.
--
-- daemon_role: created here when it does not exist (LOGIN, no password yet).
--   It reads and writes the mi_ tables and nothing else in the HIS database;
--   it cannot create, alter or drop anything.
-- his_role: the HIS's existing login. It may enqueue (mi_enqueue), consume
--   (mi_inbox_consume) and read its results (mi_inbox, mi_identity), the insured
--   regions (mi_v_insured_regions) and the order book and reconciliation views of
--   migration 004, and nothing else of mibridge's: both functions run with their owner's rights
--   (SECURITY DEFINER), so EXECUTE is all it needs.
-- mibridge_operator: a group role for people who run mi_requeue / mi_resolve /
--   mi_cancel (migration 005) and read the views; created here, given to a
--   person's login by hand (GRANT mibridge_operator TO alice).
-- Running this file again is harmless.
SELECT pg_catalog.set_config('mibridge.daemon_role', :'daemon_role', false),
       pg_catalog.set_config('mibridge.his_role', :'his_role', false);

DO $$
DECLARE
    daemon text := current_setting('mibridge.daemon_role');
    his    text := current_setting('mibridge.his_role');
    schema text := current_schema();
BEGIN
    IF daemon = '' OR his = '' OR daemon = his THEN
        RAISE EXCEPTION 'mibridge: daemon_role and his_role must be two different role names';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = his) THEN
        RAISE EXCEPTION 'mibridge: the HIS role "%" does not exist; his_role names the HIS''s existing login', his;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = daemon) THEN
        EXECUTE format('CREATE ROLE %I LOGIN', daemon);
    END IF;

    -- The daemon: DML on its tables, and no more.
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', schema, daemon);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON mi_outbox, mi_inbox, mi_journal, mi_identity TO %I', daemon);
    -- Tokens and ID numbers (mi_secret, migration 003): the daemon only; never the HIS.
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON mi_secret TO %I', daemon);
    -- Audit rows are never changed or removed by the daemon.
    EXECUTE format('GRANT SELECT, INSERT ON mi_audit TO %I', daemon);
    -- The daemon records and counts notices but never removes one.
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON mi_notice TO %I', daemon);
    EXECUTE format('GRANT SELECT ON mi_schema_version, mi_v_pending, mi_v_in_flight, mi_v_held, mi_v_failed, mi_v_today TO %I', daemon);
    -- The admin functions (migration 005): the CLI and the console run them as the daemon.
    EXECUTE format('GRANT EXECUTE ON FUNCTION mi_requeue(BIGINT, VARCHAR, VARCHAR), mi_resolve(BIGINT, VARCHAR, VARCHAR), mi_cancel(BIGINT, VARCHAR, VARCHAR) TO %I', daemon);

    -- mibridge_operator: a group role (no login) for the DBAs and operators who run
    -- the admin functions in SQL and read the views, journal and audit; it may not
    -- change a table directly. Give it to a person's own login:
    --   GRANT mibridge_operator TO alice;
    -- (the audit then names alice: mi_audit.db_login). Never to the HIS's login.
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mibridge_operator') THEN
        CREATE ROLE mibridge_operator NOLOGIN;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO mibridge_operator', schema);
    GRANT EXECUTE ON FUNCTION mi_requeue(BIGINT, VARCHAR, VARCHAR), mi_resolve(BIGINT, VARCHAR, VARCHAR),
        mi_cancel(BIGINT, VARCHAR, VARCHAR) TO mibridge_operator;
    GRANT SELECT ON mi_outbox, mi_inbox, mi_journal, mi_audit, mi_notice, mi_schema_version, mi_v_pending,
        mi_v_in_flight, mi_v_held, mi_v_failed, mi_v_today TO mibridge_operator;

    -- The insured regions (migration 006): the daemon fills and refreshes them, never deletes one.
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON mi_insured_region TO %I', daemon);
    EXECUTE format('GRANT SELECT ON mi_v_insured_regions TO %I', daemon);
    -- The order book (migration 004): booked and updated, never deleted (purge keeps it).
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON mi_order, mi_order_refund, mi_recon_run TO %I', daemon);
    -- A run's results and bill rows are replaced by the next run of the same day.
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON mi_recon_item, mi_channel_bill TO %I', daemon);
    EXECUTE format('GRANT SELECT ON mi_v_orders, mi_v_order_refunds, mi_v_reconciliation, mi_v_recon_review, mi_v_recon_days TO %I', daemon);

    -- The HIS: enqueue, consume, read its results.
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', schema, his);
    EXECUTE format('GRANT EXECUTE ON FUNCTION mi_enqueue(VARCHAR, VARCHAR, VARCHAR, TEXT), mi_inbox_consume(BIGINT, VARCHAR) TO %I', his);
    EXECUTE format('GRANT SELECT ON mi_inbox, mi_identity TO %I', his);
    -- The insured regions the hospital supports, enabled ones only (docs/identity.md).
    EXECUTE format('GRANT SELECT ON mi_v_insured_regions TO %I', his);
    -- The order book and the reconciliation's results, read-only, through their views.
    EXECUTE format('GRANT SELECT ON mi_v_orders, mi_v_order_refunds, mi_v_reconciliation, mi_v_recon_review, mi_v_recon_days TO %I', his);

    -- PostgreSQL before 15 lets every role (PUBLIC) create objects in the
    -- public schema: the daemon's login could then plant a table or function
    -- there. Take that right away where PUBLIC still has it. Roles that did
    -- create objects in public need GRANT CREATE ON SCHEMA public TO them.
    IF EXISTS (SELECT 1 FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
                WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'CREATE') THEN
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
        RAISE NOTICE 'mibridge: revoked CREATE on schema public from PUBLIC (the default before PostgreSQL 15)';
    END IF;
END $$;
