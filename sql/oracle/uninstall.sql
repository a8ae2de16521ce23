-- mibridge: remove everything install.sql created. THIS DELETES the outbox,
-- inbox, journal, audit and notice rows, the insured regions, the order book and the
-- reconciliation results: export them first if you need the history.
-- Run connected as the schema that owns the mi_ objects:
--   sqlplus his@//dbhost:1521/HISPDB @sql/oracle/uninstall.sql
-- `mibridge db uninstall` runs this file too, and first refuses while requests
-- are still open (unless --force).
-- Objects that are already gone are skipped (Oracle before 23c has no
-- DROP ... IF EXISTS). Dropped tables go to the recycle bin, so a mistake can
-- be undone with FLASHBACK TABLE mi_outbox TO BEFORE DROP; empty it with
-- PURGE RECYCLEBIN once you are sure.
--
-- Refused while an object outside mibridge still uses ours: an HIS trigger that
-- calls mi_enqueue (sql/oracle/examples/his_charge_trigger.sql) would make every
-- HIS charge insert fail with ORA-04098 once mi_enqueue is gone. Drop those
-- first. (Synonyms that grants.sql made are not counted: they go with the logins.)
DECLARE
    v_users VARCHAR2(4000);
    PROCEDURE drop_if_exists(p_ddl IN VARCHAR2) IS
    BEGIN
        EXECUTE IMMEDIATE p_ddl;
    EXCEPTION
        WHEN OTHERS THEN
            -- ORA-00942 table or view does not exist, ORA-04043 object does not
            -- exist, ORA-04080 trigger does not exist; anything else is an error.
            IF SQLCODE NOT IN (-942, -4043, -4080) THEN
                RAISE;
            END IF;
    END;
BEGIN
    SELECT SUBSTR(LISTAGG(LOWER(type) || ' ' || owner || '.' || name, ', ') WITHIN GROUP (ORDER BY owner, name), 1, 3000)
      INTO v_users
      FROM (SELECT DISTINCT d.type, d.owner, d.name FROM all_dependencies d
             WHERE d.referenced_owner = USER AND d.referenced_name LIKE 'MI\_%' ESCAPE '\'
               AND d.type <> 'SYNONYM'
               AND NOT (d.owner = USER AND d.name LIKE 'MI\_%' ESCAPE '\')
            UNION
            SELECT DISTINCT 'FOREIGN KEY', c.owner, c.constraint_name FROM all_constraints c
              JOIN all_constraints r ON r.owner = c.r_owner AND r.constraint_name = c.r_constraint_name
             WHERE c.constraint_type = 'R' AND r.owner = USER AND r.table_name LIKE 'MI\_%' ESCAPE '\'
               AND NOT (c.owner = USER AND c.table_name LIKE 'MI\_%' ESCAPE '\'));
    IF v_users IS NOT NULL THEN
        RAISE_APPLICATION_ERROR(-20092, 'mibridge: not uninstalled: these objects use mibridge''s and would break: '
            || v_users || '. Drop them first (the example: DROP TRIGGER his_charge_mi_tg)');
    END IF;
    drop_if_exists('DROP VIEW mi_v_insured_regions');
    drop_if_exists('DROP VIEW mi_v_recon_days');
    drop_if_exists('DROP VIEW mi_v_recon_review');
    drop_if_exists('DROP VIEW mi_v_reconciliation');
    drop_if_exists('DROP VIEW mi_v_order_refunds');
    drop_if_exists('DROP VIEW mi_v_orders');
    drop_if_exists('DROP VIEW mi_v_today');
    drop_if_exists('DROP VIEW mi_v_failed');
    drop_if_exists('DROP VIEW mi_v_held');
    drop_if_exists('DROP VIEW mi_v_in_flight');
    drop_if_exists('DROP VIEW mi_v_pending');
    drop_if_exists('DROP PROCEDURE mi_cancel');
    drop_if_exists('DROP PROCEDURE mi_resolve');
    drop_if_exists('DROP PROCEDURE mi_requeue');
    drop_if_exists('DROP PROCEDURE mi_inbox_consume');
    drop_if_exists('DROP PROCEDURE mi_enqueue');
    drop_if_exists('DROP TRIGGER mi_outbox_validate_tg');
    -- Dropping a table drops its indexes and constraints too.
    drop_if_exists('DROP TABLE mi_insured_region');
    drop_if_exists('DROP TABLE mi_channel_bill');
    drop_if_exists('DROP TABLE mi_recon_item');
    drop_if_exists('DROP TABLE mi_recon_run');
    drop_if_exists('DROP TABLE mi_order_refund');
    drop_if_exists('DROP TABLE mi_order');
    drop_if_exists('DROP TABLE mi_secret');
    drop_if_exists('DROP TABLE mi_notice');
    drop_if_exists('DROP TABLE mi_audit');
    drop_if_exists('DROP TABLE mi_identity');
    drop_if_exists('DROP TABLE mi_journal');
    drop_if_exists('DROP TABLE mi_inbox');
    drop_if_exists('DROP TABLE mi_outbox');
    drop_if_exists('DROP TABLE mi_schema_version');
END;
/
