-- mibridge: remove everything install.sql created. THIS DELETES the outbox,
-- inbox, journal, audit and notice rows, the insured regions, the order book and the
-- reconciliation results: export them first if you need the history.
-- sqlcmd -S dbhost -d hisdb -b -I -i sql/sqlserver/uninstall.sql
-- `mibridge db uninstall` runs this file too, and first refuses while requests
-- are still open (unless --force).

-- Refuse while an object outside mibridge still uses ours: an HIS trigger that
-- inserts into mi_outbox (sql/sqlserver/examples/his_charge_trigger.sql) would
-- make every HIS charge insert fail once mi_outbox is gone. Drop those first.
DECLARE @users NVARCHAR(MAX), @msg NVARCHAR(2000);
SELECT @users = STUFF((
    SELECT N', ' + what FROM (
        SELECT DISTINCT LOWER(o.type_desc) + N' ' + OBJECT_SCHEMA_NAME(o.object_id) + N'.' + o.name AS what
          FROM sys.sql_expression_dependencies d
          JOIN sys.objects o ON o.object_id = d.referencing_id
         WHERE d.referenced_entity_name LIKE N'mi[_]%' AND o.name NOT LIKE N'mi[_]%'
        UNION
        SELECT N'foreign key ' + f.name + N' on ' + OBJECT_NAME(f.parent_object_id)
          FROM sys.foreign_keys f
         WHERE OBJECT_NAME(f.referenced_object_id) LIKE N'mi[_]%' AND OBJECT_NAME(f.parent_object_id) NOT LIKE N'mi[_]%'
    ) x ORDER BY what FOR XML PATH(''), TYPE).value('.', 'NVARCHAR(MAX)'), 1, 2, N'');
IF @users IS NOT NULL
BEGIN
    SET @msg = LEFT(CONCAT(N'mibridge: not uninstalled: these objects use mibridge''s and would break: ', @users,
                           N'. Drop them first (the example: DROP TRIGGER his_charge_mi_tg)'), 2000);
    THROW 50092, @msg, 1;
END;
GO

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
DROP PROCEDURE IF EXISTS mi_json_same;
DROP PROCEDURE IF EXISTS mi_json_check;
-- Dropping a table drops its indexes and constraints too.
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
GO
