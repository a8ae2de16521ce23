-- mibridge: least-privilege rights for the daemon's login and for the HIS's
-- login. Run as a DBA after install.sql, in the HIS database, with sqlcmd
-- variables and nothing edited in this file:
--   sqlcmd -S dbhost -d hisdb -b -I -v daemon_login="mibridge_daemon" \
--          daemon_password="..." his_user="his_app" -i sql/sqlserver/grants.sql
-- (`mibridge db grants --url mssql://... --var daemon_login=... --var
-- daemon_password=... --var his_user=...` runs it the same way.) Put the same
-- password in the daemon's environment as MIBRIDGE_DB_PASSWORD, never in a file;
-- with Windows authentication for the daemon, create its login FROM WINDOWS
-- instead and leave this file's CREATE LOGIN out.
--
-- daemon_login: created here if it does not exist, with CHECK_POLICY and
--   CHECK_EXPIRATION OFF: the Windows password policy would expire the
--   service's password and lock it out after failed retries, and either stops
--   every payment of the hospital. Use a long random password: no person types it.
--   It reads and writes the mi_ tables and nothing else in the HIS database;
--   it cannot create, alter or drop anything.
-- his_user: the HIS's existing database user. It may enqueue (mi_enqueue),
--   consume (mi_inbox_consume) and read its results (mi_inbox, mi_identity, the
--   insured regions (mi_v_insured_regions), the order book and reconciliation views of
--   migration 004), and nothing else of mibridge's: the procedures and views reach the
--   tables through ownership chaining, so EXECUTE and SELECT on a view are all it needs.
-- DEFAULT_SCHEMA must be the schema install.sql created the mi_ objects in
-- (dbo unless your login's default schema is another one).
-- Running this file again is harmless.
IF NOT EXISTS (SELECT 1 FROM sys.server_principals WHERE name = N'$(daemon_login)')
    CREATE LOGIN [$(daemon_login)] WITH PASSWORD = N'$(daemon_password)', CHECK_POLICY = OFF, CHECK_EXPIRATION = OFF;
ELSE
    ALTER LOGIN [$(daemon_login)] WITH CHECK_POLICY = OFF, CHECK_EXPIRATION = OFF;
GO
IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'$(daemon_login)')
    CREATE USER [$(daemon_login)] FOR LOGIN [$(daemon_login)] WITH DEFAULT_SCHEMA = dbo;
IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'$(his_user)')
    THROW 50093, N'mibridge: his_user names the HIS''s existing database user, and there is none by that name', 1;
GRANT SELECT, INSERT, UPDATE, DELETE ON mi_outbox   TO [$(daemon_login)];
GRANT SELECT, INSERT, UPDATE, DELETE ON mi_inbox    TO [$(daemon_login)];
GRANT SELECT, INSERT, UPDATE, DELETE ON mi_journal  TO [$(daemon_login)];
GRANT SELECT, INSERT, UPDATE, DELETE ON mi_identity TO [$(daemon_login)];
-- Tokens and ID numbers (mi_secret, migration 003): the daemon only; never the HIS.
GRANT SELECT, INSERT, DELETE ON mi_secret   TO [$(daemon_login)];
-- Audit rows are never changed or removed by the daemon.
GRANT SELECT, INSERT ON mi_audit TO [$(daemon_login)];
-- The daemon records and counts notices but never removes one.
GRANT SELECT, INSERT, UPDATE ON mi_notice TO [$(daemon_login)];
GRANT SELECT ON mi_schema_version TO [$(daemon_login)];
GRANT SELECT ON mi_v_pending   TO [$(daemon_login)];
GRANT SELECT ON mi_v_in_flight TO [$(daemon_login)];
GRANT SELECT ON mi_v_held      TO [$(daemon_login)];
GRANT SELECT ON mi_v_failed    TO [$(daemon_login)];
GRANT SELECT ON mi_v_today     TO [$(daemon_login)];
-- The admin procedures (migration 005): the CLI and the console run them as the daemon.
GRANT EXECUTE ON mi_requeue TO [$(daemon_login)];
GRANT EXECUTE ON mi_resolve TO [$(daemon_login)];
GRANT EXECUTE ON mi_cancel  TO [$(daemon_login)];
-- mibridge_operator: a database role for the DBAs and operators who run the admin
-- procedures and read the views, journal and audit; it may not change a table
-- directly. Give it to a person's own user: ALTER ROLE mibridge_operator ADD MEMBER [alice];
-- never to the HIS's user.
IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'mibridge_operator' AND type = 'R')
    CREATE ROLE mibridge_operator;
GRANT EXECUTE ON mi_requeue TO mibridge_operator;
GRANT EXECUTE ON mi_resolve TO mibridge_operator;
GRANT EXECUTE ON mi_cancel  TO mibridge_operator;
GRANT SELECT ON mi_outbox      TO mibridge_operator;
GRANT SELECT ON mi_inbox       TO mibridge_operator;
GRANT SELECT ON mi_journal     TO mibridge_operator;
GRANT SELECT ON mi_audit       TO mibridge_operator;
GRANT SELECT ON mi_v_pending   TO mibridge_operator;
GRANT SELECT ON mi_v_in_flight TO mibridge_operator;
GRANT SELECT ON mi_v_held      TO mibridge_operator;
GRANT SELECT ON mi_v_failed    TO mibridge_operator;
GRANT SELECT ON mi_v_today     TO mibridge_operator;

-- The insured regions (migration 006): the daemon fills and refreshes them, never deletes one.
GRANT SELECT, INSERT, UPDATE ON mi_insured_region TO [$(daemon_login)];
GRANT SELECT ON mi_v_insured_regions TO [$(daemon_login)];
-- The order book (migration 004): booked and updated, never deleted (purge keeps it).
GRANT SELECT, INSERT, UPDATE ON mi_order        TO [$(daemon_login)];
GRANT SELECT, INSERT, UPDATE ON mi_order_refund TO [$(daemon_login)];
GRANT SELECT, INSERT, UPDATE ON mi_recon_run    TO [$(daemon_login)];
-- A run's results and bill rows are replaced by the next run of the same day.
GRANT SELECT, INSERT, DELETE ON mi_recon_item   TO [$(daemon_login)];
GRANT SELECT, INSERT, DELETE ON mi_channel_bill TO [$(daemon_login)];
GRANT SELECT ON mi_v_orders         TO [$(daemon_login)];
GRANT SELECT ON mi_v_order_refunds  TO [$(daemon_login)];
GRANT SELECT ON mi_v_reconciliation TO [$(daemon_login)];
GRANT SELECT ON mi_v_recon_review   TO [$(daemon_login)];
GRANT SELECT ON mi_v_recon_days     TO [$(daemon_login)];
-- The HIS: enqueue, consume, read its results.
GRANT EXECUTE ON mi_enqueue       TO [$(his_user)];
GRANT EXECUTE ON mi_inbox_consume TO [$(his_user)];
GRANT SELECT ON mi_inbox    TO [$(his_user)];
GRANT SELECT ON mi_identity TO [$(his_user)];
-- The insured regions the hospital supports, enabled ones only (docs/identity.md).
GRANT SELECT ON mi_v_insured_regions TO [$(his_user)];
-- The order book and the reconciliation's results, read-only, through their views.
GRANT SELECT ON mi_v_orders         TO [$(his_user)];
GRANT SELECT ON mi_v_order_refunds  TO [$(his_user)];
GRANT SELECT ON mi_v_reconciliation TO [$(his_user)];
GRANT SELECT ON mi_v_recon_review   TO [$(his_user)];
GRANT SELECT ON mi_v_recon_days     TO [$(his_user)];
GO
