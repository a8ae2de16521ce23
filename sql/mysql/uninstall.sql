-- mibridge: remove everything install.sql created. THIS DELETES the outbox,
-- inbox, journal, audit and notice rows: export them first if you need the history.
-- mysql --database=hisdb < sql/mysql/uninstall.sql
DROP VIEW IF EXISTS mi_v_today;
DROP VIEW IF EXISTS mi_v_failed;
DROP VIEW IF EXISTS mi_v_held;
DROP VIEW IF EXISTS mi_v_in_flight;
DROP VIEW IF EXISTS mi_v_pending;
DROP PROCEDURE IF EXISTS mi_inbox_consume;
DROP PROCEDURE IF EXISTS mi_enqueue;
DROP TRIGGER IF EXISTS mi_outbox_validate_tg;
DROP TABLE IF EXISTS mi_secret;
DROP TABLE IF EXISTS mi_notice;
DROP TABLE IF EXISTS mi_audit;
DROP TABLE IF EXISTS mi_identity;
DROP TABLE IF EXISTS mi_journal;
DROP TABLE IF EXISTS mi_inbox;
DROP TABLE IF EXISTS mi_outbox;
