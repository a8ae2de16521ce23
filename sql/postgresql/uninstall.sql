-- mibridge: remove everything install.sql created. THIS DELETES the outbox,
-- inbox, journal, audit and notice rows, the insured regions, the order book and the
-- reconciliation results: export them first if you need the history.
-- psql -1 -v ON_ERROR_STOP=1 -d hisdb -f sql/postgresql/uninstall.sql
-- `mibridge db uninstall` runs this file too, and first refuses while requests
-- are still open (unless --force).

-- Refuse while an object outside mibridge still uses ours: an HIS trigger that
-- calls mi_enqueue (sql/postgresql/examples/his_charge_trigger.sql) would make
-- every HIS charge insert fail once mi_enqueue is gone. Drop those first.
-- Function bodies are not tracked by pg_depend, so they are searched by name.
DO $$
DECLARE
    users text;
BEGIN
    SELECT string_agg(what, ', ' ORDER BY what) INTO users FROM (
        SELECT DISTINCT 'function ' || p.oid::regprocedure::text AS what
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND p.proname NOT LIKE 'mi\_%'
           AND p.prosrc ~ '\mmi_(enqueue|inbox_consume|requeue|resolve|cancel|outbox|inbox|journal|identity|audit|notice|schema_version|insured_region|order|order_refund|recon_[a-z_]+|channel_bill|v_[a-z_]+)\M'
        UNION
        SELECT DISTINCT 'view ' || v.oid::regclass::text
          FROM pg_depend d
          JOIN pg_rewrite w ON w.oid = d.objid AND d.classid = 'pg_rewrite'::regclass
          JOIN pg_class v ON v.oid = w.ev_class
          JOIN pg_class t ON t.oid = d.refobjid AND d.refclassid = 'pg_class'::regclass
         WHERE t.relname LIKE 'mi\_%' AND v.relname NOT LIKE 'mi\_%'
        UNION
        SELECT DISTINCT 'constraint ' || c.conname || ' on ' || c.conrelid::regclass::text
          FROM pg_constraint c JOIN pg_class t ON t.oid = c.confrelid
         WHERE c.contype = 'f' AND t.relname LIKE 'mi\_%' AND c.conrelid::regclass::text NOT LIKE 'mi\_%'
    ) x;
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'mibridge: not uninstalled: these objects use mibridge''s and would break: %. Drop them first (for the example trigger: DROP TRIGGER his_charge_mi_tg ON his_charge; DROP FUNCTION his_charge_mi();)', users;
    END IF;
END $$;

DROP VIEW IF EXISTS mi_v_insured_regions;
DROP VIEW IF EXISTS mi_v_recon_days;
DROP VIEW IF EXISTS mi_v_recon_review;
DROP VIEW IF EXISTS mi_v_reconciliation;
DROP VIEW IF EXISTS mi_v_order_refunds;
DROP VIEW IF EXISTS mi_v_orders;
DROP VIEW IF EXISTS mi_v_today;
DROP VIEW IF EXISTS mi_v_failed;
DROP VIEW IF EXISTS mi_v_held;
DROP VIEW IF EXISTS mi_v_in_flight;
DROP VIEW IF EXISTS mi_v_pending;
DROP FUNCTION IF EXISTS mi_cancel(BIGINT, VARCHAR, VARCHAR);
DROP FUNCTION IF EXISTS mi_resolve(BIGINT, VARCHAR, VARCHAR);
DROP FUNCTION IF EXISTS mi_requeue(BIGINT, VARCHAR, VARCHAR);
DROP FUNCTION IF EXISTS mi_inbox_consume(BIGINT, VARCHAR);
DROP FUNCTION IF EXISTS mi_enqueue(VARCHAR, VARCHAR, VARCHAR, TEXT);
DROP TABLE IF EXISTS mi_insured_region;
DROP TABLE IF EXISTS mi_channel_bill;
DROP TABLE IF EXISTS mi_recon_item;
DROP TABLE IF EXISTS mi_recon_run;
DROP TABLE IF EXISTS mi_order_refund;
DROP TABLE IF EXISTS mi_order;
DROP TABLE IF EXISTS mi_secret;
DROP TABLE IF EXISTS mi_notice;
DROP TABLE IF EXISTS mi_audit;
DROP TABLE IF EXISTS mi_identity;
DROP TABLE IF EXISTS mi_journal;
DROP TABLE IF EXISTS mi_inbox;
DROP TABLE IF EXISTS mi_outbox;
DROP TABLE IF EXISTS mi_schema_version;
DROP FUNCTION IF EXISTS mi_outbox_notify();
DROP FUNCTION IF EXISTS mi_outbox_validate();
DROP FUNCTION IF EXISTS mi_json_duplicate_key(json);
