-- mibridge: install into an Oracle (12.1.0.2+: IDENTITY, IS JSON, JSON_VALUE) HIS schema.
-- Run by hand, connected as the schema that will own the mi_ objects (e.g. HIS):
--   sqlplus his@//dbhost:1521/HISPDB
--   SQL> WHENEVER SQLERROR EXIT FAILURE
--   SQL> @sql/oracle/install.sql
-- or:            mibridge db install --url oracle://his@dbhost:1521/HISPDB
-- This file is the schema at its latest version: the same as
-- migrations/001_baseline.sql followed by every later migration (the tests
-- compare the two). An installed database is upgraded with
-- `mibridge db upgrade`, never reinstalled: see docs/migrations.md.
-- Creates only objects whose names start with mi_; sql/oracle/uninstall.sql
-- removes them. The states are explained in sql/postgresql/install.sql and docs/.
--
-- How this file is written (so that SQL*Plus and `mibridge db install` run it
-- the same way): every statement ends with a line holding only '/', plain SQL
-- statements have no ';', PL/SQL blocks keep their final 'END;'. There are no
-- blank lines inside a statement (SQL*Plus would end it there) and no
-- ampersands (SQL*Plus would prompt for a substitution variable).
--
-- Times are TIMESTAMP WITH TIME ZONE from SYSTIMESTAMP, the database server's
-- clock; every time the daemon compares (leases, retries) is computed by the
-- server, never by the daemon. Text columns use CHAR length semantics, so
-- VARCHAR2(1000 CHAR) holds 1000 Chinese characters whatever NLS_LENGTH_SEMANTICS says.
-- Oracle stores '' as NULL: nothing here (or in the daemon) relies on an empty
-- string, and an empty key or verdict is refused as on every database.
-- Key comparisons are binary in the daemon's sessions (NLS_COMP = BINARY);
-- the procedures compare bytes whatever the HIS session's NLS settings.
-- Identity columns are ORDER: on RAC, ids follow insert order, which serial
-- order relies on.
--
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
-- A live database is upgraded (mibridge db upgrade), never reinstalled.
DECLARE
    v_n NUMBER;
BEGIN
    SELECT COUNT(*) INTO v_n FROM user_tables WHERE table_name = 'MI_OUTBOX';
    IF v_n > 0 THEN
        RAISE_APPLICATION_ERROR(-20091, 'mibridge: already installed in this schema; run mibridge db upgrade');
    END IF;
END;
/
-- Which migrations this database has (docs/migrations.md).
CREATE TABLE mi_schema_version (
    version          NUMBER(10)          NOT NULL,
    name             VARCHAR2(100 CHAR)  NOT NULL,
    applied_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    CONSTRAINT mi_schema_version_pk PRIMARY KEY (version)
)
/
-- Outbox: one row per request the HIS makes (states: see the CHECK below and
-- sql/postgresql/install.sql).
CREATE TABLE mi_outbox (
    id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY (ORDER),
    kind             VARCHAR2(40 CHAR)   NOT NULL,
    business_key     VARCHAR2(64 CHAR)   NOT NULL,
    serial_key       VARCHAR2(64 CHAR)   NOT NULL,
    payload          CLOB                NOT NULL,
    state            VARCHAR2(16 CHAR)   DEFAULT 'pending' NOT NULL,
    step             VARCHAR2(40 CHAR),
    flow_data        CLOB,
    current_call     VARCHAR2(64 CHAR),
    call_unsafe      NUMBER(1)           DEFAULT 0 NOT NULL,
    attempts         NUMBER(10)          DEFAULT 0 NOT NULL,
    max_attempts     NUMBER(10)          DEFAULT 10 NOT NULL,
    next_attempt_at  TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    lease_owner      VARCHAR2(64 CHAR),
    lease_expires_at TIMESTAMP WITH TIME ZONE,
    created_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    updated_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    finished_at      TIMESTAMP WITH TIME ZONE,
    last_error_code  VARCHAR2(40 CHAR),
    last_error_message VARCHAR2(1000 CHAR),
    CONSTRAINT mi_outbox_pk PRIMARY KEY (id),
    CONSTRAINT mi_outbox_kind_key UNIQUE (kind, business_key),
    CONSTRAINT mi_outbox_state_ck CHECK (state IN ('pending','running','in_doubt','held','done','failed','resolved')),
    CONSTRAINT mi_outbox_key_ck CHECK (TRIM(business_key) IS NOT NULL AND TRIM(kind) IS NOT NULL)
)
/
-- Oracle has no partial indexes, but a B-tree index holds no entry whose keys
-- are all NULL. These function-based indexes are NULL for finished rows, so
-- they hold only open rows and claims stay flat however many finished rows
-- the table holds. The daemon's claim query (bridge/db/dialects/oracle.py)
-- uses exactly these expressions; a query must repeat an expression to use
-- its index. SYS_EXTRACT_UTC: Oracle indexes time-zone timestamps as UTC.
CREATE INDEX mi_outbox_ready_ix ON mi_outbox (
    CASE WHEN state IN ('pending', 'in_doubt') THEN SYS_EXTRACT_UTC(next_attempt_at) END,
    CASE WHEN state IN ('pending', 'in_doubt') THEN id END)
/
CREATE INDEX mi_outbox_serial_open_ix ON mi_outbox (
    CASE WHEN state IN ('pending', 'running', 'in_doubt', 'held') THEN serial_key END)
/
-- Requests of one kind and serial key, in any state (a refund counts its payment's others):
-- the function-based open-row index above cannot serve a query that names the states.
CREATE INDEX mi_outbox_serial_kind_ix ON mi_outbox (serial_key, kind)
/
-- The rescuer's query is shared SQL (WHERE state = 'running' AND lease_expires_at < ...):
-- an ordinary index with state first serves it, and the DBA views, with a range scan.
CREATE INDEX mi_outbox_lease_ix ON mi_outbox (state, lease_expires_at)
/
-- NULL finished_at (open rows) is not in this index at all.
CREATE INDEX mi_outbox_finished_ix ON mi_outbox (finished_at)
/
-- Inbox: results for the HIS. The HIS reads rows WHERE consumed_at IS NULL and
-- marks each one with mi_inbox_consume(id, 'accepted' | 'rejected').
CREATE TABLE mi_inbox (
    id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY (ORDER),
    outbox_id        NUMBER(19)          NOT NULL,
    kind             VARCHAR2(40 CHAR)   NOT NULL,
    business_key     VARCHAR2(64 CHAR)   NOT NULL,
    result_type      VARCHAR2(40 CHAR)   NOT NULL,
    outcome          VARCHAR2(16 CHAR)   NOT NULL,
    error_code       VARCHAR2(40 CHAR),
    error_message    VARCHAR2(1000 CHAR),
    order_id         VARCHAR2(64 CHAR),
    settlement_id    VARCHAR2(64 CHAR),
    total_amount     NUMBER(16,2),
    fund_amount      NUMBER(16,2),
    account_amount   NUMBER(16,2),
    cash_amount      NUMBER(16,2),
    result_json      CLOB,
    created_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    consumed_at      TIMESTAMP WITH TIME ZONE,
    his_ack          VARCHAR2(16 CHAR),
    CONSTRAINT mi_inbox_pk PRIMARY KEY (id),
    CONSTRAINT mi_inbox_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id),
    CONSTRAINT mi_inbox_outcome_ck CHECK (outcome IN ('ok','failed','held','resolved')),
    CONSTRAINT mi_inbox_ack_ck CHECK (his_ack IS NULL OR his_ack IN ('accepted','rejected'))
)
/
-- id is never NULL, so this index has an entry for every row and the HIS's
-- plain "WHERE consumed_at IS NULL" is a short range scan at its front.
CREATE INDEX mi_inbox_unconsumed_ix ON mi_inbox (consumed_at, id)
/
CREATE INDEX mi_inbox_outbox_ix ON mi_inbox (outbox_id)
/
-- The HIS polls its results by business key.
CREATE INDEX mi_inbox_business_ix ON mi_inbox (business_key, kind)
/
-- Refunds sum their payment's rows by order_id (a NULL order_id is not in it).
CREATE INDEX mi_inbox_order_ix ON mi_inbox (order_id)
/
-- Call journal: one row per remote call, written BEFORE the call is sent.
CREATE TABLE mi_journal (
    id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY (ORDER),
    msg_id           VARCHAR2(64 CHAR)   NOT NULL,
    outbox_id        NUMBER(19)          NOT NULL,
    step             VARCHAR2(40 CHAR)   NOT NULL,
    interface        VARCHAR2(40 CHAR)   NOT NULL,
    request_masked   CLOB,
    response_masked  CLOB,
    http_status      NUMBER(10),
    started_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    ended_at         TIMESTAMP WITH TIME ZONE,
    outcome          VARCHAR2(16 CHAR),
    error_message    VARCHAR2(1000 CHAR),
    -- 1: not safe to repeat (may have moved money); NULL: journalled before migration 005
    unsafe           NUMBER(5),
    CONSTRAINT mi_journal_pk PRIMARY KEY (id),
    CONSTRAINT mi_journal_msg_uq UNIQUE (msg_id),
    CONSTRAINT mi_journal_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id),
    CONSTRAINT mi_journal_outcome_ck CHECK (outcome IS NULL OR outcome IN ('ok','rejected','unknown'))
)
/
CREATE INDEX mi_journal_outbox_ix ON mi_journal (outbox_id)
/
CREATE INDEX mi_journal_started_ix ON mi_journal (started_at)
/
-- Insurance identity written back for the HIS (one row per HIS patient).
CREATE TABLE mi_identity (
    his_patient_id   VARCHAR2(64 CHAR)   NOT NULL,
    psn_no           VARCHAR2(40 CHAR)   NOT NULL,
    insuplc_admdvs   VARCHAR2(12 CHAR),
    insutype         VARCHAR2(12 CHAR),
    benefit          VARCHAR2(40 CHAR),
    psn_cert_type    VARCHAR2(8 CHAR),
    source_outbox_id NUMBER(19),
    updated_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    -- migration 007: the identity written back to the HIS (docs/identity.md)
    psn_type         VARCHAR2(12 CHAR),
    med_type         VARCHAR2(8 CHAR),
    benefit_status   VARCHAR2(16 CHAR),
    certno_masked    VARCHAR2(40 CHAR),
    psn_name_masked  VARCHAR2(100 CHAR),
    gend             VARCHAR2(4 CHAR),
    chosen           NUMBER(1),
    source_kind      VARCHAR2(40 CHAR),
    CONSTRAINT mi_identity_pk PRIMARY KEY (his_patient_id)
)
/
-- Audit trail of every human action (requeue, resolve) and repair.
CREATE TABLE mi_audit (
    id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY (ORDER),
    outbox_id        NUMBER(19)          NOT NULL,
    action           VARCHAR2(40 CHAR)   NOT NULL,
    actor            VARCHAR2(64 CHAR)   NOT NULL,
    note             VARCHAR2(1000 CHAR),
    at               TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    -- the database login that ran the action (actor: who asked, e.g. alice@console)
    db_login         VARCHAR2(128 CHAR),
    CONSTRAINT mi_audit_pk PRIMARY KEY (id),
    CONSTRAINT mi_audit_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id)
)
/
CREATE INDEX mi_audit_outbox_ix ON mi_audit (outbox_id)
/
-- Notices the platforms push to us (the mobile-pay centre's 6302 settlement notice),
-- recorded once each after their signature verified, by the daemon's notice endpoint.
-- A repeated notice only bumps received_count. Flows read it; nobody else writes it.
-- outbox_id has no foreign key: a notice can name a row that was purged or never existed.
CREATE TABLE mi_notice (
    id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY (ORDER),
    interface        VARCHAR2(16 CHAR)   NOT NULL,
    notice_key       VARCHAR2(64 CHAR)   NOT NULL,
    business_key     VARCHAR2(64 CHAR),
    outbox_id        NUMBER(19),
    notice_json      CLOB                NOT NULL,
    received_count   NUMBER(10)          DEFAULT 1 NOT NULL,
    first_received_at TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    last_received_at TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    CONSTRAINT mi_notice_pk PRIMARY KEY (id),
    CONSTRAINT mi_notice_key UNIQUE (interface, notice_key)
)
/
CREATE INDEX mi_notice_business_ix ON mi_notice (business_key)
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
-- Admin procedures (migration 005) ---------------------------------------
-- A held row goes back to work: to in_doubt when it stopped inside a call that
-- was not safe to repeat (query first, never a blind resend), else to pending.
CREATE OR REPLACE PROCEDURE mi_requeue(
    p_id    IN NUMBER,
    p_note  IN VARCHAR2,
    p_actor IN VARCHAR2 DEFAULT NULL)
AS
    v_state VARCHAR2(16 CHAR);
BEGIN
    IF TRIM(p_note) IS NULL THEN
        RAISE_APPLICATION_ERROR(-20021, 'mibridge: a note is required: what was checked and decided');
    END IF;
    BEGIN
        SELECT state INTO v_state FROM mi_outbox WHERE id = p_id FOR UPDATE;
    EXCEPTION
        WHEN NO_DATA_FOUND THEN
            RAISE_APPLICATION_ERROR(-20022, 'mibridge: outbox row ' || NVL(TO_CHAR(p_id), 'NULL') || ' does not exist');
    END;
    IF v_state <> 'held' THEN
        RAISE_APPLICATION_ERROR(-20023, 'mibridge: outbox row ' || p_id || ' is ' || v_state
            || '; only a held row can be requeued');
    END IF;
    UPDATE mi_outbox
       SET state = CASE WHEN current_call IS NOT NULL AND call_unsafe = 1 THEN 'in_doubt' ELSE 'pending' END,
           attempts = 0, next_attempt_at = SYSTIMESTAMP, updated_at = SYSTIMESTAMP
     WHERE id = p_id AND state = 'held';
    INSERT INTO mi_audit (outbox_id, action, actor, note, db_login)
    VALUES (p_id, 'requeue', SUBSTR(NVL(TRIM(p_actor), SYS_CONTEXT('USERENV', 'SESSION_USER')), 1, 64),
            SUBSTR(p_note, 1, 1000), SYS_CONTEXT('USERENV', 'SESSION_USER'));
END;
/
-- A person settled a held row by hand: it ends 'resolved', the HIS gets a
-- 'manual' inbox row with the note, its secrets go. result_json is written by
-- hand (12.1 PL/SQL has no JSON functions): every text is escaped.
CREATE OR REPLACE PROCEDURE mi_resolve(
    p_id    IN NUMBER,
    p_note  IN VARCHAR2,
    p_actor IN VARCHAR2 DEFAULT NULL)
AS
    v_state VARCHAR2(16 CHAR);
    v_actor VARCHAR2(64 CHAR);
    FUNCTION js(p IN VARCHAR2) RETURN VARCHAR2 IS
        r VARCHAR2(32767);
        c VARCHAR2(8 CHAR);
    BEGIN
        FOR i IN 1 .. NVL(LENGTH(p), 0) LOOP
            c := SUBSTR(p, i, 1);
            IF c = '"' OR c = '\' THEN
                r := r || '\' || c;
            ELSIF ASCII(c) < 32 THEN
                r := r || '\u00' || LPAD(TRIM(TO_CHAR(ASCII(c), 'XX')), 2, '0');
            ELSE
                r := r || c;
            END IF;
        END LOOP;
        RETURN '"' || r || '"';
    END;
BEGIN
    IF TRIM(p_note) IS NULL THEN
        RAISE_APPLICATION_ERROR(-20021, 'mibridge: a note is required: what was checked and decided');
    END IF;
    BEGIN
        SELECT state INTO v_state FROM mi_outbox WHERE id = p_id FOR UPDATE;
    EXCEPTION
        WHEN NO_DATA_FOUND THEN
            RAISE_APPLICATION_ERROR(-20022, 'mibridge: outbox row ' || NVL(TO_CHAR(p_id), 'NULL') || ' does not exist');
    END;
    IF v_state <> 'held' THEN
        RAISE_APPLICATION_ERROR(-20023, 'mibridge: outbox row ' || p_id || ' is ' || v_state
            || '; only a held row can be resolved');
    END IF;
    v_actor := SUBSTR(NVL(TRIM(p_actor), SYS_CONTEXT('USERENV', 'SESSION_USER')), 1, 64);
    INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, error_code, error_message, result_json)
    SELECT id, kind, business_key, 'manual', 'resolved', 'RESOLVED_BY_HAND', SUBSTR(p_note, 1, 1000),
           TO_CLOB('{"note": ' || js(p_note) || ', "resolved_by": ' || js(v_actor) || '}')
      FROM mi_outbox WHERE id = p_id;
    UPDATE mi_outbox SET state = 'resolved', finished_at = SYSTIMESTAMP, updated_at = SYSTIMESTAMP,
           current_call = NULL, call_unsafe = 0
     WHERE id = p_id AND state = 'held';
    DELETE FROM mi_secret WHERE outbox_id = p_id;
    INSERT INTO mi_audit (outbox_id, action, actor, note, db_login)
    VALUES (p_id, 'resolve', v_actor, SUBSTR(p_note, 1, 1000), SYS_CONTEXT('USERENV', 'SESSION_USER'));
END;
/
-- A request nobody wants any more, before it made any call that may have moved
-- money: a pending or held row with no journalled unsafe call ends 'failed', and
-- the HIS gets a 'cancelled' inbox row (CANCELLED_BY_HAND) with the note.
CREATE OR REPLACE PROCEDURE mi_cancel(
    p_id    IN NUMBER,
    p_note  IN VARCHAR2,
    p_actor IN VARCHAR2 DEFAULT NULL)
AS
    v_state VARCHAR2(16 CHAR);
    v_actor VARCHAR2(64 CHAR);
    v_calls VARCHAR2(4000);
    FUNCTION js(p IN VARCHAR2) RETURN VARCHAR2 IS
        r VARCHAR2(32767);
        c VARCHAR2(8 CHAR);
    BEGIN
        FOR i IN 1 .. NVL(LENGTH(p), 0) LOOP
            c := SUBSTR(p, i, 1);
            IF c = '"' OR c = '\' THEN
                r := r || '\' || c;
            ELSIF ASCII(c) < 32 THEN
                r := r || '\u00' || LPAD(TRIM(TO_CHAR(ASCII(c), 'XX')), 2, '0');
            ELSE
                r := r || c;
            END IF;
        END LOOP;
        RETURN '"' || r || '"';
    END;
BEGIN
    IF TRIM(p_note) IS NULL THEN
        RAISE_APPLICATION_ERROR(-20021, 'mibridge: a note is required: what was checked and decided');
    END IF;
    BEGIN
        SELECT state INTO v_state FROM mi_outbox WHERE id = p_id FOR UPDATE;
    EXCEPTION
        WHEN NO_DATA_FOUND THEN
            RAISE_APPLICATION_ERROR(-20022, 'mibridge: outbox row ' || NVL(TO_CHAR(p_id), 'NULL') || ' does not exist');
    END;
    IF v_state = 'running' THEN
        RAISE_APPLICATION_ERROR(-20024, 'mibridge: outbox row ' || p_id
            || ' is running (a worker has it); try again when it waits');
    END IF;
    IF v_state NOT IN ('pending', 'held') THEN
        RAISE_APPLICATION_ERROR(-20023, 'mibridge: outbox row ' || p_id || ' is ' || v_state
            || '; only a pending or held row can be cancelled');
    END IF;
    SELECT LISTAGG(interface, ', ') WITHIN GROUP (ORDER BY interface) INTO v_calls
      FROM (SELECT DISTINCT interface FROM mi_journal WHERE outbox_id = p_id AND NVL(unsafe, 1) = 1);
    IF v_calls IS NOT NULL THEN
        RAISE_APPLICATION_ERROR(-20025, 'mibridge: outbox row ' || p_id || ' made a call that may have moved money ('
            || v_calls || '); it cannot be cancelled: let its flow finish or reverse it, or resolve it by hand once it is held');
    END IF;
    v_actor := SUBSTR(NVL(TRIM(p_actor), SYS_CONTEXT('USERENV', 'SESSION_USER')), 1, 64);
    INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, error_code, error_message, result_json)
    SELECT id, kind, business_key, 'cancelled', 'failed', 'CANCELLED_BY_HAND', SUBSTR(p_note, 1, 1000),
           TO_CLOB('{"cancelled_by": ' || js(v_actor) || ', "note": ' || js(p_note) || '}')
      FROM mi_outbox WHERE id = p_id;
    UPDATE mi_outbox SET state = 'failed', finished_at = SYSTIMESTAMP, updated_at = SYSTIMESTAMP,
           current_call = NULL, call_unsafe = 0, lease_owner = NULL, lease_expires_at = NULL,
           last_error_code = 'CANCELLED_BY_HAND', last_error_message = SUBSTR(p_note, 1, 1000)
     WHERE id = p_id AND state IN ('pending', 'held');
    DELETE FROM mi_secret WHERE outbox_id = p_id;
    INSERT INTO mi_audit (outbox_id, action, actor, note, db_login)
    VALUES (p_id, 'cancel', v_actor, SUBSTR(p_note, 1, 1000), SYS_CONTEXT('USERENV', 'SESSION_USER'));
END;
/
-- Views for DBAs --------------------------------------------------------
-- Why a pending row waits (waits_for): serial_key (behind waits_behind_id, the
-- oldest unfinished request with the same serial key), query (a call in doubt),
-- his, patient, backoff, scheduled, worker; see sql/postgresql/install.sql.
-- last_error_* only while they belong to the current step's tries.
CREATE VIEW mi_v_pending AS
SELECT p.id, p.kind, p.business_key, p.serial_key, p.state, p.step, p.attempts, p.next_attempt_at, p.created_at,
       FLOOR(EXTRACT(DAY FROM (SYSTIMESTAMP - p.created_at)) * 86400
             + EXTRACT(HOUR FROM (SYSTIMESTAMP - p.created_at)) * 3600
             + EXTRACT(MINUTE FROM (SYSTIMESTAMP - p.created_at)) * 60
             + EXTRACT(SECOND FROM (SYSTIMESTAMP - p.created_at))) AS age_seconds,
       CASE WHEN p.attempts > 0 THEN p.last_error_code END AS last_error_code,
       CASE WHEN p.attempts > 0 THEN p.last_error_message END AS last_error_message,
       CASE WHEN p.waits_behind_id IS NOT NULL THEN 'serial_key'
            WHEN p.state = 'in_doubt' THEN 'query'
            WHEN SUBSTR(p.step, 1, 9) = 'await_his' THEN 'his'
            WHEN p.step = 'await_payment' OR SUBSTR(p.step, 1, 13) = 'await_patient' THEN 'patient'
            WHEN p.next_attempt_at > SYSTIMESTAMP AND p.attempts > 0 THEN 'backoff'
            WHEN p.next_attempt_at > SYSTIMESTAMP THEN 'scheduled'
            ELSE 'worker' END AS waits_for,
       p.waits_behind_id
  FROM (SELECT o.id, o.kind, o.business_key, o.serial_key, o.state, o.step, o.attempts, o.next_attempt_at,
               o.created_at, o.last_error_code, o.last_error_message,
               (SELECT MIN(x.id) FROM mi_outbox x
                 WHERE x.serial_key = o.serial_key AND x.id < o.id
                   AND x.state NOT IN ('done', 'failed', 'resolved')) AS waits_behind_id
          FROM mi_outbox o WHERE o.state IN ('pending', 'in_doubt')) p
/
CREATE VIEW mi_v_in_flight AS
SELECT id, kind, business_key, step, lease_owner, lease_expires_at, current_call, attempts, updated_at,
       FLOOR(EXTRACT(DAY FROM (SYSTIMESTAMP - created_at)) * 86400
             + EXTRACT(HOUR FROM (SYSTIMESTAMP - created_at)) * 3600
             + EXTRACT(MINUTE FROM (SYSTIMESTAMP - created_at)) * 60
             + EXTRACT(SECOND FROM (SYSTIMESTAMP - created_at))) AS age_seconds
  FROM mi_outbox WHERE state = 'running'
/
CREATE VIEW mi_v_held AS
SELECT id, kind, business_key, serial_key, step, attempts, last_error_code AS reason_code,
       last_error_message AS reason, updated_at,
       FLOOR(EXTRACT(DAY FROM (SYSTIMESTAMP - created_at)) * 86400
             + EXTRACT(HOUR FROM (SYSTIMESTAMP - created_at)) * 3600
             + EXTRACT(MINUTE FROM (SYSTIMESTAMP - created_at)) * 60
             + EXTRACT(SECOND FROM (SYSTIMESTAMP - created_at))) AS age_seconds, current_call
  FROM mi_outbox WHERE state = 'held'
/
CREATE VIEW mi_v_failed AS
SELECT id, kind, business_key, step, finished_at, last_error_code, last_error_message,
       FLOOR(EXTRACT(DAY FROM (SYSTIMESTAMP - created_at)) * 86400
             + EXTRACT(HOUR FROM (SYSTIMESTAMP - created_at)) * 3600
             + EXTRACT(MINUTE FROM (SYSTIMESTAMP - created_at)) * 60
             + EXTRACT(SECOND FROM (SYSTIMESTAMP - created_at))) AS age_seconds
  FROM mi_outbox WHERE state = 'failed'
/
-- "Today" is the database server's day: midnight of SYSTIMESTAMP's own time zone.
-- The amount is that of each request's latest inbox row.
CREATE VIEW mi_v_today AS
SELECT o.kind, o.state, COUNT(*) AS requests, SUM(i.total_amount) AS total_amount
  FROM mi_outbox o
  OUTER APPLY (SELECT x.total_amount FROM mi_inbox x WHERE x.outbox_id = o.id
                ORDER BY x.id DESC FETCH FIRST 1 ROW ONLY) i
 WHERE o.created_at >= FROM_TZ(CAST(TRUNC(SYSTIMESTAMP) AS TIMESTAMP), TO_CHAR(SYSTIMESTAMP, 'TZH:TZM'))
 GROUP BY o.kind, o.state
 ORDER BY o.kind, o.state
/
-- Migration 003: mi_secret, the daemon's own store of tokens and ID numbers.
-- A flow's secrets (the mobile-pay payToken, a face-identified patient's ID number,
-- name, ecToken and authNo) live here instead of in mi_outbox.flow_data, which the HIS
-- and DBAs read. Only the daemon reads or writes it (grants.sql gives the HIS nothing
-- on it). A row's secrets go when the request is final, except what a later request
-- needs (a payment's payToken for its refunds and for a late notice's check), and with
-- the row when it is purged.
-- The daemon never writes an empty value (Oracle would store '' as NULL).
CREATE TABLE mi_secret (
    outbox_id        NUMBER(19)           NOT NULL,
    name             VARCHAR2(64 CHAR)    NOT NULL,
    value            VARCHAR2(2000 CHAR)  NOT NULL,
    created_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    CONSTRAINT mi_secret_pk PRIMARY KEY (outbox_id, name),
    CONSTRAINT mi_secret_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id)
)
/
-- Migration 004: the order book and daily reconciliation (docs/reconciliation.md).
-- mi_order: one row per payment, kept by the daemon from the inbox rows it writes, in the
-- same transaction (bridge/db/orderbook.py); mi_order_refund: its refunds, reversals and
-- cancellations. Purge never deletes either. mi_recon_run / mi_recon_item / mi_channel_bill:
-- the daily reconciliation; views show the latest completed run of each day and platform.
-- Days are yyyy-MM-dd in China time (UTC+8), the day the platforms' statements use.
CREATE TABLE mi_order (
    id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY (ORDER),
    platform         VARCHAR2(16 CHAR)   NOT NULL,
    channel          VARCHAR2(16 CHAR)   NOT NULL,
    kind             VARCHAR2(40 CHAR)   NOT NULL,
    business_key     VARCHAR2(64 CHAR)   NOT NULL,
    outbox_id        NUMBER(19)          NOT NULL,
    inbox_id         NUMBER(19),
    platform_order_id VARCHAR2(64 CHAR)  NOT NULL,
    settlement_id    VARCHAR2(64 CHAR),
    mix_trade_no     VARCHAR2(64 CHAR),
    out_trade_no     VARCHAR2(64 CHAR),
    trade_no         VARCHAR2(64 CHAR),
    psn_no           VARCHAR2(40 CHAR),
    mdtrt_id         VARCHAR2(64 CHAR),
    insutype         VARCHAR2(12 CHAR),
    clr_type         VARCHAR2(12 CHAR),
    setl_optins      VARCHAR2(12 CHAR),
    ref_no           VARCHAR2(64 CHAR),
    term_seq_no      VARCHAR2(64 CHAR),
    status           VARCHAR2(16 CHAR)   DEFAULT 'paid' NOT NULL,
    total_amount     NUMBER(16,2)        NOT NULL,
    fund_amount      NUMBER(16,2)        NOT NULL,
    account_amount   NUMBER(16,2)        NOT NULL,
    cash_amount      NUMBER(16,2)        NOT NULL,
    refunded_total   NUMBER(16,2)        DEFAULT 0 NOT NULL,
    refunded_fund    NUMBER(16,2)        DEFAULT 0 NOT NULL,
    refunded_account NUMBER(16,2)        DEFAULT 0 NOT NULL,
    refunded_cash    NUMBER(16,2)        DEFAULT 0 NOT NULL,
    refund_count     NUMBER(10)          DEFAULT 0 NOT NULL,
    settle_day       VARCHAR2(10 CHAR)   NOT NULL,
    settled_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    last_refund_at   TIMESTAMP WITH TIME ZONE,
    updated_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    CONSTRAINT mi_order_pk PRIMARY KEY (id),
    CONSTRAINT mi_order_key UNIQUE (platform_order_id, platform),
    CONSTRAINT mi_order_status_ck CHECK (status IN ('paid','partly_refunded','refunded','reversed','cancelled'))
)
/
CREATE INDEX mi_order_day_ix ON mi_order (settle_day, platform, id)
/
CREATE INDEX mi_order_business_ix ON mi_order (business_key)
/
CREATE INDEX mi_order_trade_ix ON mi_order (out_trade_no)
/
CREATE TABLE mi_order_refund (
    id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY (ORDER),
    order_ref        NUMBER(19),
    platform         VARCHAR2(16 CHAR)   NOT NULL,
    platform_order_id VARCHAR2(64 CHAR)  NOT NULL,
    refund_type      VARCHAR2(16 CHAR)   NOT NULL,
    kind             VARCHAR2(40 CHAR)   NOT NULL,
    business_key     VARCHAR2(64 CHAR)   NOT NULL,
    outbox_id        NUMBER(19)          NOT NULL,
    inbox_id         NUMBER(19),
    refund_ref       VARCHAR2(64 CHAR),
    out_refund_no    VARCHAR2(64 CHAR),
    state            VARCHAR2(16 CHAR)   DEFAULT 'booked' NOT NULL,
    total_amount     NUMBER(16,2)        NOT NULL,
    fund_amount      NUMBER(16,2)        NOT NULL,
    account_amount   NUMBER(16,2)        NOT NULL,
    cash_amount      NUMBER(16,2)        NOT NULL,
    refund_day       VARCHAR2(10 CHAR)   NOT NULL,
    refunded_at      TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    CONSTRAINT mi_order_refund_pk PRIMARY KEY (id),
    CONSTRAINT mi_order_refund_key UNIQUE (outbox_id, refund_type, platform_order_id),
    CONSTRAINT mi_order_refund_type_ck CHECK (refund_type IN ('refund','reversal','cancellation')),
    CONSTRAINT mi_order_refund_state_ck CHECK (state IN ('booked','unmatched'))
)
/
CREATE INDEX mi_order_refund_order_ix ON mi_order_refund (order_ref)
/
CREATE INDEX mi_order_refund_day_ix ON mi_order_refund (refund_day, platform, id)
/
CREATE INDEX mi_order_refund_platform_ix ON mi_order_refund (platform_order_id)
/
CREATE TABLE mi_recon_run (
    id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY (ORDER),
    recon_day        VARCHAR2(10 CHAR)   NOT NULL,
    platform         VARCHAR2(16 CHAR)   NOT NULL,
    state            VARCHAR2(16 CHAR)   DEFAULT 'running' NOT NULL,
    active_key       VARCHAR2(40 CHAR)   NOT NULL,
    owner            VARCHAR2(80 CHAR)   NOT NULL,
    step             VARCHAR2(40 CHAR),
    progress_done    NUMBER(10)          DEFAULT 0 NOT NULL,
    progress_total   NUMBER(10),
    balanced         NUMBER(1),
    items_total      NUMBER(10)          DEFAULT 0 NOT NULL,
    items_differ     NUMBER(10)          DEFAULT 0 NOT NULL,
    digest           VARCHAR2(64 CHAR),
    report_outbox_id NUMBER(19),
    detail_json      CLOB,
    error_message    VARCHAR2(1000 CHAR),
    started_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    heartbeat_at     TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    finished_at      TIMESTAMP WITH TIME ZONE,
    CONSTRAINT mi_recon_run_pk PRIMARY KEY (id),
    CONSTRAINT mi_recon_run_active UNIQUE (active_key),
    CONSTRAINT mi_recon_run_state_ck CHECK (state IN ('running','done','failed','abandoned'))
)
/
CREATE INDEX mi_recon_run_day_ix ON mi_recon_run (recon_day, platform, state)
/
CREATE TABLE mi_recon_item (
    id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY (ORDER),
    run_id           NUMBER(19)          NOT NULL,
    order_key        VARCHAR2(64 CHAR)   NOT NULL,
    leg              VARCHAR2(16 CHAR)   NOT NULL,
    diff_class       VARCHAR2(16 CHAR)   NOT NULL,
    order_ref        NUMBER(19),
    business_key     VARCHAR2(64 CHAR),
    channel          VARCHAR2(16 CHAR),
    channel_ref      VARCHAR2(64 CHAR),
    hospital_amount  NUMBER(16,2),
    platform_amount  NUMBER(16,2),
    channel_amount   NUMBER(16,2),
    hospital_state   VARCHAR2(40 CHAR),
    platform_state   VARCHAR2(40 CHAR),
    source           VARCHAR2(16 CHAR)   NOT NULL,
    note             VARCHAR2(1000 CHAR),
    CONSTRAINT mi_recon_item_pk PRIMARY KEY (id),
    CONSTRAINT mi_recon_item_key UNIQUE (run_id, order_key, leg),
    CONSTRAINT mi_recon_item_run_fk FOREIGN KEY (run_id) REFERENCES mi_recon_run (id),
    CONSTRAINT mi_recon_item_class_ck CHECK (diff_class IN ('balanced','hospital_only','platform_only',
                                                            'channel_only','amount_differs','unchecked'))
)
/
CREATE INDEX mi_recon_item_ref_ix ON mi_recon_item (run_id, channel_ref)
/
CREATE TABLE mi_channel_bill (
    id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY (ORDER),
    run_id           NUMBER(19)          NOT NULL,
    channel          VARCHAR2(16 CHAR)   NOT NULL,
    bill_day         VARCHAR2(10 CHAR)   NOT NULL,
    line_no          NUMBER(10)          NOT NULL,
    row_type         VARCHAR2(16 CHAR)   NOT NULL,
    out_trade_no     VARCHAR2(64 CHAR)   NOT NULL,
    trade_no         VARCHAR2(64 CHAR),
    out_refund_no    VARCHAR2(64 CHAR),
    refund_id        VARCHAR2(64 CHAR),
    amount           NUMBER(16,2)        NOT NULL,
    trade_state      VARCHAR2(32 CHAR),
    trade_time       VARCHAR2(19 CHAR),
    CONSTRAINT mi_channel_bill_pk PRIMARY KEY (id),
    CONSTRAINT mi_channel_bill_line UNIQUE (run_id, channel, line_no),
    CONSTRAINT mi_channel_bill_run_fk FOREIGN KEY (run_id) REFERENCES mi_recon_run (id)
)
/
CREATE INDEX mi_channel_bill_trade_ix ON mi_channel_bill (run_id, out_trade_no)
/
-- The order book: one row per payment, its refunds summed per leg, the latest refund request.
CREATE VIEW mi_v_orders AS
SELECT o.id AS order_id, o.platform, o.channel, o.kind, o.business_key, o.platform_order_id, o.settlement_id,
       o.mix_trade_no, o.out_trade_no, o.trade_no, o.status,
       o.total_amount, o.fund_amount, o.account_amount, o.cash_amount,
       o.refunded_total, o.refunded_fund, o.refunded_account, o.refunded_cash,
       o.total_amount - o.refunded_total AS net_amount, o.refund_count,
       (SELECT r.business_key FROM mi_order_refund r
         WHERE r.id = (SELECT MAX(x.id) FROM mi_order_refund x WHERE x.order_ref = o.id)) AS last_refund_key,
       o.last_refund_at, o.settle_day, o.settled_at, o.psn_no, o.mdtrt_id, o.insutype, o.clr_type,
       o.setl_optins, o.ref_no, o.term_seq_no, o.outbox_id, o.updated_at
  FROM mi_order o
/
CREATE VIEW mi_v_order_refunds AS
SELECT r.id AS refund_id, r.order_ref AS order_id, o.business_key AS payment_key, r.platform,
       r.platform_order_id, r.refund_type, r.kind, r.business_key, r.refund_ref, r.out_refund_no, r.state,
       r.total_amount, r.fund_amount, r.account_amount, r.cash_amount, r.refund_day, r.refunded_at, r.outbox_id
  FROM mi_order_refund r LEFT JOIN mi_order o ON o.id = r.order_ref
/
-- The latest completed run of each day and platform, one row per order and leg.
CREATE VIEW mi_v_reconciliation AS
SELECT r.recon_day, r.platform, r.id AS run_id, i.order_key, i.business_key, i.channel, i.channel_ref, i.leg,
       i.diff_class, i.hospital_amount, i.platform_amount, i.channel_amount, i.hospital_state,
       i.platform_state, i.source, i.note, i.order_ref AS order_id
  FROM mi_recon_item i JOIN mi_recon_run r ON r.id = i.run_id
 WHERE r.state = 'done'
   AND r.id = (SELECT MAX(x.id) FROM mi_recon_run x
                WHERE x.recon_day = r.recon_day AND x.platform = r.platform AND x.state = 'done')
/
-- What a person must look at: every difference of the latest completed runs, with what to do.
CREATE VIEW mi_v_recon_review AS
SELECT v.recon_day, v.platform, v.run_id, v.order_key, v.business_key, v.channel, v.channel_ref, v.leg,
       v.diff_class, v.hospital_amount, v.platform_amount, v.channel_amount, v.hospital_state,
       v.platform_state, v.source, v.note, v.order_id,
       CASE v.diff_class
           WHEN 'hospital_only' THEN 'booked by the hospital, missing at the platform or channel: check there before billing again'
           WHEN 'platform_only' THEN 'booked at the platform, unknown to the hospital: find the request, bill or refund it'
           WHEN 'channel_only' THEN 'money moved in the channel, unknown to the hospital: find the order, refund or book it'
           WHEN 'amount_differs' THEN 'amounts differ: compare the columns, correct the wrong side'
           ELSE 'not compared: see the note, then reconcile again'
       END AS action
  FROM mi_v_reconciliation v
 WHERE v.diff_class <> 'balanced'
/
-- The daily check: the latest finished run of each day and platform.
CREATE VIEW mi_v_recon_days AS
SELECT r.recon_day, r.platform, r.id AS run_id, r.state, r.balanced, r.items_total, r.items_differ,
       r.started_at, r.finished_at, r.error_message
  FROM mi_recon_run r
 WHERE r.id = (SELECT MAX(x.id) FROM mi_recon_run x
                WHERE x.recon_day = r.recon_day AND x.platform = r.platform AND x.state IN ('done', 'failed'))
/
-- Migration 006: mi_insured_region, the insured regions (参保地) the hospital supports, and
-- the view the HIS and the mini-program backend read (enabled regions only). Filled by the
-- daemon from the config, from a CSV the DBA loads (mibridge regions load) and, where the site
-- turns it on, from the platform's 1901 dictionary; `source` names who set the row last, and a
-- refresh from the platform never changes a row a person set (docs/identity.md). on_* say on
-- which channel the region is offered; insutypes lists the insurance types accepted there,
-- comma-separated (NULL = every type).
-- The digit check uses TRANSLATE, which no NLS setting changes.
CREATE TABLE mi_insured_region (
    admdvs           VARCHAR2(6 CHAR)     NOT NULL,
    name             VARCHAR2(100 CHAR)   NOT NULL,
    enabled          NUMBER(1)            DEFAULT 1 NOT NULL,
    on_wechat        NUMBER(1)            DEFAULT 1 NOT NULL,
    on_alipay        NUMBER(1)            DEFAULT 1 NOT NULL,
    on_counter       NUMBER(1)            DEFAULT 1 NOT NULL,
    on_kiosk         NUMBER(1)            DEFAULT 1 NOT NULL,
    insutypes        VARCHAR2(200 CHAR),
    sort_order       NUMBER(10),
    source           VARCHAR2(16 CHAR)    NOT NULL,
    updated_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    CONSTRAINT mi_insured_region_pk PRIMARY KEY (admdvs),
    CONSTRAINT mi_insured_region_admdvs_ck CHECK (LENGTH(admdvs) = 6 AND TRANSLATE(admdvs, '0123456789', '0000000000') = '000000'),
    CONSTRAINT mi_insured_region_name_ck CHECK (TRIM(name) IS NOT NULL),
    CONSTRAINT mi_insured_region_flags_ck CHECK (enabled IN (0, 1) AND on_wechat IN (0, 1) AND on_alipay IN (0, 1) AND on_counter IN (0, 1) AND on_kiosk IN (0, 1)),
    CONSTRAINT mi_insured_region_source_ck CHECK (source IN ('config', 'csv', '1901', 'manual'))
)
/
CREATE VIEW mi_v_insured_regions AS
SELECT admdvs, name, on_wechat, on_alipay, on_counter, on_kiosk, insutypes, sort_order, source, updated_at
  FROM mi_insured_region WHERE enabled = 1
/
INSERT INTO mi_schema_version (version, name) VALUES (1, '001_baseline')
/
INSERT INTO mi_schema_version (version, name) VALUES (2, '002_hardening')
/
INSERT INTO mi_schema_version (version, name) VALUES (3, '003_secrets')
/
INSERT INTO mi_schema_version (version, name) VALUES (4, '004_reconciliation')
/
INSERT INTO mi_schema_version (version, name) VALUES (5, '005_admin')
/
INSERT INTO mi_schema_version (version, name) VALUES (6, '006_insured_region')
/
INSERT INTO mi_schema_version (version, name) VALUES (7, '007_identity')
/
COMMIT
/
