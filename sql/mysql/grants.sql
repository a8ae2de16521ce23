-- mibridge: least-privilege login for the daemon. Run as a DBA after install.sql,
-- in the HIS database (replace hisdb and the host pattern; choose the password
-- here and put it in the daemon's environment as MIBRIDGE_DB_PASSWORD).
CREATE USER IF NOT EXISTS 'mibridge_daemon'@'localhost' IDENTIFIED BY 'change-me';
GRANT SELECT, INSERT, UPDATE, DELETE ON mi_outbox   TO 'mibridge_daemon'@'localhost';
GRANT SELECT, INSERT, UPDATE, DELETE ON mi_inbox    TO 'mibridge_daemon'@'localhost';
GRANT SELECT, INSERT, UPDATE, DELETE ON mi_journal  TO 'mibridge_daemon'@'localhost';
GRANT SELECT, INSERT, UPDATE, DELETE ON mi_identity TO 'mibridge_daemon'@'localhost';
-- Tokens and ID numbers (mi_secret): the daemon only; never grant it to the HIS.
GRANT SELECT, INSERT, DELETE ON mi_secret TO 'mibridge_daemon'@'localhost';
-- Audit rows are never changed or removed by the daemon.
GRANT SELECT, INSERT ON mi_audit TO 'mibridge_daemon'@'localhost';
-- The daemon records and counts notices but never removes one.
GRANT SELECT, INSERT, UPDATE ON mi_notice TO 'mibridge_daemon'@'localhost';
GRANT SELECT ON mi_v_pending   TO 'mibridge_daemon'@'localhost';
GRANT SELECT ON mi_v_in_flight TO 'mibridge_daemon'@'localhost';
GRANT SELECT ON mi_v_held      TO 'mibridge_daemon'@'localhost';
GRANT SELECT ON mi_v_failed    TO 'mibridge_daemon'@'localhost';
GRANT SELECT ON mi_v_today     TO 'mibridge_daemon'@'localhost';

-- The HIS's own login needs only these (replace his_app):
-- GRANT EXECUTE ON PROCEDURE mi_enqueue TO 'his_app'@'%';
-- GRANT EXECUTE ON PROCEDURE mi_inbox_consume TO 'his_app'@'%';
-- GRANT SELECT ON mi_inbox TO 'his_app'@'%';
-- GRANT SELECT ON mi_identity TO 'his_app'@'%';
