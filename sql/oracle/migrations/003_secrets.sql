-- mibridge migration 003: mi_secret, the daemon's own store of tokens and ID numbers.
-- Run by hand (WHENEVER SQLERROR EXIT FAILURE first):
--   sqlplus his@//dbhost:1521/HISPDB @sql/oracle/migrations/003_secrets.sql
-- Oracle commits each DDL statement: this file can simply be run again.
-- A flow's secrets (the mobile-pay payToken, a face-identified patient's ID number,
-- name, ecToken and authNo) live here instead of in mi_outbox.flow_data, which the HIS
-- and DBAs read. Only the daemon reads or writes it (grants.sql gives the HIS nothing
-- on it). A row's secrets go when the request is final, except what a later request
-- needs (a payment's payToken for its refunds and for a late notice's check), and with
-- the row when it is purged. The daemon never writes an empty value (Oracle would
-- store '' as NULL, which NOT NULL refuses).
DECLARE
    v_count NUMBER;
BEGIN
    SELECT COUNT(*) INTO v_count FROM user_tables WHERE table_name = 'MI_SECRET';
    IF v_count = 0 THEN
        EXECUTE IMMEDIATE 'CREATE TABLE mi_secret (
            outbox_id        NUMBER(19)           NOT NULL,
            name             VARCHAR2(64 CHAR)    NOT NULL,
            value            VARCHAR2(2000 CHAR)  NOT NULL,
            created_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
            CONSTRAINT mi_secret_pk PRIMARY KEY (outbox_id, name),
            CONSTRAINT mi_secret_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id))';
    END IF;
END;
/
INSERT INTO mi_schema_version (version, name)
SELECT 3, '003_secrets' FROM dual WHERE NOT EXISTS (SELECT 1 FROM mi_schema_version WHERE version = 3)
/
COMMIT
/
