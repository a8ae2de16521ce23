-- mibridge migration 005 (admin) for SQLite: from schema version 4 to 5.
-- Run by hand: sqlite3 his.db < sql/sqlite/migrations/005_admin.sql
-- What changes (docs/operations.md, "Admin functions in SQL"):
--   * mi_requeue, mi_resolve, mi_cancel: SQLite has no procedures, so each is a view
--     whose INSTEAD OF trigger does the work, as mi_inbox_consume does:
--       INSERT INTO mi_requeue (id, note) VALUES (42, 'gateway fixed');
--       INSERT INTO mi_resolve (id, note) VALUES (42, 'checked: never charged');
--       INSERT INTO mi_cancel  (id, note) VALUES (42, 'the patient left');
--     with an optional actor column (who asked; default 'sqlite'). The same rules
--     as on every database; each is audited in mi_audit;
--   * mi_journal.unsafe: whether a journalled call was not safe to repeat; NULL for
--     calls journalled before, counted as unsafe;
--   * the DBA views: the same columns on every database; mi_v_pending says why a
--     row waits; mi_v_today is ordered;
--   * an index on mi_journal (started_at).
.bail on
BEGIN IMMEDIATE;

ALTER TABLE mi_journal ADD COLUMN unsafe INTEGER;
ALTER TABLE mi_audit ADD COLUMN db_login TEXT;
CREATE INDEX mi_journal_started_ix ON mi_journal (started_at);

CREATE VIEW mi_requeue (id, note, actor) AS SELECT NULL, NULL, NULL WHERE 0;

CREATE TRIGGER mi_requeue_tg INSTEAD OF INSERT ON mi_requeue
BEGIN
    SELECT CASE
        WHEN NEW.note IS NULL OR trim(NEW.note) = ''
            THEN RAISE(ABORT, 'mibridge: a note is required: what was checked and decided')
        WHEN NOT EXISTS (SELECT 1 FROM mi_outbox WHERE id = NEW.id)
            THEN RAISE(ABORT, 'mibridge: this outbox row does not exist')
        WHEN (SELECT state FROM mi_outbox WHERE id = NEW.id) <> 'held'
            THEN RAISE(ABORT, 'mibridge: this outbox row is not held; only a held row can be requeued')
    END;
    UPDATE mi_outbox
       SET state = CASE WHEN current_call IS NOT NULL AND call_unsafe = 1 THEN 'in_doubt' ELSE 'pending' END,
           attempts = 0, next_attempt_at = strftime('%Y-%m-%d %H:%M:%f','now'),
           updated_at = strftime('%Y-%m-%d %H:%M:%f','now')
     WHERE id = NEW.id AND state = 'held';
    INSERT INTO mi_audit (outbox_id, action, actor, note)
    VALUES (NEW.id, 'requeue', substr(COALESCE(NULLIF(trim(NEW.actor), ''), 'sqlite'), 1, 64), substr(NEW.note, 1, 1000));
END;

CREATE VIEW mi_resolve (id, note, actor) AS SELECT NULL, NULL, NULL WHERE 0;

CREATE TRIGGER mi_resolve_tg INSTEAD OF INSERT ON mi_resolve
BEGIN
    SELECT CASE
        WHEN NEW.note IS NULL OR trim(NEW.note) = ''
            THEN RAISE(ABORT, 'mibridge: a note is required: what was checked and decided')
        WHEN NOT EXISTS (SELECT 1 FROM mi_outbox WHERE id = NEW.id)
            THEN RAISE(ABORT, 'mibridge: this outbox row does not exist')
        WHEN (SELECT state FROM mi_outbox WHERE id = NEW.id) <> 'held'
            THEN RAISE(ABORT, 'mibridge: this outbox row is not held; only a held row can be resolved')
    END;
    INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, error_code, error_message, result_json)
    SELECT id, kind, business_key, 'manual', 'resolved', 'RESOLVED_BY_HAND', substr(NEW.note, 1, 1000),
           json_object('note', NEW.note, 'resolved_by', substr(COALESCE(NULLIF(trim(NEW.actor), ''), 'sqlite'), 1, 64))
      FROM mi_outbox WHERE id = NEW.id;
    UPDATE mi_outbox SET state = 'resolved', finished_at = strftime('%Y-%m-%d %H:%M:%f','now'),
           updated_at = strftime('%Y-%m-%d %H:%M:%f','now'), current_call = NULL, call_unsafe = 0
     WHERE id = NEW.id AND state = 'held';
    DELETE FROM mi_secret WHERE outbox_id = NEW.id;
    INSERT INTO mi_audit (outbox_id, action, actor, note)
    VALUES (NEW.id, 'resolve', substr(COALESCE(NULLIF(trim(NEW.actor), ''), 'sqlite'), 1, 64), substr(NEW.note, 1, 1000));
END;

CREATE VIEW mi_cancel (id, note, actor) AS SELECT NULL, NULL, NULL WHERE 0;

CREATE TRIGGER mi_cancel_tg INSTEAD OF INSERT ON mi_cancel
BEGIN
    SELECT CASE
        WHEN NEW.note IS NULL OR trim(NEW.note) = ''
            THEN RAISE(ABORT, 'mibridge: a note is required: what was checked and decided')
        WHEN NOT EXISTS (SELECT 1 FROM mi_outbox WHERE id = NEW.id)
            THEN RAISE(ABORT, 'mibridge: this outbox row does not exist')
        WHEN (SELECT state FROM mi_outbox WHERE id = NEW.id) = 'running'
            THEN RAISE(ABORT, 'mibridge: this outbox row is running (a worker has it); try again when it waits')
        WHEN (SELECT state FROM mi_outbox WHERE id = NEW.id) NOT IN ('pending', 'held')
            THEN RAISE(ABORT, 'mibridge: this outbox row is finished or in doubt; only a pending or held row can be cancelled')
        WHEN EXISTS (SELECT 1 FROM mi_journal WHERE outbox_id = NEW.id AND COALESCE(unsafe, 1) = 1)
            THEN RAISE(ABORT, 'mibridge: this outbox row made a call that may have moved money; it cannot be cancelled: let its flow finish or reverse it, or resolve it by hand once it is held')
    END;
    INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, error_code, error_message, result_json)
    SELECT id, kind, business_key, 'cancelled', 'failed', 'CANCELLED_BY_HAND', substr(NEW.note, 1, 1000),
           json_object('cancelled_by', substr(COALESCE(NULLIF(trim(NEW.actor), ''), 'sqlite'), 1, 64), 'note', NEW.note)
      FROM mi_outbox WHERE id = NEW.id;
    UPDATE mi_outbox SET state = 'failed', finished_at = strftime('%Y-%m-%d %H:%M:%f','now'),
           updated_at = strftime('%Y-%m-%d %H:%M:%f','now'), current_call = NULL, call_unsafe = 0,
           lease_owner = NULL, lease_expires_at = NULL,
           last_error_code = 'CANCELLED_BY_HAND', last_error_message = substr(NEW.note, 1, 1000)
     WHERE id = NEW.id AND state IN ('pending', 'held');
    DELETE FROM mi_secret WHERE outbox_id = NEW.id;
    INSERT INTO mi_audit (outbox_id, action, actor, note)
    VALUES (NEW.id, 'cancel', substr(COALESCE(NULLIF(trim(NEW.actor), ''), 'sqlite'), 1, 64), substr(NEW.note, 1, 1000));
END;

-- Why a pending row waits (waits_for): serial_key (behind waits_behind_id, the
-- oldest unfinished request with the same serial key), query (a call in doubt),
-- his, patient, backoff, scheduled, worker; see sql/postgresql/install.sql.
-- last_error_* only while they belong to the current step's tries.
DROP VIEW mi_v_pending;
CREATE VIEW mi_v_pending AS
SELECT p.id, p.kind, p.business_key, p.serial_key, p.state, p.step, p.attempts, p.next_attempt_at, p.created_at,
       CAST((julianday('now') - julianday(p.created_at)) * 86400 AS INTEGER) AS age_seconds,
       CASE WHEN p.attempts > 0 THEN p.last_error_code END AS last_error_code,
       CASE WHEN p.attempts > 0 THEN p.last_error_message END AS last_error_message,
       CASE WHEN p.waits_behind_id IS NOT NULL THEN 'serial_key'
            WHEN p.state = 'in_doubt' THEN 'query'
            WHEN substr(p.step, 1, 9) = 'await_his' THEN 'his'
            WHEN p.step = 'await_payment' OR substr(p.step, 1, 13) = 'await_patient' THEN 'patient'
            WHEN p.next_attempt_at > strftime('%Y-%m-%d %H:%M:%f','now') AND p.attempts > 0 THEN 'backoff'
            WHEN p.next_attempt_at > strftime('%Y-%m-%d %H:%M:%f','now') THEN 'scheduled'
            ELSE 'worker' END AS waits_for,
       p.waits_behind_id
  FROM (SELECT o.id, o.kind, o.business_key, o.serial_key, o.state, o.step, o.attempts, o.next_attempt_at,
               o.created_at, o.last_error_code, o.last_error_message,
               (SELECT MIN(x.id) FROM mi_outbox x
                 WHERE x.serial_key = o.serial_key AND x.id < o.id
                   AND x.state NOT IN ('done', 'failed', 'resolved')) AS waits_behind_id
          FROM mi_outbox o WHERE o.state IN ('pending', 'in_doubt')) p;

DROP VIEW mi_v_in_flight;
CREATE VIEW mi_v_in_flight AS
SELECT id, kind, business_key, step, lease_owner, lease_expires_at, current_call, attempts, updated_at,
       CAST((julianday('now') - julianday(created_at)) * 86400 AS INTEGER) AS age_seconds
  FROM mi_outbox WHERE state = 'running';

DROP VIEW mi_v_held;
CREATE VIEW mi_v_held AS
SELECT id, kind, business_key, serial_key, step, attempts, last_error_code AS reason_code,
       last_error_message AS reason, updated_at,
       CAST((julianday('now') - julianday(created_at)) * 86400 AS INTEGER) AS age_seconds, current_call
  FROM mi_outbox WHERE state = 'held';

DROP VIEW mi_v_failed;
CREATE VIEW mi_v_failed AS
SELECT id, kind, business_key, step, finished_at, last_error_code, last_error_message,
       CAST((julianday('now') - julianday(created_at)) * 86400 AS INTEGER) AS age_seconds
  FROM mi_outbox WHERE state = 'failed';

DROP VIEW mi_v_today;
CREATE VIEW mi_v_today AS
SELECT o.kind, o.state, COUNT(*) AS requests, SUM(CAST(i.total_amount AS NUMERIC)) AS total_amount
  FROM mi_outbox o
  LEFT JOIN mi_inbox i ON i.outbox_id = o.id AND i.id = (SELECT MAX(x.id) FROM mi_inbox x WHERE x.outbox_id = o.id)
 WHERE o.created_at >= strftime('%Y-%m-%d 00:00:00', 'now')
 GROUP BY o.kind, o.state
 ORDER BY o.kind, o.state;

INSERT INTO mi_schema_version (version, name) VALUES (5, '005_admin');
COMMIT;
