-- mibridge: remove everything install.sql created. THIS DELETES the outbox,
-- inbox, journal, audit and notice rows: export them first if you need the history.
-- Run connected as the schema that owns the mi_ objects:
--   sqlplus his@//dbhost:1521/HISPDB @sql/oracle/uninstall.sql
-- Objects that are already gone are skipped (Oracle before 23c has no
-- DROP ... IF EXISTS). Dropped tables go to the recycle bin, so a mistake can
-- be undone with FLASHBACK TABLE mi_outbox TO BEFORE DROP; empty it with
-- PURGE RECYCLEBIN once you are sure.
DECLARE
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
    drop_if_exists('DROP VIEW mi_v_today');
    drop_if_exists('DROP VIEW mi_v_failed');
    drop_if_exists('DROP VIEW mi_v_held');
    drop_if_exists('DROP VIEW mi_v_in_flight');
    drop_if_exists('DROP VIEW mi_v_pending');
    drop_if_exists('DROP PROCEDURE mi_inbox_consume');
    drop_if_exists('DROP PROCEDURE mi_enqueue');
    drop_if_exists('DROP TRIGGER mi_outbox_validate_tg');
    -- Dropping a table drops its indexes and constraints too.
    drop_if_exists('DROP TABLE mi_secret');
    drop_if_exists('DROP TABLE mi_notice');
    drop_if_exists('DROP TABLE mi_audit');
    drop_if_exists('DROP TABLE mi_identity');
    drop_if_exists('DROP TABLE mi_journal');
    drop_if_exists('DROP TABLE mi_inbox');
    drop_if_exists('DROP TABLE mi_outbox');
END;
/
