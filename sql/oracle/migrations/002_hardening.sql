-- mibridge migration 002 (hardening) for Oracle: from schema version 1 (the
-- release installed by 001_baseline.sql) to version 2.
-- Normally run by `mibridge db upgrade --url oracle://owner@host:1521/SERVICE`,
-- connected as the schema that owns the mi_ objects. By hand:
--   sqlplus his@//dbhost:1521/HISPDB
--   SQL> WHENEVER SQLERROR EXIT FAILURE
--   SQL> @sql/oracle/migrations/002_hardening.sql
-- Oracle commits each DDL statement on its own, so a migration cannot be
-- rolled back as a whole: every statement here can be run again, and after a
-- failure it is simply run again once the cause is fixed.
-- What changes (docs/migrations.md):
--   * mi_schema_version records which migrations ran;
--   * the identity columns hand out ids in insert order on RAC too (ORDER):
--     serial order relies on id, and NOORDER let a refund run before its payment;
--   * keys (kind, business_key, serial_key) are checked the same way on every
--     database: no blank at either end, at most 40/64/64 characters;
--     mi_enqueue and mi_inbox_consume compare bytes whatever the HIS session's
--     NLS_COMP/NLS_SORT (a linguistic comparison merged keys);
--   * the JSON checks run as dynamic SQL, which Oracle 12.1 PL/SQL needs;
--     a payload with a key twice in one object or a lone UTF-16 surrogate
--     escape is refused; total_amount is checked on the text as written;
--   * mi_inbox_consume refuses a NULL or misspelt verdict (NULL used to count
--     as 'accepted') and tells a missing row from one already consumed;
--   * mi_v_pending shows age_seconds (a number, as on the other databases);
--   * indexes for the HIS's polls by business key, for order_id, and for a
--     request's serial key in any state.
-- Nothing here deletes a row.
-- The account that runs this file needs these rights (RESOURCE alone lacks
-- CREATE VIEW, and an install that stops half way leaves a broken schema):
-- checked first, so that nothing is created when one is missing.
DECLARE
    v_missing VARCHAR2(400);
    v_quota   NUMBER;
BEGIN
    FOR p IN (SELECT 'CREATE TABLE' AS priv FROM dual UNION ALL SELECT 'CREATE VIEW' FROM dual
              UNION ALL SELECT 'CREATE PROCEDURE' FROM dual UNION ALL SELECT 'CREATE TRIGGER' FROM dual
              UNION ALL SELECT 'CREATE SEQUENCE' FROM dual) LOOP
        SELECT COUNT(*) INTO v_quota FROM session_privs
         WHERE privilege IN (p.priv, REPLACE(p.priv, 'CREATE ', 'CREATE ANY '));
        IF v_quota = 0 THEN
            v_missing := v_missing || ', ' || p.priv;
        END IF;
    END LOOP;
    -- Tables are created without storage: without a quota only the first insert fails (ORA-01950).
    SELECT COUNT(*) INTO v_quota FROM dual
     WHERE EXISTS (SELECT 1 FROM session_privs WHERE privilege = 'UNLIMITED TABLESPACE')
        OR EXISTS (SELECT 1 FROM user_ts_quotas q JOIN user_users u ON u.default_tablespace = q.tablespace_name
                    WHERE q.max_bytes = -1 OR q.max_bytes > q.bytes);
    IF v_quota = 0 THEN
        v_missing := v_missing || ', a quota on the default tablespace';
    END IF;
    IF v_missing IS NOT NULL THEN
        RAISE_APPLICATION_ERROR(-20090, 'mibridge: this account lacks ' || SUBSTR(v_missing, 3)
            || '; grant them first (docs/his-integration.md)');
    END IF;
END;
/
BEGIN
    EXECUTE IMMEDIATE 'CREATE TABLE mi_schema_version (
        version          NUMBER(10)          NOT NULL,
        name             VARCHAR2(100 CHAR)  NOT NULL,
        applied_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
        CONSTRAINT mi_schema_version_pk PRIMARY KEY (version)
    )';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955: an earlier run of this migration made it.
        IF SQLCODE <> -955 THEN
            RAISE;
        END IF;
END;
/
-- Ids in insert order on every RAC instance (the default is CACHE 20 NOORDER).
ALTER TABLE mi_outbox MODIFY id GENERATED ALWAYS AS IDENTITY (ORDER)
/
ALTER TABLE mi_inbox MODIFY id GENERATED ALWAYS AS IDENTITY (ORDER)
/
ALTER TABLE mi_journal MODIFY id GENERATED ALWAYS AS IDENTITY (ORDER)
/
ALTER TABLE mi_audit MODIFY id GENERATED ALWAYS AS IDENTITY (ORDER)
/
ALTER TABLE mi_notice MODIFY id GENERATED ALWAYS AS IDENTITY (ORDER)
/
-- The HIS polls its results by business key.
BEGIN
    EXECUTE IMMEDIATE 'CREATE INDEX mi_inbox_business_ix ON mi_inbox (business_key, kind)';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955 / ORA-01408: an earlier run of this migration made it.
        IF SQLCODE NOT IN (-955, -1408) THEN
            RAISE;
        END IF;
END;
/
-- Refunds sum their payment's rows by order_id (a NULL order_id is not in it).
BEGIN
    EXECUTE IMMEDIATE 'CREATE INDEX mi_inbox_order_ix ON mi_inbox (order_id)';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955 / ORA-01408: an earlier run of this migration made it.
        IF SQLCODE NOT IN (-955, -1408) THEN
            RAISE;
        END IF;
END;
/
-- Requests of one kind and serial key, in any state (a refund counts its payment's others):
-- the function-based open-row index above cannot serve a query that names the states.
BEGIN
    EXECUTE IMMEDIATE 'CREATE INDEX mi_outbox_serial_kind_ix ON mi_outbox (serial_key, kind)';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955 / ORA-01408: an earlier run of this migration made it.
        IF SQLCODE NOT IN (-955, -1408) THEN
            RAISE;
        END IF;
END;
/
-- Validation that holds however a row arrives (mi_enqueue or a plain INSERT
-- from an HIS trigger): bad input is refused to the HIS, nothing is inserted.
-- Errors are ORA-20001..20009 with a 'mibridge: ...' message.
-- Oracle 12.1 PL/SQL cannot use IS JSON / JSON_VALUE / JSON_QUERY: they run
-- as dynamic SQL on DUAL (a static use would leave the trigger INVALID and
-- every insert failing with ORA-04098). IS JSON STRICT: no single quotes, no
-- unquoted keys (the default, lax, accepts both).
-- The regular expressions list their characters instead of ranges and say
-- 'c' (case-sensitive): ranges and case follow NLS_SORT, which the HIS's
-- session may set to a linguistic sort.
CREATE OR REPLACE TRIGGER mi_outbox_validate_tg
BEFORE INSERT ON mi_outbox
FOR EACH ROW
DECLARE
    v_payload CLOB;
    v_ok      NUMBER;
    v_wrapped VARCHAR2(4000);
    v_total   VARCHAR2(4000);
    v_text    CLOB;
    FUNCTION blank_end(p IN VARCHAR2) RETURN BOOLEAN IS
    BEGIN
        RETURN ASCII(SUBSTR(p, 1, 1)) IN (9, 10, 13, 32) OR ASCII(SUBSTR(p, -1, 1)) IN (9, 10, 13, 32);
    END;
BEGIN
    IF TRIM(:NEW.kind) IS NULL THEN
        RAISE_APPLICATION_ERROR(-20001, 'mibridge: kind is required');
    END IF;
    IF TRIM(:NEW.business_key) IS NULL THEN
        RAISE_APPLICATION_ERROR(-20001, 'mibridge: business_key is required');
    END IF;
    -- An omitted serial key means "this request is its own sequence" (Oracle
    -- stores '' as NULL: an empty one is omitted too, as on every database).
    IF TRIM(:NEW.serial_key) IS NULL THEN
        :NEW.serial_key := :NEW.business_key;
    END IF;
    -- Keys compare byte for byte. A blank at either end is refused rather than
    -- kept, as on every database (SQL Server's '=' ignores trailing blanks).
    IF blank_end(:NEW.kind) THEN
        RAISE_APPLICATION_ERROR(-20005, 'mibridge: kind must not start or end with a blank');
    END IF;
    IF blank_end(:NEW.business_key) THEN
        RAISE_APPLICATION_ERROR(-20005, 'mibridge: business_key must not start or end with a blank');
    END IF;
    IF blank_end(:NEW.serial_key) THEN
        RAISE_APPLICATION_ERROR(-20005, 'mibridge: serial_key must not start or end with a blank');
    END IF;
    IF LENGTH(:NEW.kind) > 40 THEN
        RAISE_APPLICATION_ERROR(-20006, 'mibridge: kind is longer than 40 characters');
    END IF;
    IF LENGTH(:NEW.business_key) > 64 THEN
        RAISE_APPLICATION_ERROR(-20006, 'mibridge: business_key is longer than 64 characters');
    END IF;
    IF LENGTH(:NEW.serial_key) > 64 THEN
        RAISE_APPLICATION_ERROR(-20006, 'mibridge: serial_key is longer than 64 characters');
    END IF;
    v_payload := :NEW.payload;
    IF v_payload IS NULL THEN
        RAISE_APPLICATION_ERROR(-20002, 'mibridge: payload is not valid JSON');
    END IF;
    EXECUTE IMMEDIATE 'SELECT COUNT(*) FROM dual WHERE :p IS JSON STRICT' INTO v_ok USING v_payload;
    IF v_ok = 0 THEN
        RAISE_APPLICATION_ERROR(-20002, 'mibridge: payload is not valid JSON');
    END IF;
    -- A lone UTF-16 surrogate escape (\ud800 without its \udc00), which no
    -- database could store: in the text with its escaped backslashes blanked
    -- out (each remaining \u starts an escape), take out the valid pairs and
    -- look for any surrogate escape left.
    v_text := REGEXP_REPLACE(v_payload, '\\\\', '__', 1, 0, 'c');
    -- A NULL replacement removes what matches.
    v_text := REGEXP_REPLACE(v_text, '\\u[dD][89abAB][0123456789abcdefABCDEF]{2}\\u[dD][cdefCDEF][0123456789abcdefABCDEF]{2}',
                             NULL, 1, 0, 'c');
    IF REGEXP_LIKE(v_text, '\\u[dD][89abcdefABCDEF][0123456789abcdefABCDEF]{2}', 'c') THEN
        RAISE_APPLICATION_ERROR(-20002, 'mibridge: payload is not valid JSON');
    END IF;
    -- Valid JSON whose first character (after blanks) is '{' is an object.
    IF NOT REGEXP_LIKE(v_payload, '^\s*\{', 'c') THEN
        RAISE_APPLICATION_ERROR(-20003, 'mibridge: payload must be a JSON object');
    END IF;
    -- A key twice in one object (Oracle would read one of them, the daemon the last).
    EXECUTE IMMEDIATE 'SELECT COUNT(*) FROM dual WHERE :p IS JSON STRICT WITH UNIQUE KEYS' INTO v_ok USING v_payload;
    IF v_ok = 0 THEN
        RAISE_APPLICATION_ERROR(-20007, 'mibridge: payload has a key twice in one object');
    END IF;
    -- The amount as written: the member wrapped in an array is its JSON text
    -- (a string in quotes, a number as written, null, an object ...).
    EXECUTE IMMEDIATE 'SELECT JSON_QUERY(:p, ''$.total_amount'' WITH WRAPPER), JSON_VALUE(:p, ''$.total_amount'') FROM dual'
        INTO v_wrapped, v_total USING v_payload, v_payload;
    v_wrapped := TRIM(SUBSTR(v_wrapped, 2, LENGTH(v_wrapped) - 2));
    IF v_wrapped IS NOT NULL AND v_wrapped <> 'null' THEN
        IF SUBSTR(v_wrapped, 1, 1) <> '"' THEN
            v_total := v_wrapped;
        END IF;
        IF NVL(LENGTH(REGEXP_SUBSTR(v_total, '^[0123456789]+(\.[0123456789]{1,2})?', 1, 1, 'c')), -1)
           <> NVL(LENGTH(v_total), -2) THEN
            RAISE_APPLICATION_ERROR(-20004,
                'mibridge: total_amount must be a non-negative amount with at most 2 decimals, got '
                || SUBSTR(v_wrapped, 1, 100));
        END IF;
    END IF;
END;
/
-- The one call the HIS makes per request; p_id returns the outbox id:
--   DECLARE v_id NUMBER;
--   BEGIN mi_enqueue('test.charge', 'INV-1', 'VISIT-1', '{"total_amount":"12.50"}', v_id); END;
-- The same (kind, business_key) with the same payload returns the existing id
-- (a retried HIS transaction is harmless); with a different payload it is an
-- error (ORA-20010). From Oracle 18c the order of the payload's fields does
-- not matter (JSON_EQUAL); on 12c "the same payload" means the same text.
-- Insert first, then look: a concurrent enqueue of the same key waits on the
-- unique index and then takes the DUP_VAL_ON_INDEX path. The lookup compares
-- the keys' bytes: an HIS session with NLS_COMP=LINGUISTIC would otherwise
-- compare them by its sort (case- or accent-blind).
CREATE OR REPLACE PROCEDURE mi_enqueue(
    p_kind         IN  VARCHAR2,
    p_business_key IN  VARCHAR2,
    p_serial_key   IN  VARCHAR2,
    p_payload      IN  CLOB,
    p_id           OUT NUMBER)
AS
    v_old  CLOB;
    v_same NUMBER;
BEGIN
    -- Longer keys would be cut or refused by the columns; say so in words.
    IF LENGTH(p_kind) > 40 THEN
        RAISE_APPLICATION_ERROR(-20006, 'mibridge: kind is longer than 40 characters');
    END IF;
    IF LENGTH(p_business_key) > 64 THEN
        RAISE_APPLICATION_ERROR(-20006, 'mibridge: business_key is longer than 64 characters');
    END IF;
    IF LENGTH(p_serial_key) > 64 THEN
        RAISE_APPLICATION_ERROR(-20006, 'mibridge: serial_key is longer than 64 characters');
    END IF;
    INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
    VALUES (p_kind, p_business_key, NVL(p_serial_key, p_business_key), p_payload)
    RETURNING id INTO p_id;
EXCEPTION
    WHEN DUP_VAL_ON_INDEX THEN
        -- The trigger has checked p_payload before the unique index refused it.
        SELECT id, payload INTO p_id, v_old FROM mi_outbox
         WHERE kind = p_kind AND business_key = p_business_key
           AND UTL_RAW.CAST_TO_RAW(kind) = UTL_RAW.CAST_TO_RAW(p_kind)
           AND UTL_RAW.CAST_TO_RAW(business_key) = UTL_RAW.CAST_TO_RAW(p_business_key);
        BEGIN
            EXECUTE IMMEDIATE 'SELECT COUNT(*) FROM dual WHERE JSON_EQUAL(:a, :b)' INTO v_same USING v_old, p_payload;
        EXCEPTION
            WHEN OTHERS THEN
                -- ORA-00904: no JSON_EQUAL before 18c: compare the text.
                IF SQLCODE <> -904 THEN
                    RAISE;
                END IF;
                v_same := CASE WHEN DBMS_LOB.COMPARE(v_old, p_payload) = 0 THEN 1 ELSE 0 END;
        END;
        IF v_same = 0 THEN
            RAISE_APPLICATION_ERROR(-20010, 'mibridge: ' || p_kind || ' request ' || p_business_key
                || ' already exists with a different payload (outbox id ' || p_id || ')');
        END IF;
END;
/
-- The HIS marks an inbox row as taken ('accepted') or refused ('rejected'):
--   BEGIN mi_inbox_consume(42, 'accepted'); END;
-- Any other verdict, NULL (and so '') included, is refused: nothing counts as
-- accepted by default. The verdict is compared byte for byte.
-- A refused settlement is repaired by the daemon (refund/reversal), see docs/.
CREATE OR REPLACE PROCEDURE mi_inbox_consume(
    p_id  IN NUMBER,
    p_ack IN VARCHAR2 DEFAULT 'accepted')
AS
    v_found NUMBER;
BEGIN
    IF p_ack IS NULL OR LENGTH(p_ack) <> 8
       OR UTL_RAW.CAST_TO_RAW(p_ack) NOT IN (UTL_RAW.CAST_TO_RAW('accepted'), UTL_RAW.CAST_TO_RAW('rejected')) THEN
        RAISE_APPLICATION_ERROR(-20012, 'mibridge: the verdict must be ' || CHR(39) || 'accepted' || CHR(39)
            || ' or ' || CHR(39) || 'rejected' || CHR(39));
    END IF;
    UPDATE mi_inbox SET consumed_at = SYSTIMESTAMP, his_ack = p_ack
     WHERE id = p_id AND consumed_at IS NULL;
    IF SQL%ROWCOUNT = 0 THEN
        SELECT COUNT(*) INTO v_found FROM mi_inbox WHERE id = p_id;
        IF v_found > 0 THEN
            RAISE_APPLICATION_ERROR(-20011, 'mibridge: inbox row ' || p_id || ' was already consumed');
        END IF;
        RAISE_APPLICATION_ERROR(-20011, 'mibridge: inbox row ' || NVL(TO_CHAR(p_id), 'NULL') || ' does not exist');
    END IF;
END;
/
-- Views for DBAs: the pending view's age in seconds.
CREATE OR REPLACE VIEW mi_v_pending AS
SELECT id, kind, business_key, serial_key, state, step, attempts, next_attempt_at, created_at,
       FLOOR(EXTRACT(DAY FROM (SYSTIMESTAMP - created_at)) * 86400
             + EXTRACT(HOUR FROM (SYSTIMESTAMP - created_at)) * 3600
             + EXTRACT(MINUTE FROM (SYSTIMESTAMP - created_at)) * 60
             + EXTRACT(SECOND FROM (SYSTIMESTAMP - created_at))) AS age_seconds,
       last_error_code, last_error_message
  FROM mi_outbox WHERE state IN ('pending', 'in_doubt')
/
INSERT INTO mi_schema_version (version, name)
SELECT 1, '001_baseline' FROM dual WHERE NOT EXISTS (SELECT 1 FROM mi_schema_version WHERE version = 1)
/
INSERT INTO mi_schema_version (version, name)
SELECT 2, '002_hardening' FROM dual WHERE NOT EXISTS (SELECT 1 FROM mi_schema_version WHERE version = 2)
/
COMMIT
/
