-- mibridge: least-privilege rights for the daemon's login and for the HIS's
-- login. Run as a DBA after install.sql, in the HIS database, with session
-- variables set first and nothing edited in this file. In the mysql client:
--   USE hisdb;
--   SET @daemon_user = 'mibridge_daemon', @daemon_host = '10.1.2.%',
--       @daemon_password = '...',
--       @his_user = 'his_app', @his_host = '10.1.2.%';
--   SOURCE sql/mysql/grants.sql
-- or `mibridge db grants --url mysql://dba@host/hisdb --var daemon_user=...
-- --var his_user=...` (the daemon's password is then set by hand, below).
--
-- @daemon_user / @daemon_host: the daemon's account, created here if it does
--   not exist (then @daemon_password is required; put the same password in the
--   daemon's environment as MIBRIDGE_DB_PASSWORD, never in a file). An existing
--   account keeps its password unless @daemon_password is set. It reads and
--   writes the mi_ tables and nothing else; it cannot create, alter or drop anything.
-- @his_user / @his_host: the HIS's existing account. It may enqueue
--   (mi_enqueue), consume (mi_inbox_consume) and read its results (mi_inbox,
--   mi_identity, the insured regions (mi_v_insured_regions) and the order book and
--   reconciliation views of migration 004), and nothing else of mibridge's: the procedures run with
--   their definer's rights (SQL SECURITY DEFINER), so EXECUTE is all it needs.
-- The hosts default to '%' (any host: the daemon and the HIS reach the server
-- over TCP, where 'localhost' does not match); narrow them to your network.
-- mibridge_operator: a role for people who run mi_requeue / mi_resolve / mi_cancel
--   (migration 005) and read the views; created here, given to a person's account
--   by hand.
-- Running this file again is harmless.
DELIMITER //
BEGIN NOT ATOMIC
    IF DATABASE() IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: choose the HIS database first (USE hisdb)';
    END IF;
    IF @daemon_user IS NULL OR @his_user IS NULL OR @daemon_user = '' OR @his_user = '' THEN
        SIGNAL SQLSTATE '45000'
            SET MESSAGE_TEXT = 'mibridge: set @daemon_user and @his_user (and the hosts) before running grants.sql';
    END IF;
    SET @daemon_host = COALESCE(@daemon_host, '%'), @his_host = COALESCE(@his_host, '%');
    IF @daemon_user = @his_user AND @daemon_host = @his_host THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: the daemon and the HIS need two different accounts';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM mysql.user WHERE User = @his_user AND Host = @his_host) THEN
        SIGNAL SQLSTATE '45000'
            SET MESSAGE_TEXT = 'mibridge: @his_user@@his_host is not an existing account; it names the HIS''s own login';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM mysql.user WHERE User = @daemon_user AND Host = @daemon_host) THEN
        IF @daemon_password IS NULL OR @daemon_password = '' THEN
            SIGNAL SQLSTATE '45000'
                SET MESSAGE_TEXT = 'mibridge: the daemon account does not exist yet: set @daemon_password to create it';
        END IF;
        EXECUTE IMMEDIATE CONCAT('CREATE USER ', QUOTE(@daemon_user), '@', QUOTE(@daemon_host),
                                 ' IDENTIFIED BY ', QUOTE(@daemon_password));
    ELSEIF @daemon_password IS NOT NULL AND @daemon_password <> '' THEN
        EXECUTE IMMEDIATE CONCAT('ALTER USER ', QUOTE(@daemon_user), '@', QUOTE(@daemon_host),
                                 ' IDENTIFIED BY ', QUOTE(@daemon_password));
    END IF;
    SET @daemon_password = NULL;

    -- The daemon: DML on its tables, and no more.
    SET @mi_daemon = CONCAT(QUOTE(@daemon_user), '@', QUOTE(@daemon_host));
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT, INSERT, UPDATE, DELETE ON mi_outbox TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT, INSERT, UPDATE, DELETE ON mi_inbox TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT, INSERT, UPDATE, DELETE ON mi_journal TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT, INSERT, UPDATE, DELETE ON mi_identity TO ', @mi_daemon);
    -- Tokens and ID numbers (mi_secret, migration 003): the daemon only; never the HIS.
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT, INSERT, DELETE ON mi_secret TO ', @mi_daemon);
    -- Audit rows are never changed or removed by the daemon.
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT, INSERT ON mi_audit TO ', @mi_daemon);
    -- The daemon records and counts notices but never removes one.
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT, INSERT, UPDATE ON mi_notice TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_schema_version TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_v_pending TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_v_in_flight TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_v_held TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_v_failed TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_v_today TO ', @mi_daemon);
    -- The admin procedures (migration 005): the CLI and the console run them as the daemon.
    EXECUTE IMMEDIATE CONCAT('GRANT EXECUTE ON PROCEDURE mi_requeue TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT EXECUTE ON PROCEDURE mi_resolve TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT EXECUTE ON PROCEDURE mi_cancel TO ', @mi_daemon);

    -- mibridge_operator: a role for the DBAs and operators who run the admin procedures
    -- and read the views, journal and audit; it may not change a table directly.
    -- Give it to a person's own account: GRANT mibridge_operator TO 'alice'@'%';
    -- SET DEFAULT ROLE mibridge_operator FOR 'alice'@'%'; never to the HIS's account.
    CREATE ROLE IF NOT EXISTS mibridge_operator;
    GRANT EXECUTE ON PROCEDURE mi_requeue TO mibridge_operator;
    GRANT EXECUTE ON PROCEDURE mi_resolve TO mibridge_operator;
    GRANT EXECUTE ON PROCEDURE mi_cancel TO mibridge_operator;
    GRANT SELECT ON mi_outbox TO mibridge_operator;
    GRANT SELECT ON mi_inbox TO mibridge_operator;
    GRANT SELECT ON mi_journal TO mibridge_operator;
    GRANT SELECT ON mi_audit TO mibridge_operator;
    GRANT SELECT ON mi_notice TO mibridge_operator;
    GRANT SELECT ON mi_schema_version TO mibridge_operator;
    GRANT SELECT ON mi_v_pending TO mibridge_operator;
    GRANT SELECT ON mi_v_in_flight TO mibridge_operator;
    GRANT SELECT ON mi_v_held TO mibridge_operator;
    GRANT SELECT ON mi_v_failed TO mibridge_operator;
    GRANT SELECT ON mi_v_today TO mibridge_operator;

    -- The insured regions (migration 006): the daemon fills and refreshes them, never deletes one.
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT, INSERT, UPDATE ON mi_insured_region TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_v_insured_regions TO ', @mi_daemon);
    -- The order book (migration 004): booked and updated, never deleted (purge keeps it).
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT, INSERT, UPDATE ON mi_order TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT, INSERT, UPDATE ON mi_order_refund TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT, INSERT, UPDATE ON mi_recon_run TO ', @mi_daemon);
    -- A run's results and bill rows are replaced by the next run of the same day.
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT, INSERT, DELETE ON mi_recon_item TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT, INSERT, DELETE ON mi_channel_bill TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_v_orders TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_v_order_refunds TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_v_reconciliation TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_v_recon_review TO ', @mi_daemon);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_v_recon_days TO ', @mi_daemon);

    -- The HIS: enqueue, consume, read its results.
    SET @mi_his = CONCAT(QUOTE(@his_user), '@', QUOTE(@his_host));
    EXECUTE IMMEDIATE CONCAT('GRANT EXECUTE ON PROCEDURE mi_enqueue TO ', @mi_his);
    EXECUTE IMMEDIATE CONCAT('GRANT EXECUTE ON PROCEDURE mi_inbox_consume TO ', @mi_his);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_inbox TO ', @mi_his);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_identity TO ', @mi_his);
    -- The insured regions the hospital supports, enabled ones only (docs/identity.md).
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_v_insured_regions TO ', @mi_his);
    -- The order book and the reconciliation's results, read-only, through their views.
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_v_orders TO ', @mi_his);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_v_order_refunds TO ', @mi_his);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_v_reconciliation TO ', @mi_his);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_v_recon_review TO ', @mi_his);
    EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON mi_v_recon_days TO ', @mi_his);
END //
DELIMITER ;
