-- mibridge: least-privilege rights for the daemon's login and for the HIS's
-- login. Run as a DBA after install.sql:
--   sqlplus system@//dbhost:1521/HISPDB @sql/oracle/grants.sql
-- SQL*Plus asks once for each value (nothing is edited in this file):
--   his_schema       the schema that owns the mi_ objects (e.g. HIS)
--   his_user         the HIS application's login (e.g. HIS_APP; give the owner
--                    itself when the HIS logs in as the owner: then nothing is
--                    granted to it, it has everything already)
--   daemon_user      the daemon's login (e.g. MIBRIDGE_DAEMON), created here
--   daemon_password  its password (put the same one in the daemon's
--                    environment as MIBRIDGE_DB_PASSWORD, never in a file)
-- `mibridge db grants --url oracle://system@... --var his_schema=HIS --var his_user=HIS_APP
-- --var daemon_user=MIBRIDGE_DAEMON --var daemon_password=...` runs it the same way.
--
-- The daemon's login gets its own profile: Oracle's DEFAULT profile expires
-- a password after 180 days and locks the account after 10 failed logins,
-- and either stops every payment of the hospital. Here the password does not
-- expire, and 10 failed logins lock the account for one minute only (a
-- wrong password in the daemon's environment is then fixed without a DBA).
-- Use a long random password: no person types it.
-- The daemon reads and writes the mi_ tables and nothing else in the HIS
-- schema; it cannot create, alter or drop anything, and owns no objects (so
-- it needs no tablespace quota). Private synonyms let both logins use the
-- plain names (mi_outbox, mi_enqueue ...) that the daemon and the HIS use.
-- Running this file again is harmless.
BEGIN
    EXECUTE IMMEDIATE 'CREATE PROFILE mibridge_service LIMIT PASSWORD_LIFE_TIME UNLIMITED'
        || ' PASSWORD_GRACE_TIME UNLIMITED FAILED_LOGIN_ATTEMPTS 10 PASSWORD_LOCK_TIME 1/1440';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-02379: the profile exists (an earlier run).
        IF SQLCODE <> -2379 THEN
            RAISE;
        END IF;
END;
/
BEGIN
    EXECUTE IMMEDIATE 'CREATE USER &&daemon_user IDENTIFIED BY "&&daemon_password" PROFILE mibridge_service';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-01920: the user exists (an earlier run): keep its password, set its profile.
        IF SQLCODE <> -1920 THEN
            RAISE;
        END IF;
        EXECUTE IMMEDIATE 'ALTER USER &&daemon_user PROFILE mibridge_service';
END;
/
GRANT CREATE SESSION TO &&daemon_user
/
GRANT SELECT, INSERT, UPDATE, DELETE ON &&his_schema..mi_outbox TO &&daemon_user
/
GRANT SELECT, INSERT, UPDATE, DELETE ON &&his_schema..mi_inbox TO &&daemon_user
/
GRANT SELECT, INSERT, UPDATE, DELETE ON &&his_schema..mi_journal TO &&daemon_user
/
GRANT SELECT, INSERT, UPDATE, DELETE ON &&his_schema..mi_identity TO &&daemon_user
/
-- Tokens and ID numbers (mi_secret, migration 003): the daemon only; never the HIS.
GRANT SELECT, INSERT, DELETE ON &&his_schema..mi_secret TO &&daemon_user
/
-- Audit rows are never changed or removed by the daemon.
GRANT SELECT, INSERT ON &&his_schema..mi_audit TO &&daemon_user
/
-- The daemon records and counts notices but never removes one.
GRANT SELECT, INSERT, UPDATE ON &&his_schema..mi_notice TO &&daemon_user
/
GRANT SELECT ON &&his_schema..mi_schema_version TO &&daemon_user
/
GRANT SELECT ON &&his_schema..mi_v_pending TO &&daemon_user
/
GRANT SELECT ON &&his_schema..mi_v_in_flight TO &&daemon_user
/
GRANT SELECT ON &&his_schema..mi_v_held TO &&daemon_user
/
GRANT SELECT ON &&his_schema..mi_v_failed TO &&daemon_user
/
GRANT SELECT ON &&his_schema..mi_v_today TO &&daemon_user
/
-- The insured regions (migration 006): the daemon fills and refreshes them, never deletes one.
GRANT SELECT, INSERT, UPDATE ON &&his_schema..mi_insured_region TO &&daemon_user
/
GRANT SELECT ON &&his_schema..mi_v_insured_regions TO &&daemon_user
-- The order book (migration 004): booked and updated, never deleted (purge keeps it).
GRANT SELECT, INSERT, UPDATE ON &&his_schema..mi_order TO &&daemon_user
/
GRANT SELECT, INSERT, UPDATE ON &&his_schema..mi_order_refund TO &&daemon_user
/
GRANT SELECT, INSERT, UPDATE ON &&his_schema..mi_recon_run TO &&daemon_user
/
-- A run's results and bill rows are replaced by the next run of the same day.
GRANT SELECT, INSERT, DELETE ON &&his_schema..mi_recon_item TO &&daemon_user
/
GRANT SELECT, INSERT, DELETE ON &&his_schema..mi_channel_bill TO &&daemon_user
/
GRANT SELECT ON &&his_schema..mi_v_orders TO &&daemon_user
/
GRANT SELECT ON &&his_schema..mi_v_order_refunds TO &&daemon_user
/
GRANT SELECT ON &&his_schema..mi_v_reconciliation TO &&daemon_user
/
GRANT SELECT ON &&his_schema..mi_v_recon_review TO &&daemon_user
/
GRANT SELECT ON &&his_schema..mi_v_recon_days TO &&daemon_user
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_outbox FOR &&his_schema..mi_outbox
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_inbox FOR &&his_schema..mi_inbox
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_journal FOR &&his_schema..mi_journal
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_identity FOR &&his_schema..mi_identity
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_secret FOR &&his_schema..mi_secret
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_audit FOR &&his_schema..mi_audit
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_notice FOR &&his_schema..mi_notice
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_schema_version FOR &&his_schema..mi_schema_version
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_v_pending FOR &&his_schema..mi_v_pending
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_v_in_flight FOR &&his_schema..mi_v_in_flight
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_v_held FOR &&his_schema..mi_v_held
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_v_failed FOR &&his_schema..mi_v_failed
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_v_today FOR &&his_schema..mi_v_today
/
-- The admin procedures (migration 005): the CLI and the console run them as the daemon.
GRANT EXECUTE ON &&his_schema..mi_requeue TO &&daemon_user
/
GRANT EXECUTE ON &&his_schema..mi_resolve TO &&daemon_user
/
GRANT EXECUTE ON &&his_schema..mi_cancel TO &&daemon_user
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_requeue FOR &&his_schema..mi_requeue
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_resolve FOR &&his_schema..mi_resolve
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_cancel FOR &&his_schema..mi_cancel
/
-- mibridge_operator: a role for the DBAs and operators who run the admin procedures
-- and read the views, journal and audit; it may not change a table directly. Give it
-- to a person's own login: GRANT mibridge_operator TO alice; never to the HIS's login.
BEGIN
    EXECUTE IMMEDIATE 'CREATE ROLE mibridge_operator';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-01921: the role exists (an earlier run).
        IF SQLCODE <> -1921 THEN
            RAISE;
        END IF;
END;
/
GRANT EXECUTE ON &&his_schema..mi_requeue TO mibridge_operator
/
GRANT EXECUTE ON &&his_schema..mi_resolve TO mibridge_operator
/
GRANT EXECUTE ON &&his_schema..mi_cancel TO mibridge_operator
/
GRANT SELECT ON &&his_schema..mi_outbox TO mibridge_operator
/
GRANT SELECT ON &&his_schema..mi_inbox TO mibridge_operator
/
GRANT SELECT ON &&his_schema..mi_journal TO mibridge_operator
/
GRANT SELECT ON &&his_schema..mi_audit TO mibridge_operator
/
GRANT SELECT ON &&his_schema..mi_v_pending TO mibridge_operator
/
GRANT SELECT ON &&his_schema..mi_v_held TO mibridge_operator
/
GRANT SELECT ON &&his_schema..mi_v_in_flight TO mibridge_operator
/
GRANT SELECT ON &&his_schema..mi_v_failed TO mibridge_operator
/
GRANT SELECT ON &&his_schema..mi_v_today TO mibridge_operator
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_insured_region FOR &&his_schema..mi_insured_region
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_v_insured_regions FOR &&his_schema..mi_v_insured_regions
/
-- The HIS's login: enqueue, consume, read its results and the insured regions, and nothing else. The
CREATE OR REPLACE SYNONYM &&daemon_user..mi_order FOR &&his_schema..mi_order
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_order_refund FOR &&his_schema..mi_order_refund
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_recon_run FOR &&his_schema..mi_recon_run
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_recon_item FOR &&his_schema..mi_recon_item
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_channel_bill FOR &&his_schema..mi_channel_bill
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_v_orders FOR &&his_schema..mi_v_orders
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_v_order_refunds FOR &&his_schema..mi_v_order_refunds
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_v_reconciliation FOR &&his_schema..mi_v_reconciliation
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_v_recon_review FOR &&his_schema..mi_v_recon_review
/
CREATE OR REPLACE SYNONYM &&daemon_user..mi_v_recon_days FOR &&his_schema..mi_v_recon_days
/
-- The HIS's login: enqueue, consume, read its results, and nothing else. The
-- procedures run with their owner's rights (definer's rights, Oracle's
-- default), so EXECUTE is all it needs; its synonyms let its SQL say
-- mi_enqueue instead of HIS.mi_enqueue. Skipped when the HIS logs in as the owner.
DECLARE
    PROCEDURE run(p_sql IN VARCHAR2) IS
    BEGIN
        EXECUTE IMMEDIATE p_sql;
    END;
BEGIN
    IF UPPER('&&his_user') <> UPPER('&&his_schema') THEN
        run('GRANT EXECUTE ON &&his_schema..mi_enqueue TO &&his_user');
        run('GRANT EXECUTE ON &&his_schema..mi_inbox_consume TO &&his_user');
        run('GRANT SELECT ON &&his_schema..mi_inbox TO &&his_user');
        run('GRANT SELECT ON &&his_schema..mi_identity TO &&his_user');
        -- The insured regions the hospital supports, enabled ones only (docs/identity.md).
        run('GRANT SELECT ON &&his_schema..mi_v_insured_regions TO &&his_user');
        run('CREATE OR REPLACE SYNONYM &&his_user..mi_enqueue FOR &&his_schema..mi_enqueue');
        run('CREATE OR REPLACE SYNONYM &&his_user..mi_inbox_consume FOR &&his_schema..mi_inbox_consume');
        run('CREATE OR REPLACE SYNONYM &&his_user..mi_inbox FOR &&his_schema..mi_inbox');
        run('CREATE OR REPLACE SYNONYM &&his_user..mi_identity FOR &&his_schema..mi_identity');
        run('CREATE OR REPLACE SYNONYM &&his_user..mi_v_insured_regions FOR &&his_schema..mi_v_insured_regions');
        -- The order book and the reconciliation's results, read-only, through their views.
        run('GRANT SELECT ON &&his_schema..mi_v_orders TO &&his_user');
        run('CREATE OR REPLACE SYNONYM &&his_user..mi_v_orders FOR &&his_schema..mi_v_orders');
        run('GRANT SELECT ON &&his_schema..mi_v_order_refunds TO &&his_user');
        run('CREATE OR REPLACE SYNONYM &&his_user..mi_v_order_refunds FOR &&his_schema..mi_v_order_refunds');
        run('GRANT SELECT ON &&his_schema..mi_v_reconciliation TO &&his_user');
        run('CREATE OR REPLACE SYNONYM &&his_user..mi_v_reconciliation FOR &&his_schema..mi_v_reconciliation');
        run('GRANT SELECT ON &&his_schema..mi_v_recon_review TO &&his_user');
        run('CREATE OR REPLACE SYNONYM &&his_user..mi_v_recon_review FOR &&his_schema..mi_v_recon_review');
        run('GRANT SELECT ON &&his_schema..mi_v_recon_days TO &&his_user');
        run('CREATE OR REPLACE SYNONYM &&his_user..mi_v_recon_days FOR &&his_schema..mi_v_recon_days');
    END IF;
END;
/
