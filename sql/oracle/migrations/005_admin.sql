-- mibridge migration 005 (admin) for Oracle: from schema version 4 to 5.
-- Run by hand (WHENEVER SQLERROR EXIT FAILURE first):
--   sqlplus his@//dbhost:1521/HISPDB @sql/oracle/migrations/005_admin.sql
-- Oracle commits each DDL statement: this file can simply be run again.
-- What changes (docs/operations.md, "Admin functions in SQL"):
--   * mi_requeue(id, note[, actor]), mi_resolve(...), mi_cancel(...): what
--     `mibridge requeue|resolve|cancel` and the console do, for a DBA in SQL, with the
--     same rules (the daemon calls them too); each audited in mi_audit with the
--     session's login (db_login) and who asked (actor; default the login):
--       BEGIN mi_requeue(42, 'gateway fixed'); END;
--   * mi_journal.unsafe: whether a journalled call was not safe to repeat; NULL for
--     calls journalled before, counted as unsafe;
--   * the DBA views: the same columns on every database; mi_v_pending says why a row
--     waits; mi_v_today is ordered;
--   * an index on mi_journal (started_at).
DECLARE
    v_count NUMBER;
BEGIN
    SELECT COUNT(*) INTO v_count FROM user_tab_columns WHERE table_name = 'MI_JOURNAL' AND column_name = 'UNSAFE';
    IF v_count = 0 THEN
        EXECUTE IMMEDIATE 'ALTER TABLE mi_journal ADD (unsafe NUMBER(5))';
    END IF;
    SELECT COUNT(*) INTO v_count FROM user_tab_columns WHERE table_name = 'MI_AUDIT' AND column_name = 'DB_LOGIN';
    IF v_count = 0 THEN
        EXECUTE IMMEDIATE 'ALTER TABLE mi_audit ADD (db_login VARCHAR2(128 CHAR))';
    END IF;
    SELECT COUNT(*) INTO v_count FROM user_indexes WHERE index_name = 'MI_JOURNAL_STARTED_IX';
    IF v_count = 0 THEN
        EXECUTE IMMEDIATE 'CREATE INDEX mi_journal_started_ix ON mi_journal (started_at)';
    END IF;
END;
/
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
-- Why a pending row waits (waits_for): serial_key (behind waits_behind_id, the
-- oldest unfinished request with the same serial key), query (a call in doubt),
-- his, patient, backoff, scheduled, worker; see sql/postgresql/install.sql.
-- last_error_* only while they belong to the current step's tries.
CREATE OR REPLACE VIEW mi_v_pending AS
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
CREATE OR REPLACE VIEW mi_v_in_flight AS
SELECT id, kind, business_key, step, lease_owner, lease_expires_at, current_call, attempts, updated_at,
       FLOOR(EXTRACT(DAY FROM (SYSTIMESTAMP - created_at)) * 86400
             + EXTRACT(HOUR FROM (SYSTIMESTAMP - created_at)) * 3600
             + EXTRACT(MINUTE FROM (SYSTIMESTAMP - created_at)) * 60
             + EXTRACT(SECOND FROM (SYSTIMESTAMP - created_at))) AS age_seconds
  FROM mi_outbox WHERE state = 'running'
/
CREATE OR REPLACE VIEW mi_v_held AS
SELECT id, kind, business_key, serial_key, step, attempts, last_error_code AS reason_code,
       last_error_message AS reason, updated_at,
       FLOOR(EXTRACT(DAY FROM (SYSTIMESTAMP - created_at)) * 86400
             + EXTRACT(HOUR FROM (SYSTIMESTAMP - created_at)) * 3600
             + EXTRACT(MINUTE FROM (SYSTIMESTAMP - created_at)) * 60
             + EXTRACT(SECOND FROM (SYSTIMESTAMP - created_at))) AS age_seconds, current_call
  FROM mi_outbox WHERE state = 'held'
/
CREATE OR REPLACE VIEW mi_v_failed AS
SELECT id, kind, business_key, step, finished_at, last_error_code, last_error_message,
       FLOOR(EXTRACT(DAY FROM (SYSTIMESTAMP - created_at)) * 86400
             + EXTRACT(HOUR FROM (SYSTIMESTAMP - created_at)) * 3600
             + EXTRACT(MINUTE FROM (SYSTIMESTAMP - created_at)) * 60
             + EXTRACT(SECOND FROM (SYSTIMESTAMP - created_at))) AS age_seconds
  FROM mi_outbox WHERE state = 'failed'
/
-- "Today" is the database server's day: midnight of SYSTIMESTAMP's own time zone.
-- The amount is that of each request's latest inbox row.
CREATE OR REPLACE VIEW mi_v_today AS
SELECT o.kind, o.state, COUNT(*) AS requests, SUM(i.total_amount) AS total_amount
  FROM mi_outbox o
  OUTER APPLY (SELECT x.total_amount FROM mi_inbox x WHERE x.outbox_id = o.id
                ORDER BY x.id DESC FETCH FIRST 1 ROW ONLY) i
 WHERE o.created_at >= FROM_TZ(CAST(TRUNC(SYSTIMESTAMP) AS TIMESTAMP), TO_CHAR(SYSTIMESTAMP, 'TZH:TZM'))
 GROUP BY o.kind, o.state
 ORDER BY o.kind, o.state
/
INSERT INTO mi_schema_version (version, name)
SELECT 5, '005_admin' FROM dual WHERE NOT EXISTS (SELECT 1 FROM mi_schema_version WHERE version = 5)
/
COMMIT
/
