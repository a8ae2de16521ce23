-- mibridge: remove everything install.sql created. THIS DELETES the outbox,
-- inbox, journal, audit and notice rows, the insured regions, the order book and the
-- reconciliation results: export them first if you need the history.
-- mysql --database=hisdb < sql/mysql/uninstall.sql
-- `mibridge db uninstall` runs this file too, and first refuses while requests
-- are still open (unless --force).

-- Refuse while an object outside mibridge still uses ours: an HIS trigger that
-- calls mi_enqueue (sql/mysql/examples/his_charge_trigger.sql) would make every
-- HIS charge insert fail once mi_enqueue is gone. Drop those first.
DELIMITER //
BEGIN NOT ATOMIC
    DECLARE users TEXT;
    DECLARE msg TEXT;
    SELECT GROUP_CONCAT(what ORDER BY what SEPARATOR ', ') INTO users FROM (
        SELECT CONCAT('trigger ', TRIGGER_NAME) AS what FROM information_schema.TRIGGERS
         WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME NOT LIKE 'mi\_%'
           AND ACTION_STATEMENT REGEXP '\\bmi_(enqueue|inbox_consume|requeue|resolve|cancel|outbox|inbox|journal|identity|audit|notice|schema_version|insured_region|order|order_refund|recon_[a-z_]+|channel_bill|v_[a-z_]+)\\b'
        UNION ALL
        SELECT CONCAT(LOWER(ROUTINE_TYPE), ' ', ROUTINE_NAME) FROM information_schema.ROUTINES
         WHERE ROUTINE_SCHEMA = DATABASE() AND ROUTINE_NAME NOT LIKE 'mi\_%'
           AND ROUTINE_DEFINITION REGEXP '\\bmi_(enqueue|inbox_consume|requeue|resolve|cancel|outbox|inbox|journal|identity|audit|notice|schema_version|insured_region|order|order_refund|recon_[a-z_]+|channel_bill|v_[a-z_]+)\\b'
        UNION ALL
        SELECT CONCAT('view ', TABLE_NAME) FROM information_schema.VIEWS
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME NOT LIKE 'mi\_%'
           AND VIEW_DEFINITION REGEXP '\\bmi_(outbox|inbox|journal|identity|audit|notice|schema_version|insured_region|order|order_refund|recon_[a-z_]+|channel_bill|v_[a-z_]+)\\b'
        UNION ALL
        SELECT CONCAT('foreign key ', CONSTRAINT_NAME, ' on ', TABLE_NAME) FROM information_schema.REFERENTIAL_CONSTRAINTS
         WHERE CONSTRAINT_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME LIKE 'mi\_%' AND TABLE_NAME NOT LIKE 'mi\_%'
    ) AS x;
    IF users IS NOT NULL THEN
        SET msg = CONCAT('mibridge: not uninstalled: these objects use mibridge''s and would break: ', users,
                         '. Drop them first (the example: DROP TRIGGER his_charge_mi_tg)');
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = msg;
    END IF;
END //
DELIMITER ;

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
DROP PROCEDURE IF EXISTS mi_cancel;
DROP PROCEDURE IF EXISTS mi_resolve;
DROP PROCEDURE IF EXISTS mi_requeue;
DROP PROCEDURE IF EXISTS mi_inbox_consume;
DROP PROCEDURE IF EXISTS mi_enqueue;
DROP TRIGGER IF EXISTS mi_outbox_validate_tg;
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
