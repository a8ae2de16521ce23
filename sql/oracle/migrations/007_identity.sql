-- mibridge migration 007: the identity written back to the HIS (issue 13).
-- Run by hand (WHENEVER SQLERROR EXIT FAILURE first):
--   sqlplus his@//dbhost:1521/HISPDB @sql/oracle/migrations/007_identity.sql
-- Oracle commits each DDL statement: this file can simply be run again (a column that
-- exists is left as it is).
-- mi_identity gets what the HIS needs to turn a self-pay patient into an insured one and to
-- match the row to its patient, never a whole ID number (docs/identity.md "mi_identity"):
-- the person type and the benefit check of the chosen insurance (psn_type, med_type,
-- benefit_status), the ID number and the name masked (certno_masked, psn_name_masked),
-- gend, whether the patient chose the insurance (chosen: 1 by identity.choose, 0 when
-- mibridge took it, NULL on rows written before 007) and
-- the kind of the request that wrote the row last (source_kind). The grants are the table's
-- (grants.sql).
DECLARE
    v_count NUMBER;
BEGIN
    SELECT COUNT(*) INTO v_count FROM user_tab_columns WHERE table_name = 'MI_IDENTITY' AND column_name = 'PSN_TYPE';
    IF v_count = 0 THEN
        EXECUTE IMMEDIATE 'ALTER TABLE mi_identity ADD (psn_type VARCHAR2(12 CHAR))';
    END IF;
    SELECT COUNT(*) INTO v_count FROM user_tab_columns WHERE table_name = 'MI_IDENTITY' AND column_name = 'MED_TYPE';
    IF v_count = 0 THEN
        EXECUTE IMMEDIATE 'ALTER TABLE mi_identity ADD (med_type VARCHAR2(8 CHAR))';
    END IF;
    SELECT COUNT(*) INTO v_count FROM user_tab_columns WHERE table_name = 'MI_IDENTITY' AND column_name = 'BENEFIT_STATUS';
    IF v_count = 0 THEN
        EXECUTE IMMEDIATE 'ALTER TABLE mi_identity ADD (benefit_status VARCHAR2(16 CHAR))';
    END IF;
    SELECT COUNT(*) INTO v_count FROM user_tab_columns WHERE table_name = 'MI_IDENTITY' AND column_name = 'CERTNO_MASKED';
    IF v_count = 0 THEN
        EXECUTE IMMEDIATE 'ALTER TABLE mi_identity ADD (certno_masked VARCHAR2(40 CHAR))';
    END IF;
    SELECT COUNT(*) INTO v_count FROM user_tab_columns WHERE table_name = 'MI_IDENTITY' AND column_name = 'PSN_NAME_MASKED';
    IF v_count = 0 THEN
        EXECUTE IMMEDIATE 'ALTER TABLE mi_identity ADD (psn_name_masked VARCHAR2(100 CHAR))';
    END IF;
    SELECT COUNT(*) INTO v_count FROM user_tab_columns WHERE table_name = 'MI_IDENTITY' AND column_name = 'GEND';
    IF v_count = 0 THEN
        EXECUTE IMMEDIATE 'ALTER TABLE mi_identity ADD (gend VARCHAR2(4 CHAR))';
    END IF;
    SELECT COUNT(*) INTO v_count FROM user_tab_columns WHERE table_name = 'MI_IDENTITY' AND column_name = 'CHOSEN';
    IF v_count = 0 THEN
        EXECUTE IMMEDIATE 'ALTER TABLE mi_identity ADD (chosen NUMBER(1))';
    END IF;
    SELECT COUNT(*) INTO v_count FROM user_tab_columns WHERE table_name = 'MI_IDENTITY' AND column_name = 'SOURCE_KIND';
    IF v_count = 0 THEN
        EXECUTE IMMEDIATE 'ALTER TABLE mi_identity ADD (source_kind VARCHAR2(40 CHAR))';
    END IF;
END;
/
INSERT INTO mi_schema_version (version, name)
SELECT 7, '007_identity' FROM dual WHERE NOT EXISTS (SELECT 1 FROM mi_schema_version WHERE version = 7)
/
COMMIT
/
