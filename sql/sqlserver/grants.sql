-- mibridge: least-privilege login for the daemon. Run as a DBA after
-- install.sql, in the HIS database; choose the password on the command line
-- and put the same one in the daemon's environment as MIBRIDGE_DB_PASSWORD
-- (never in a file):
--   sqlcmd -S dbhost -d hisdb -b -I -v daemon_password="..." -i sql/sqlserver/grants.sql
-- The daemon reads and writes the mi_ tables and nothing else in the HIS
-- database; it cannot create, alter or drop anything. DEFAULT_SCHEMA must be
-- the schema install.sql created the mi_ objects in (dbo unless your login's
-- default schema is another one).
-- This file is for sqlcmd only ($(name) is a sqlcmd variable); mibridge does not run it.
CREATE LOGIN mibridge_daemon WITH PASSWORD = N'$(daemon_password)', CHECK_POLICY = ON;
GO
CREATE USER mibridge_daemon FOR LOGIN mibridge_daemon WITH DEFAULT_SCHEMA = dbo;
GRANT SELECT, INSERT, UPDATE, DELETE ON mi_outbox   TO mibridge_daemon;
GRANT SELECT, INSERT, UPDATE, DELETE ON mi_inbox    TO mibridge_daemon;
GRANT SELECT, INSERT, UPDATE, DELETE ON mi_journal  TO mibridge_daemon;
GRANT SELECT, INSERT, UPDATE, DELETE ON mi_identity TO mibridge_daemon;
-- Tokens and ID numbers (mi_secret): the daemon only; never grant it to the HIS.
GRANT SELECT, INSERT, DELETE ON mi_secret   TO mibridge_daemon;
-- Audit rows are never changed or removed by the daemon.
GRANT SELECT, INSERT ON mi_audit TO mibridge_daemon;
-- The daemon records and counts notices but never removes one.
GRANT SELECT, INSERT, UPDATE ON mi_notice TO mibridge_daemon;
GRANT SELECT ON mi_v_pending   TO mibridge_daemon;
GRANT SELECT ON mi_v_in_flight TO mibridge_daemon;
GRANT SELECT ON mi_v_held      TO mibridge_daemon;
GRANT SELECT ON mi_v_failed    TO mibridge_daemon;
GRANT SELECT ON mi_v_today     TO mibridge_daemon;
GRANT EXECUTE ON mi_enqueue       TO mibridge_daemon;
GRANT EXECUTE ON mi_inbox_consume TO mibridge_daemon;
GO

-- The HIS's own login needs only these (replace his_app with its database user):
-- GRANT EXECUTE ON mi_enqueue TO his_app;
-- GRANT EXECUTE ON mi_inbox_consume TO his_app;
-- GRANT SELECT ON mi_inbox TO his_app;
-- GRANT SELECT ON mi_identity TO his_app;
-- GRANT INSERT ON mi_outbox TO his_app;   -- only if HIS triggers insert directly
