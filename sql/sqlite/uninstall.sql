-- mibridge: remove everything install.sql created. THIS DELETES the outbox,
-- inbox, journal, audit and notice rows, the insured regions, the order book and the
-- reconciliation results: export them first if you need the history.
-- sqlite3 his.db < sql/sqlite/uninstall.sql
-- `mibridge db uninstall` runs this file too, and first refuses while requests
-- are still open (unless --force). It runs as one transaction; .bail on stops
-- the sqlite3 shell at an error.
.bail on
BEGIN IMMEDIATE;

-- Refuse while an object outside mibridge still uses ours: an HIS trigger that
-- inserts into mi_outbox (sql/sqlite/examples/his_charge_trigger.sql) would
-- make every HIS charge insert fail once mi_outbox is gone. Drop those first.
-- (SQLite has no procedural code: the refusal is a named CHECK constraint
-- that fails when any such object exists.)
CREATE TEMP TABLE mi_uninstall_guard (
    users TEXT CONSTRAINT "mibridge: not uninstalled: HIS triggers or views use mibridge's objects and would break; drop them first (the example: DROP TRIGGER his_charge_mi_tg)"
          CHECK (users IS NULL)
);
CREATE TEMP VIEW mi_uninstall_users AS
SELECT type, name FROM main.sqlite_master
 WHERE type IN ('trigger', 'view', 'table') AND name NOT LIKE 'mi\_%' ESCAPE '\'
   AND (sql LIKE '%mi\_outbox%' ESCAPE '\' OR sql LIKE '%mi\_inbox%' ESCAPE '\'
        OR sql LIKE '%mi\_journal%' ESCAPE '\' OR sql LIKE '%mi\_identity%' ESCAPE '\'
        OR sql LIKE '%mi\_audit%' ESCAPE '\' OR sql LIKE '%mi\_notice%' ESCAPE '\'
        OR sql LIKE '%mi\_insured\_region%' ESCAPE '\'
        OR sql LIKE '%mi\_order%' ESCAPE '\' OR sql LIKE '%mi\_recon\_%' ESCAPE '\'
        OR sql LIKE '%mi\_channel\_bill%' ESCAPE '\' OR sql LIKE '%mi\_v\_%' ESCAPE '\');
INSERT INTO mi_uninstall_guard (users) SELECT group_concat(type || ' ' || name, ', ') FROM mi_uninstall_users;
DROP VIEW temp.mi_uninstall_users;
DROP TABLE temp.mi_uninstall_guard;

DROP VIEW IF EXISTS mi_cancel;
DROP VIEW IF EXISTS mi_resolve;
DROP VIEW IF EXISTS mi_requeue;
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
DROP VIEW IF EXISTS mi_inbox_consume;
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
COMMIT;
