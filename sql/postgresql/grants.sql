-- mibridge: least-privilege login for the daemon. Run as a DBA after install.sql.
-- The daemon reads and writes the mi_ tables and nothing else in the HIS schema;
-- it cannot create, alter or drop anything. Set the password out of band:
--   psql -d hisdb -v daemon_password="'...'" -f sql/postgresql/grants.sql
-- (the password goes in the daemon's environment, MIBRIDGE_DB_PASSWORD, never in a file).
CREATE ROLE mibridge_daemon LOGIN PASSWORD :daemon_password;
GRANT USAGE ON SCHEMA public TO mibridge_daemon;
GRANT SELECT, INSERT, UPDATE, DELETE ON mi_outbox, mi_inbox, mi_journal, mi_identity TO mibridge_daemon;
-- Tokens and ID numbers (mi_secret): the daemon only; never grant it to the HIS.
GRANT SELECT, INSERT, DELETE ON mi_secret TO mibridge_daemon;
-- Audit rows are never changed or removed by the daemon.
GRANT SELECT, INSERT ON mi_audit TO mibridge_daemon;
-- The daemon records and counts notices but never removes one.
GRANT SELECT, INSERT, UPDATE ON mi_notice TO mibridge_daemon;
GRANT SELECT ON mi_v_pending, mi_v_in_flight, mi_v_held, mi_v_failed, mi_v_today TO mibridge_daemon;
GRANT EXECUTE ON FUNCTION mi_enqueue(VARCHAR, VARCHAR, VARCHAR, TEXT), mi_inbox_consume(BIGINT, VARCHAR) TO mibridge_daemon;

-- The HIS's own login needs only these (replace his_app with its role):
-- GRANT EXECUTE ON FUNCTION mi_enqueue(VARCHAR, VARCHAR, VARCHAR, TEXT), mi_inbox_consume(BIGINT, VARCHAR) TO his_app;
-- GRANT SELECT ON mi_inbox, mi_identity TO his_app;
-- GRANT INSERT ON mi_outbox TO his_app;   -- only if HIS triggers insert directly
