-- mibridge: install into an Oracle (12.1.0.2+: IDENTITY, IS JSON, JSON_VALUE) HIS schema.
-- Run by hand, connected as the schema that will own the mi_ objects (e.g. HIS):
--   sqlplus his@//dbhost:1521/HISPDB
--   SQL> WHENEVER SQLERROR EXIT FAILURE
--   SQL> @sql/oracle/install.sql
-- or:            mibridge db install --url oracle://his@dbhost:1521/HISPDB
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
-- Oracle stores '' as NULL: nothing here (or in the daemon) relies on an empty string.
--
-- Outbox: one row per request the HIS makes (states: see the CHECK below and
-- sql/postgresql/install.sql).
CREATE TABLE mi_outbox (
    id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY,
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
    id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY,
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
-- Call journal: one row per remote call, written BEFORE the call is sent.
CREATE TABLE mi_journal (
    id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY,
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
    CONSTRAINT mi_journal_pk PRIMARY KEY (id),
    CONSTRAINT mi_journal_msg_uq UNIQUE (msg_id),
    CONSTRAINT mi_journal_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id),
    CONSTRAINT mi_journal_outcome_ck CHECK (outcome IS NULL OR outcome IN ('ok','rejected','unknown'))
)
/
CREATE INDEX mi_journal_outbox_ix ON mi_journal (outbox_id)
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
    CONSTRAINT mi_identity_pk PRIMARY KEY (his_patient_id)
)
/
-- Audit trail of every human action (requeue, resolve) and repair.
CREATE TABLE mi_audit (
    id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY,
    outbox_id        NUMBER(19)          NOT NULL,
    action           VARCHAR2(40 CHAR)   NOT NULL,
    actor            VARCHAR2(64 CHAR)   NOT NULL,
    note             VARCHAR2(1000 CHAR),
    at               TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
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
    id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY,
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
-- Errors are ORA-20001..20004 with a 'mibridge: ...' message.
-- The JSON checks run as SQL on DUAL because Oracle 12.1 PL/SQL cannot use
-- IS JSON / JSON_VALUE directly. IS JSON STRICT: no single quotes, no
-- unquoted keys (the default, lax, accepts both).
CREATE OR REPLACE TRIGGER mi_outbox_validate_tg
BEFORE INSERT ON mi_outbox
FOR EACH ROW
DECLARE
    v_ok        NUMBER;
    v_total     VARCHAR2(4000);
    v_total_doc VARCHAR2(4000);
BEGIN
    IF TRIM(:NEW.business_key) IS NULL THEN
        RAISE_APPLICATION_ERROR(-20001, 'mibridge: business_key is required');
    END IF;
    IF TRIM(:NEW.kind) IS NULL THEN
        RAISE_APPLICATION_ERROR(-20001, 'mibridge: kind is required');
    END IF;
    -- An omitted serial key means "this request is its own sequence".
    IF TRIM(:NEW.serial_key) IS NULL THEN
        :NEW.serial_key := :NEW.business_key;
    END IF;
    IF :NEW.payload IS NULL THEN
        RAISE_APPLICATION_ERROR(-20002, 'mibridge: payload is not valid JSON');
    END IF;
    SELECT COUNT(*) INTO v_ok FROM dual WHERE :NEW.payload IS JSON STRICT;
    IF v_ok = 0 THEN
        RAISE_APPLICATION_ERROR(-20002, 'mibridge: payload is not valid JSON');
    END IF;
    -- Valid JSON whose first character (after blanks) is '{' is an object.
    IF NOT REGEXP_LIKE(:NEW.payload, '^\s*\{') THEN
        RAISE_APPLICATION_ERROR(-20003, 'mibridge: payload must be a JSON object');
    END IF;
    -- JSON_VALUE gives the text of a scalar (NULL for JSON null or a missing key);
    -- JSON_QUERY gives an object or array, which is not an amount either.
    SELECT JSON_VALUE(:NEW.payload, '$.total_amount'), JSON_QUERY(:NEW.payload, '$.total_amount')
      INTO v_total, v_total_doc FROM dual;
    IF v_total_doc IS NOT NULL
       OR (v_total IS NOT NULL AND NOT REGEXP_LIKE(v_total, '^[0-9]+(\.[0-9]{1,2})?$')) THEN
        RAISE_APPLICATION_ERROR(-20004,
            'mibridge: total_amount must be a non-negative amount with at most 2 decimals, got '
            || NVL(v_total, v_total_doc));
    END IF;
END;
/
-- The one call the HIS makes per request; p_id returns the outbox id:
--   DECLARE v_id NUMBER;
--   BEGIN mi_enqueue('test.charge', 'INV-1', 'VISIT-1', '{"total_amount":"12.50"}', v_id); END;
-- The same (kind, business_key) with the same payload returns the existing id
-- (a retried HIS transaction is harmless); with a different payload it is an
-- error (ORA-20010). Oracle 12.1 has no JSON equality (JSON_EQUAL is 18c), so
-- "the same payload" means the same text: a retry must send the same document.
-- Insert first, then look: a concurrent enqueue of the same key waits on the
-- unique index and then takes the DUP_VAL_ON_INDEX path.
CREATE OR REPLACE PROCEDURE mi_enqueue(
    p_kind         IN  VARCHAR2,
    p_business_key IN  VARCHAR2,
    p_serial_key   IN  VARCHAR2,
    p_payload      IN  CLOB,
    p_id           OUT NUMBER)
AS
    v_old CLOB;
BEGIN
    INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
    VALUES (p_kind, p_business_key, NVL(p_serial_key, p_business_key), p_payload)
    RETURNING id INTO p_id;
EXCEPTION
    WHEN DUP_VAL_ON_INDEX THEN
        SELECT id, payload INTO p_id, v_old FROM mi_outbox
         WHERE kind = p_kind AND business_key = p_business_key;
        IF DBMS_LOB.COMPARE(v_old, p_payload) <> 0 THEN
            RAISE_APPLICATION_ERROR(-20010, 'mibridge: ' || p_kind || ' request ' || p_business_key
                || ' already exists with a different payload (outbox id ' || p_id || ')');
        END IF;
END;
/
-- The HIS marks an inbox row as taken ('accepted') or refused ('rejected'):
--   BEGIN mi_inbox_consume(42, 'accepted'); END;
-- A refused settlement is repaired by the daemon (refund/reversal), see docs/.
CREATE OR REPLACE PROCEDURE mi_inbox_consume(
    p_id  IN NUMBER,
    p_ack IN VARCHAR2 DEFAULT 'accepted')
AS
BEGIN
    UPDATE mi_inbox SET consumed_at = SYSTIMESTAMP, his_ack = NVL(p_ack, 'accepted')
     WHERE id = p_id AND consumed_at IS NULL;
    IF SQL%ROWCOUNT = 0 THEN
        RAISE_APPLICATION_ERROR(-20011, 'mibridge: inbox row ' || p_id
            || ' does not exist or was already consumed');
    END IF;
END;
/
-- Views for DBAs --------------------------------------------------------
CREATE VIEW mi_v_pending AS
SELECT id, kind, business_key, serial_key, state, step, attempts, next_attempt_at, created_at,
       SYSTIMESTAMP - created_at AS age, last_error_code, last_error_message
  FROM mi_outbox WHERE state IN ('pending', 'in_doubt')
/
CREATE VIEW mi_v_in_flight AS
SELECT id, kind, business_key, step, lease_owner, lease_expires_at, current_call, attempts, updated_at
  FROM mi_outbox WHERE state = 'running'
/
CREATE VIEW mi_v_held AS
SELECT id, kind, business_key, serial_key, step, attempts, last_error_code AS reason_code,
       last_error_message AS reason, updated_at
  FROM mi_outbox WHERE state = 'held'
/
CREATE VIEW mi_v_failed AS
SELECT id, kind, business_key, step, finished_at, last_error_code, last_error_message
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
/

-- mibridge migration 003: mi_secret, the daemon's own store of tokens and ID numbers.
-- A flow's secrets (the mobile-pay payToken, a face-identified patient's ID number,
-- name, ecToken and authNo) live here instead of in mi_outbox.flow_data, which the HIS
-- and DBAs read. Only the daemon reads or writes it (grants.sql gives the HIS nothing
-- on it). A row's secrets go when the request is final, except what a later request
-- needs (a payment's payToken for its refund), and with the row when it is purged.
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
