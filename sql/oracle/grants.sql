-- mibridge: least-privilege login for the daemon. Run as a DBA after install.sql:
--   sqlplus system@//dbhost:1521/HISPDB @sql/oracle/grants.sql
-- SQL*Plus asks for two values: his_schema (the schema that owns the mi_
-- objects, e.g. HIS) and daemon_password (put the same password in the
-- daemon's environment as MIBRIDGE_DB_PASSWORD, never in a file).
-- The daemon reads and writes the mi_ tables and nothing else in the HIS
-- schema; it cannot create, alter or drop anything, and owns no objects (so
-- it needs no tablespace quota). Its private synonyms let it use the plain
-- names (mi_outbox, ...) that the daemon's SQL uses.
-- This file is for SQL*Plus only (it prompts once for each substitution name); mibridge
-- does not run it.
CREATE USER mibridge_daemon IDENTIFIED BY "&&daemon_password"
/
GRANT CREATE SESSION TO mibridge_daemon
/
GRANT SELECT, INSERT, UPDATE, DELETE ON &&his_schema..mi_outbox TO mibridge_daemon
/
GRANT SELECT, INSERT, UPDATE, DELETE ON &&his_schema..mi_inbox TO mibridge_daemon
/
GRANT SELECT, INSERT, UPDATE, DELETE ON &&his_schema..mi_journal TO mibridge_daemon
/
GRANT SELECT, INSERT, UPDATE, DELETE ON &&his_schema..mi_identity TO mibridge_daemon
/
-- Tokens and ID numbers (mi_secret): the daemon only; never grant it to the HIS.
GRANT SELECT, INSERT, DELETE ON &&his_schema..mi_secret TO mibridge_daemon
/
-- Audit rows are never changed or removed by the daemon.
GRANT SELECT, INSERT ON &&his_schema..mi_audit TO mibridge_daemon
/
-- The daemon records and counts notices but never removes one.
GRANT SELECT, INSERT, UPDATE ON &&his_schema..mi_notice TO mibridge_daemon
/
GRANT SELECT ON &&his_schema..mi_v_pending TO mibridge_daemon
/
GRANT SELECT ON &&his_schema..mi_v_in_flight TO mibridge_daemon
/
GRANT SELECT ON &&his_schema..mi_v_held TO mibridge_daemon
/
GRANT SELECT ON &&his_schema..mi_v_failed TO mibridge_daemon
/
GRANT SELECT ON &&his_schema..mi_v_today TO mibridge_daemon
/
GRANT EXECUTE ON &&his_schema..mi_enqueue TO mibridge_daemon
/
GRANT EXECUTE ON &&his_schema..mi_inbox_consume TO mibridge_daemon
/
CREATE SYNONYM mibridge_daemon.mi_outbox FOR &&his_schema..mi_outbox
/
CREATE SYNONYM mibridge_daemon.mi_inbox FOR &&his_schema..mi_inbox
/
CREATE SYNONYM mibridge_daemon.mi_journal FOR &&his_schema..mi_journal
/
CREATE SYNONYM mibridge_daemon.mi_identity FOR &&his_schema..mi_identity
/
CREATE SYNONYM mibridge_daemon.mi_secret FOR &&his_schema..mi_secret
/
CREATE SYNONYM mibridge_daemon.mi_audit FOR &&his_schema..mi_audit
/
CREATE SYNONYM mibridge_daemon.mi_notice FOR &&his_schema..mi_notice
/
CREATE SYNONYM mibridge_daemon.mi_v_pending FOR &&his_schema..mi_v_pending
/
CREATE SYNONYM mibridge_daemon.mi_v_in_flight FOR &&his_schema..mi_v_in_flight
/
CREATE SYNONYM mibridge_daemon.mi_v_held FOR &&his_schema..mi_v_held
/
CREATE SYNONYM mibridge_daemon.mi_v_failed FOR &&his_schema..mi_v_failed
/
CREATE SYNONYM mibridge_daemon.mi_v_today FOR &&his_schema..mi_v_today
/
CREATE SYNONYM mibridge_daemon.mi_enqueue FOR &&his_schema..mi_enqueue
/
CREATE SYNONYM mibridge_daemon.mi_inbox_consume FOR &&his_schema..mi_inbox_consume
/
-- The HIS's own login needs only these (replace his_app; skip them when the
-- HIS itself owns the mi_ objects):
-- GRANT EXECUTE ON HIS.mi_enqueue TO his_app;
-- GRANT EXECUTE ON HIS.mi_inbox_consume TO his_app;
-- GRANT SELECT ON HIS.mi_inbox TO his_app;
-- GRANT SELECT ON HIS.mi_identity TO his_app;
-- GRANT INSERT ON HIS.mi_outbox TO his_app;   -- only if HIS triggers insert directly
