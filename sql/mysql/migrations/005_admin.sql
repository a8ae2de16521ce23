-- mibridge migration 005 (admin) for MariaDB: from schema version 4 to 5.
-- Run by hand: mysql --database=hisdb < sql/mysql/migrations/005_admin.sql
-- (MariaDB commits each DDL statement: this file can simply be run again.)
-- What changes (docs/operations.md, "Admin functions in SQL"):
--   * mi_requeue(id, note), mi_resolve(id, note), mi_cancel(id, note): what
--     `mibridge requeue|resolve|cancel` and the console do, for a DBA in SQL, with the
--     same rules (the daemon calls them too). MariaDB procedures have no default
--     arguments: who asked may be put in @mibridge_actor first (the procedure reads
--     and clears it; default: the login, SESSION_USER()). Each is audited in mi_audit:
--       CALL mi_requeue(42, 'gateway fixed');
--       SET @mibridge_actor = 'alice'; CALL mi_resolve(42, 'checked: never charged');
--   * mi_journal.unsafe: whether a journalled call was not safe to repeat; NULL for
--     calls journalled before, counted as unsafe;
--   * the DBA views: the same columns on every database; mi_v_pending says why a row
--     waits; mi_v_today is ordered;
--   * an index on mi_journal (started_at).
SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION';

ALTER TABLE mi_journal ADD COLUMN IF NOT EXISTS unsafe SMALLINT;
ALTER TABLE mi_audit ADD COLUMN IF NOT EXISTS db_login VARCHAR(64);
CREATE INDEX IF NOT EXISTS mi_journal_started_ix ON mi_journal (started_at);

DELIMITER //
-- A held row goes back to work: to in_doubt when it stopped inside a call that
-- was not safe to repeat (query first, never a blind resend), else to pending.
CREATE OR REPLACE PROCEDURE mi_requeue(
    IN p_id   BIGINT,
    IN p_note TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin)
BEGIN
    DECLARE v_state VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin DEFAULT NULL;
    DECLARE v_msg   TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    DECLARE v_actor VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin
        DEFAULT LEFT(COALESCE(NULLIF(TRIM(@mibridge_actor), ''), SESSION_USER()), 64);
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_state = NULL;
    SET @mibridge_actor = NULL;
    IF p_note IS NULL OR TRIM(p_note) = '' THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: a note is required: what was checked and decided';
    END IF;
    SELECT state INTO v_state FROM mi_outbox WHERE id = p_id FOR UPDATE;
    IF v_state IS NULL THEN
        SET v_msg = CONCAT('mibridge: outbox row ', COALESCE(p_id, 'NULL'), ' does not exist');
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    IF v_state <> 'held' THEN
        SET v_msg = CONCAT('mibridge: outbox row ', p_id, ' is ', v_state, '; only a held row can be requeued');
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    UPDATE mi_outbox
       SET state = CASE WHEN current_call IS NOT NULL AND call_unsafe = 1 THEN 'in_doubt' ELSE 'pending' END,
           attempts = 0, next_attempt_at = UTC_TIMESTAMP(6), updated_at = UTC_TIMESTAMP(6)
     WHERE id = p_id AND state = 'held';
    INSERT INTO mi_audit (outbox_id, action, actor, note, db_login)
    VALUES (p_id, 'requeue', v_actor, LEFT(p_note, 1000), LEFT(SESSION_USER(), 64));
END //

-- A person settled a held row by hand: it ends 'resolved', the HIS gets a
-- 'manual' inbox row with the note, its secrets go.
CREATE OR REPLACE PROCEDURE mi_resolve(
    IN p_id   BIGINT,
    IN p_note TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin)
BEGIN
    DECLARE v_state VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin DEFAULT NULL;
    DECLARE v_msg   TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    DECLARE v_actor VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin
        DEFAULT LEFT(COALESCE(NULLIF(TRIM(@mibridge_actor), ''), SESSION_USER()), 64);
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_state = NULL;
    SET @mibridge_actor = NULL;
    IF p_note IS NULL OR TRIM(p_note) = '' THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: a note is required: what was checked and decided';
    END IF;
    SELECT state INTO v_state FROM mi_outbox WHERE id = p_id FOR UPDATE;
    IF v_state IS NULL THEN
        SET v_msg = CONCAT('mibridge: outbox row ', COALESCE(p_id, 'NULL'), ' does not exist');
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    IF v_state <> 'held' THEN
        SET v_msg = CONCAT('mibridge: outbox row ', p_id, ' is ', v_state, '; only a held row can be resolved');
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, error_code, error_message, result_json)
    SELECT id, kind, business_key, 'manual', 'resolved', 'RESOLVED_BY_HAND', LEFT(p_note, 1000),
           JSON_OBJECT('note', p_note, 'resolved_by', v_actor)
      FROM mi_outbox WHERE id = p_id;
    UPDATE mi_outbox SET state = 'resolved', finished_at = UTC_TIMESTAMP(6), updated_at = UTC_TIMESTAMP(6),
           current_call = NULL, call_unsafe = 0
     WHERE id = p_id AND state = 'held';
    DELETE FROM mi_secret WHERE outbox_id = p_id;
    INSERT INTO mi_audit (outbox_id, action, actor, note, db_login)
    VALUES (p_id, 'resolve', v_actor, LEFT(p_note, 1000), LEFT(SESSION_USER(), 64));
END //

-- A request nobody wants any more, before it made any call that may have moved
-- money: a pending or held row with no journalled unsafe call ends 'failed', and
-- the HIS gets a 'cancelled' inbox row (CANCELLED_BY_HAND) with the note.
CREATE OR REPLACE PROCEDURE mi_cancel(
    IN p_id   BIGINT,
    IN p_note TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin)
BEGIN
    DECLARE v_state VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin DEFAULT NULL;
    DECLARE v_msg   TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    DECLARE v_calls TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin DEFAULT NULL;
    DECLARE v_actor VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin
        DEFAULT LEFT(COALESCE(NULLIF(TRIM(@mibridge_actor), ''), SESSION_USER()), 64);
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_state = NULL;
    SET @mibridge_actor = NULL;
    IF p_note IS NULL OR TRIM(p_note) = '' THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: a note is required: what was checked and decided';
    END IF;
    SELECT state INTO v_state FROM mi_outbox WHERE id = p_id FOR UPDATE;
    IF v_state IS NULL THEN
        SET v_msg = CONCAT('mibridge: outbox row ', COALESCE(p_id, 'NULL'), ' does not exist');
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    IF v_state = 'running' THEN
        SET v_msg = CONCAT('mibridge: outbox row ', p_id, ' is running (a worker has it); try again when it waits');
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    IF v_state NOT IN ('pending', 'held') THEN
        SET v_msg = CONCAT('mibridge: outbox row ', p_id, ' is ', v_state,
                           '; only a pending or held row can be cancelled');
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    SELECT GROUP_CONCAT(DISTINCT interface ORDER BY interface SEPARATOR ', ') INTO v_calls
      FROM mi_journal WHERE outbox_id = p_id AND COALESCE(unsafe, 1) = 1;
    IF v_calls IS NOT NULL THEN
        SET v_msg = CONCAT('mibridge: outbox row ', p_id, ' made a call that may have moved money (', v_calls,
                           '); it cannot be cancelled: let its flow finish or reverse it, or resolve it by hand once it is held');
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, error_code, error_message, result_json)
    SELECT id, kind, business_key, 'cancelled', 'failed', 'CANCELLED_BY_HAND', LEFT(p_note, 1000),
           JSON_OBJECT('cancelled_by', v_actor, 'note', p_note)
      FROM mi_outbox WHERE id = p_id;
    UPDATE mi_outbox SET state = 'failed', finished_at = UTC_TIMESTAMP(6), updated_at = UTC_TIMESTAMP(6),
           current_call = NULL, call_unsafe = 0, lease_owner = NULL, lease_expires_at = NULL,
           last_error_code = 'CANCELLED_BY_HAND', last_error_message = LEFT(p_note, 1000)
     WHERE id = p_id AND state IN ('pending', 'held');
    DELETE FROM mi_secret WHERE outbox_id = p_id;
    INSERT INTO mi_audit (outbox_id, action, actor, note, db_login)
    VALUES (p_id, 'cancel', v_actor, LEFT(p_note, 1000), LEFT(SESSION_USER(), 64));
END //
DELIMITER ;

-- Why a pending row waits (waits_for): serial_key (behind waits_behind_id, the
-- oldest unfinished request with the same serial key), query (a call in doubt),
-- his, patient, backoff, scheduled, worker; see sql/postgresql/install.sql.
-- last_error_* only while they belong to the current step's tries.
CREATE OR REPLACE VIEW mi_v_pending AS
SELECT p.id, p.kind, p.business_key, p.serial_key, p.state, p.step, p.attempts, p.next_attempt_at, p.created_at,
       TIMESTAMPDIFF(SECOND, p.created_at, UTC_TIMESTAMP(6)) AS age_seconds,
       CASE WHEN p.attempts > 0 THEN p.last_error_code END AS last_error_code,
       CASE WHEN p.attempts > 0 THEN p.last_error_message END AS last_error_message,
       CASE WHEN p.waits_behind_id IS NOT NULL THEN 'serial_key'
            WHEN p.state = 'in_doubt' THEN 'query'
            WHEN LEFT(p.step, 9) = 'await_his' THEN 'his'
            WHEN p.step = 'await_payment' OR LEFT(p.step, 13) = 'await_patient' THEN 'patient'
            WHEN p.next_attempt_at > UTC_TIMESTAMP(6) AND p.attempts > 0 THEN 'backoff'
            WHEN p.next_attempt_at > UTC_TIMESTAMP(6) THEN 'scheduled'
            ELSE 'worker' END AS waits_for,
       p.waits_behind_id
  FROM (SELECT o.id, o.kind, o.business_key, o.serial_key, o.state, o.step, o.attempts, o.next_attempt_at,
               o.created_at, o.last_error_code, o.last_error_message,
               (SELECT MIN(x.id) FROM mi_outbox x
                 WHERE x.serial_key = o.serial_key AND x.id < o.id
                   AND x.state NOT IN ('done', 'failed', 'resolved')) AS waits_behind_id
          FROM mi_outbox o WHERE o.state IN ('pending', 'in_doubt')) p;

CREATE OR REPLACE VIEW mi_v_in_flight AS
SELECT id, kind, business_key, step, lease_owner, lease_expires_at, current_call, attempts, updated_at,
       TIMESTAMPDIFF(SECOND, created_at, UTC_TIMESTAMP(6)) AS age_seconds
  FROM mi_outbox WHERE state = 'running';

CREATE OR REPLACE VIEW mi_v_held AS
SELECT id, kind, business_key, serial_key, step, attempts, last_error_code AS reason_code,
       last_error_message AS reason, updated_at,
       TIMESTAMPDIFF(SECOND, created_at, UTC_TIMESTAMP(6)) AS age_seconds, current_call
  FROM mi_outbox WHERE state = 'held';

CREATE OR REPLACE VIEW mi_v_failed AS
SELECT id, kind, business_key, step, finished_at, last_error_code, last_error_message,
       TIMESTAMPDIFF(SECOND, created_at, UTC_TIMESTAMP(6)) AS age_seconds
  FROM mi_outbox WHERE state = 'failed';

CREATE OR REPLACE VIEW mi_v_today AS
SELECT o.kind, o.state, COUNT(*) AS requests, SUM(i.total_amount) AS total_amount
  FROM mi_outbox o
  LEFT JOIN mi_inbox i ON i.outbox_id = o.id AND i.id = (SELECT MAX(x.id) FROM mi_inbox x WHERE x.outbox_id = o.id)
 WHERE o.created_at >= CURRENT_DATE - INTERVAL TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW()) SECOND
 GROUP BY o.kind, o.state
 ORDER BY o.kind, o.state;

INSERT IGNORE INTO mi_schema_version (version, name) VALUES (5, '005_admin');
