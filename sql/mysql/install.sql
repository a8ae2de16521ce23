-- mibridge: install into a MariaDB (10.7+: SKIP LOCKED, JSON_EQUALS) HIS database.
-- Run by hand:   mysql --database=hisdb < sql/mysql/install.sql
-- or:            mibridge db install --url mysql://dba@host/hisdb
-- This file is the schema at its latest version: the same as
-- migrations/001_baseline.sql followed by every later migration (the tests
-- compare the two). An installed database is upgraded with
-- `mibridge db upgrade`, never reinstalled: see docs/migrations.md.
-- Creates only objects whose names start with mi_; sql/mysql/uninstall.sql
-- removes them. The states are explained in sql/postgresql/install.sql and docs/.
-- Timestamps are DATETIME(6) holding UTC (UTC_TIMESTAMP), whatever a session's
-- time_zone: an HIS session in +08:00 and the daemon in SYSTEM must agree on
-- when a row is due. Every time the daemon compares (leases, retries) is
-- computed by the server, never by the daemon. mi_v_today converts "today"
-- to UTC using the session's offset.
-- Text compares byte for byte (utf8mb4_nopad_bin): 'INV-1' and 'inv-1', or
-- 'k' and 'k ', are different keys, whatever the server's default collation.

-- Stored programs keep the sql_mode they were created with: strict, so that
-- nothing inside them is ever cut or converted silently; backslash escapes on.
SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION';

-- Which migrations this database has (docs/migrations.md).
CREATE TABLE mi_schema_version (
    version          INT           NOT NULL PRIMARY KEY,
    name             VARCHAR(100)  NOT NULL,
    applied_at       DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;

CREATE TABLE mi_outbox (
    id               BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- Wider than the keys may be (40/64): see the trigger below.
    kind             VARCHAR(80)   NOT NULL,
    business_key     VARCHAR(128)  NOT NULL,
    serial_key       VARCHAR(128)  NOT NULL,
    payload          LONGTEXT      NOT NULL,
    state            VARCHAR(16)   NOT NULL DEFAULT 'pending',
    step             VARCHAR(40),
    flow_data        LONGTEXT,
    current_call     VARCHAR(64),
    call_unsafe      SMALLINT      NOT NULL DEFAULT 0,
    attempts         INT           NOT NULL DEFAULT 0,
    max_attempts     INT           NOT NULL DEFAULT 10,
    next_attempt_at  DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    lease_owner      VARCHAR(64),
    lease_expires_at DATETIME(6),
    created_at       DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    updated_at       DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    finished_at      DATETIME(6),
    last_error_code  VARCHAR(40),
    last_error_message VARCHAR(1000),
    -- MariaDB has no partial indexes. These two virtual columns are NULL for
    -- rows the claim must not look at, and their indexes hold only the rest:
    -- the claim reads due rows already in order (no sort of the whole backlog)
    -- and checks a serial key against open rows only, however many finished
    -- rows the table holds. The HIS never writes them.
    ready_at         DATETIME(6)   AS (CASE WHEN state IN ('pending', 'in_doubt') THEN next_attempt_at END) VIRTUAL,
    open_serial_key  VARCHAR(128)  AS (CASE WHEN state IN ('pending', 'running', 'in_doubt', 'held') THEN serial_key END) VIRTUAL,
    CONSTRAINT mi_outbox_kind_key UNIQUE (kind, business_key),
    CONSTRAINT mi_outbox_state_ck CHECK (state IN ('pending','running','in_doubt','held','done','failed','resolved'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;
CREATE INDEX mi_outbox_ready_ix ON mi_outbox (ready_at, id);
CREATE INDEX mi_outbox_serial_ix ON mi_outbox (open_serial_key, id);
-- Requests of one kind and serial key in any state (a refund counts its payment's
-- other refunds): the open-row index cannot serve a query that names final states.
CREATE INDEX mi_outbox_serial_kind_ix ON mi_outbox (serial_key, kind);
CREATE INDEX mi_outbox_lease_ix ON mi_outbox (state, lease_expires_at);
CREATE INDEX mi_outbox_finished_ix ON mi_outbox (finished_at);

CREATE TABLE mi_inbox (
    id               BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    outbox_id        BIGINT        NOT NULL,
    kind             VARCHAR(40)   NOT NULL,
    business_key     VARCHAR(64)   NOT NULL,
    result_type      VARCHAR(40)   NOT NULL,
    outcome          VARCHAR(16)   NOT NULL,
    error_code       VARCHAR(40),
    error_message    VARCHAR(1000),
    order_id         VARCHAR(64),
    settlement_id    VARCHAR(64),
    total_amount     DECIMAL(16,2),
    fund_amount      DECIMAL(16,2),
    account_amount   DECIMAL(16,2),
    cash_amount      DECIMAL(16,2),
    result_json      LONGTEXT,
    created_at       DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    consumed_at      DATETIME(6),
    his_ack          VARCHAR(16),
    CONSTRAINT mi_inbox_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id),
    CONSTRAINT mi_inbox_outcome_ck CHECK (outcome IN ('ok','failed','held','resolved')),
    CONSTRAINT mi_inbox_ack_ck CHECK (his_ack IS NULL OR his_ack IN ('accepted','rejected'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;
CREATE INDEX mi_inbox_unconsumed_ix ON mi_inbox (consumed_at, id);
-- The HIS polls its results by business key; refunds sum their payment's rows by order_id.
CREATE INDEX mi_inbox_business_ix ON mi_inbox (business_key, kind);
CREATE INDEX mi_inbox_order_ix ON mi_inbox (order_id);

CREATE TABLE mi_journal (
    id               BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    msg_id           VARCHAR(64)   NOT NULL,
    outbox_id        BIGINT        NOT NULL,
    step             VARCHAR(40)   NOT NULL,
    interface        VARCHAR(40)   NOT NULL,
    request_masked   LONGTEXT,
    response_masked  LONGTEXT,
    http_status      INT,
    started_at       DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    ended_at         DATETIME(6),
    outcome          VARCHAR(16),
    error_message    VARCHAR(1000),
    -- 1: not safe to repeat (may have moved money); NULL: journalled before migration 005
    unsafe           SMALLINT,
    CONSTRAINT mi_journal_msg_uq UNIQUE (msg_id),
    CONSTRAINT mi_journal_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id),
    CONSTRAINT mi_journal_outcome_ck CHECK (outcome IS NULL OR outcome IN ('ok','rejected','unknown'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;
CREATE INDEX mi_journal_started_ix ON mi_journal (started_at);

CREATE TABLE mi_identity (
    his_patient_id   VARCHAR(64)   NOT NULL PRIMARY KEY,
    psn_no           VARCHAR(40)   NOT NULL,
    insuplc_admdvs   VARCHAR(12),
    insutype         VARCHAR(12),
    benefit          VARCHAR(40),
    psn_cert_type    VARCHAR(8),
    source_outbox_id BIGINT,
    updated_at       DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    -- migration 007: the identity written back to the HIS (docs/identity.md)
    psn_type         VARCHAR(12),
    med_type         VARCHAR(8),
    benefit_status   VARCHAR(16),
    certno_masked    VARCHAR(40),
    psn_name_masked  VARCHAR(100),
    gend             VARCHAR(4),
    chosen           SMALLINT,
    source_kind      VARCHAR(40)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;

CREATE TABLE mi_audit (
    id               BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    outbox_id        BIGINT        NOT NULL,
    action           VARCHAR(40)   NOT NULL,
    actor            VARCHAR(64)   NOT NULL,
    note             VARCHAR(1000),
    at               DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    -- the database login that ran the action (actor: who asked, e.g. alice@console)
    db_login         VARCHAR(64),
    CONSTRAINT mi_audit_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;

-- Notices the platforms push to us (the mobile-pay centre's 6302 settlement notice),
-- recorded once each after their signature verified, by the daemon's notice endpoint.
-- A repeated notice only bumps received_count. Flows read it; nobody else writes it.
-- outbox_id has no foreign key: a notice can name a row that was purged or never existed.
CREATE TABLE mi_notice (
    id               BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    interface        VARCHAR(16)   NOT NULL,
    notice_key       VARCHAR(64)   NOT NULL,
    business_key     VARCHAR(64),
    outbox_id        BIGINT,
    notice_json      LONGTEXT      NOT NULL,
    received_count   INT           NOT NULL DEFAULT 1,
    first_received_at DATETIME(6)  NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    last_received_at DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    CONSTRAINT mi_notice_key UNIQUE (interface, notice_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;
CREATE INDEX mi_notice_business_ix ON mi_notice (business_key);

-- Validation that holds however a row arrives (mi_enqueue or a plain INSERT
-- from an HIS trigger): bad input is refused to the HIS, nothing is inserted.
-- The key columns are wider than the keys may be (80/128 for 40/64), so that
-- a session without strict mode cannot cut a long key down to a valid one:
-- the length is checked here, on what the HIS sent.
DELIMITER //
CREATE TRIGGER mi_outbox_validate_tg BEFORE INSERT ON mi_outbox FOR EACH ROW
BEGIN
    DECLARE amount LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    IF NEW.kind IS NULL OR TRIM(NEW.kind) = '' THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: kind is required';
    END IF;
    IF NEW.business_key IS NULL OR TRIM(NEW.business_key) = '' THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: business_key is required';
    END IF;
    IF NEW.serial_key IS NULL OR TRIM(NEW.serial_key) = '' THEN
        SET NEW.serial_key = NEW.business_key;
    END IF;
    -- Keys compare byte for byte (utf8mb4_nopad_bin). A blank at either end is
    -- refused rather than kept, as on every database (SQL Server's '=' ignores
    -- trailing blanks).
    IF ORD(NEW.kind) IN (9, 10, 13, 32) OR ORD(RIGHT(NEW.kind, 1)) IN (9, 10, 13, 32) THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: kind must not start or end with a blank';
    END IF;
    IF ORD(NEW.business_key) IN (9, 10, 13, 32) OR ORD(RIGHT(NEW.business_key, 1)) IN (9, 10, 13, 32) THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: business_key must not start or end with a blank';
    END IF;
    IF ORD(NEW.serial_key) IN (9, 10, 13, 32) OR ORD(RIGHT(NEW.serial_key, 1)) IN (9, 10, 13, 32) THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: serial_key must not start or end with a blank';
    END IF;
    IF CHAR_LENGTH(NEW.kind) > 40 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: kind is longer than 40 characters';
    END IF;
    IF CHAR_LENGTH(NEW.business_key) > 64 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: business_key is longer than 64 characters';
    END IF;
    IF CHAR_LENGTH(NEW.serial_key) > 64 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: serial_key is longer than 64 characters';
    END IF;
    -- JSON_VALID also refuses a lone UTF-16 surrogate escape and NaN.
    IF NEW.payload IS NULL OR JSON_VALID(NEW.payload) = 0 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: payload is not valid JSON';
    END IF;
    IF JSON_TYPE(NEW.payload) <> 'OBJECT' THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: payload must be a JSON object';
    END IF;
    -- A key twice in one object (MariaDB would read the first, the daemon the
    -- last): every object of the document, the document itself included, has
    -- as many members as distinct keys (escapes decoded).
    IF EXISTS (SELECT 1
                 FROM JSON_TABLE(JSON_ARRAY_APPEND(COALESCE(JSON_EXTRACT(NEW.payload, '$**.*', '$**[*]'), '[]'),
                                                   '$', JSON_EXTRACT(NEW.payload, '$')),
                                 '$[*]' COLUMNS (v JSON PATH '$')) o
                WHERE JSON_TYPE(o.v) = 'OBJECT'
                  AND JSON_LENGTH(o.v) <> (SELECT COUNT(DISTINCT k.k)
                                             FROM JSON_TABLE(JSON_KEYS(o.v), '$[*]' COLUMNS (
                                                  k TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin PATH '$')) k)) THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: payload has a key twice in one object';
    END IF;
    -- The amount as written: a string, or a number in plain digits (JSON_EXTRACT
    -- keeps a number's text, so 1e3 and -0 are refused). \z: the very end (a
    -- $ would also match before a final newline).
    SET amount = JSON_EXTRACT(NEW.payload, '$.total_amount');
    IF amount IS NOT NULL AND JSON_TYPE(amount) <> 'NULL' THEN
        IF JSON_TYPE(amount) = 'STRING' THEN
            SET amount = JSON_UNQUOTE(amount);
        ELSEIF JSON_TYPE(amount) NOT IN ('INTEGER', 'DOUBLE', 'DECIMAL') THEN
            SET amount = 'x';
        END IF;
        IF amount NOT REGEXP '^[0-9]+(\\.[0-9]{1,2})?\\z' THEN
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: total_amount must be a non-negative amount with at most 2 decimals';
        END IF;
    END IF;
END //

-- The one call the HIS makes per request:
--   CALL mi_enqueue('test.charge', 'INV-1', 'VISIT-1', '{"total_amount":"12.50"}', @id); SELECT @id;
-- The same (kind, business_key) with the same payload returns the existing id
-- (the order of the payload's fields does not matter); with a different
-- payload it is an error. The parameters are utf8mb4 whatever the database's
-- default character set, and long enough that nothing is cut before it is checked.
CREATE PROCEDURE mi_enqueue(
    IN p_kind         TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin,
    IN p_business_key TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin,
    IN p_serial_key   TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin,
    IN p_payload      LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin,
    OUT p_id          BIGINT)
BEGIN
    DECLARE old_payload LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    DECLARE duplicate INT DEFAULT 0;
    -- Insert first: of two identical calls racing, one inserts and the other
    -- lands here on the unique key (1062) and returns the same id. The BEFORE
    -- INSERT trigger has checked the payload either way.
    DECLARE CONTINUE HANDLER FOR 1062 SET duplicate = 1;
    SET p_id = NULL;
    IF CHAR_LENGTH(p_kind) > 40 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: kind is longer than 40 characters';
    END IF;
    IF CHAR_LENGTH(p_business_key) > 64 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: business_key is longer than 64 characters';
    END IF;
    IF CHAR_LENGTH(p_serial_key) > 64 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: serial_key is longer than 64 characters';
    END IF;
    INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
    VALUES (p_kind, p_business_key, COALESCE(p_serial_key, p_business_key), p_payload);
    IF duplicate = 0 THEN
        SET p_id = LAST_INSERT_ID();
    END IF;
    SELECT id, payload INTO p_id, old_payload FROM mi_outbox
     WHERE kind = p_kind AND business_key = p_business_key;
    IF duplicate = 1 AND NOT (JSON_VALID(p_payload) AND JSON_EQUALS(old_payload, p_payload)) THEN
        SIGNAL SQLSTATE '45000'
            SET MESSAGE_TEXT = 'mibridge: this request (kind, business_key) already exists with a different payload';
    END IF;
END //

-- The HIS marks an inbox row as taken ('accepted') or refused ('rejected'):
--   CALL mi_inbox_consume(42, 'accepted');
-- Any other verdict, NULL included, is refused: nothing counts as accepted by default.
CREATE PROCEDURE mi_inbox_consume(
    IN p_id  BIGINT,
    IN p_ack TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin)
BEGIN
    IF p_ack IS NULL OR p_ack NOT IN ('accepted', 'rejected') THEN
        SIGNAL SQLSTATE '45000'
            SET MESSAGE_TEXT = 'mibridge: the verdict must be ''accepted'' or ''rejected''';
    END IF;
    UPDATE mi_inbox SET consumed_at = UTC_TIMESTAMP(6), his_ack = p_ack
     WHERE id = p_id AND consumed_at IS NULL;
    IF ROW_COUNT() = 0 THEN
        IF EXISTS (SELECT 1 FROM mi_inbox WHERE id = p_id) THEN
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: inbox row was already consumed';
        END IF;
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: inbox row does not exist';
    END IF;
END //
DELIMITER ;

-- Admin procedures (migration 005): who asked may be put in @mibridge_actor first
-- (read and cleared by the procedure; default: the login).
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


-- Views for DBAs --------------------------------------------------------
-- Why a pending row waits (waits_for): serial_key (behind waits_behind_id, the
-- oldest unfinished request with the same serial key), query (a call in doubt),
-- his, patient, backoff, scheduled, worker; see sql/postgresql/install.sql.
-- last_error_* only while they belong to the current step's tries.
CREATE VIEW mi_v_pending AS
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

CREATE VIEW mi_v_in_flight AS
SELECT id, kind, business_key, step, lease_owner, lease_expires_at, current_call, attempts, updated_at,
       TIMESTAMPDIFF(SECOND, created_at, UTC_TIMESTAMP(6)) AS age_seconds
  FROM mi_outbox WHERE state = 'running';

CREATE VIEW mi_v_held AS
SELECT id, kind, business_key, serial_key, step, attempts, last_error_code AS reason_code,
       last_error_message AS reason, updated_at,
       TIMESTAMPDIFF(SECOND, created_at, UTC_TIMESTAMP(6)) AS age_seconds, current_call
  FROM mi_outbox WHERE state = 'held';

CREATE VIEW mi_v_failed AS
SELECT id, kind, business_key, step, finished_at, last_error_code, last_error_message,
       TIMESTAMPDIFF(SECOND, created_at, UTC_TIMESTAMP(6)) AS age_seconds
  FROM mi_outbox WHERE state = 'failed';

CREATE VIEW mi_v_today AS
SELECT o.kind, o.state, COUNT(*) AS requests, SUM(i.total_amount) AS total_amount
  FROM mi_outbox o
  LEFT JOIN mi_inbox i ON i.outbox_id = o.id AND i.id = (SELECT MAX(x.id) FROM mi_inbox x WHERE x.outbox_id = o.id)
 WHERE o.created_at >= CURRENT_DATE - INTERVAL TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW()) SECOND
 GROUP BY o.kind, o.state
 ORDER BY o.kind, o.state;

-- Migration 003: mi_secret, the daemon's own store of tokens and ID numbers.
-- A flow's secrets (the mobile-pay payToken, a face-identified patient's ID number,
-- name, ecToken and authNo) live here instead of in mi_outbox.flow_data, which the HIS
-- and DBAs read. Only the daemon reads or writes it (grants.sql gives the HIS nothing
-- on it). A row's secrets go when the request is final, except what a later request
-- needs (a payment's payToken for its refunds and for a late notice's check), and with
-- the row when it is purged.
CREATE TABLE mi_secret (
    outbox_id        BIGINT        NOT NULL,
    name             VARCHAR(64)   NOT NULL,
    value            VARCHAR(2000) NOT NULL,
    created_at       DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    CONSTRAINT mi_secret_pk PRIMARY KEY (outbox_id, name),
    CONSTRAINT mi_secret_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;

-- Migration 004: the order book and daily reconciliation (docs/reconciliation.md).
-- mi_order: one row per payment, kept by the daemon from the inbox rows it writes, in the
-- same transaction (bridge/db/orderbook.py); mi_order_refund: its refunds, reversals and
-- cancellations. Purge never deletes either. mi_recon_run / mi_recon_item / mi_channel_bill:
-- the daily reconciliation; views show the latest completed run of each day and platform.
-- Days are yyyy-MM-dd in China time (UTC+8), the day the platforms' statements use.
CREATE TABLE mi_order (
    id               BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    platform         VARCHAR(16)   NOT NULL,
    channel          VARCHAR(16)   NOT NULL,
    kind             VARCHAR(40)   NOT NULL,
    business_key     VARCHAR(64)   NOT NULL,
    outbox_id        BIGINT        NOT NULL,
    inbox_id         BIGINT,
    platform_order_id VARCHAR(64)  NOT NULL,
    settlement_id    VARCHAR(64),
    mix_trade_no     VARCHAR(64),
    out_trade_no     VARCHAR(64),
    trade_no         VARCHAR(64),
    psn_no           VARCHAR(40),
    mdtrt_id         VARCHAR(64),
    insutype         VARCHAR(12),
    clr_type         VARCHAR(12),
    setl_optins      VARCHAR(12),
    ref_no           VARCHAR(64),
    term_seq_no      VARCHAR(64),
    status           VARCHAR(16)   NOT NULL DEFAULT 'paid',
    total_amount     DECIMAL(16,2) NOT NULL,
    fund_amount      DECIMAL(16,2) NOT NULL,
    account_amount   DECIMAL(16,2) NOT NULL,
    cash_amount      DECIMAL(16,2) NOT NULL,
    refunded_total   DECIMAL(16,2) NOT NULL DEFAULT 0,
    refunded_fund    DECIMAL(16,2) NOT NULL DEFAULT 0,
    refunded_account DECIMAL(16,2) NOT NULL DEFAULT 0,
    refunded_cash    DECIMAL(16,2) NOT NULL DEFAULT 0,
    refund_count     INT           NOT NULL DEFAULT 0,
    settle_day       VARCHAR(10)   NOT NULL,
    settled_at       DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    last_refund_at   DATETIME(6),
    updated_at       DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    CONSTRAINT mi_order_key UNIQUE (platform_order_id, platform),
    CONSTRAINT mi_order_status_ck CHECK (status IN ('paid','partly_refunded','refunded','reversed','cancelled'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;
CREATE INDEX mi_order_day_ix ON mi_order (settle_day, platform, id);
CREATE INDEX mi_order_business_ix ON mi_order (business_key);
CREATE INDEX mi_order_trade_ix ON mi_order (out_trade_no);

CREATE TABLE mi_order_refund (
    id               BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_ref        BIGINT,
    platform         VARCHAR(16)   NOT NULL,
    platform_order_id VARCHAR(64)  NOT NULL,
    refund_type      VARCHAR(16)   NOT NULL,
    kind             VARCHAR(40)   NOT NULL,
    business_key     VARCHAR(64)   NOT NULL,
    outbox_id        BIGINT        NOT NULL,
    inbox_id         BIGINT,
    refund_ref       VARCHAR(64),
    out_refund_no    VARCHAR(64),
    state            VARCHAR(16)   NOT NULL DEFAULT 'booked',
    total_amount     DECIMAL(16,2) NOT NULL,
    fund_amount      DECIMAL(16,2) NOT NULL,
    account_amount   DECIMAL(16,2) NOT NULL,
    cash_amount      DECIMAL(16,2) NOT NULL,
    refund_day       VARCHAR(10)   NOT NULL,
    refunded_at      DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    CONSTRAINT mi_order_refund_key UNIQUE (outbox_id, refund_type, platform_order_id),
    CONSTRAINT mi_order_refund_type_ck CHECK (refund_type IN ('refund','reversal','cancellation')),
    CONSTRAINT mi_order_refund_state_ck CHECK (state IN ('booked','unmatched'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;
CREATE INDEX mi_order_refund_order_ix ON mi_order_refund (order_ref);
CREATE INDEX mi_order_refund_day_ix ON mi_order_refund (refund_day, platform, id);
CREATE INDEX mi_order_refund_platform_ix ON mi_order_refund (platform_order_id);

-- One row per reconciliation run. active_key is "<day>:<platform>" while the run is running
-- and "run:<id>" after: the unique key lets one run per day and platform run at a time.
CREATE TABLE mi_recon_run (
    id               BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    recon_day        VARCHAR(10)   NOT NULL,
    platform         VARCHAR(16)   NOT NULL,
    state            VARCHAR(16)   NOT NULL DEFAULT 'running',
    active_key       VARCHAR(40)   NOT NULL,
    owner            VARCHAR(80)   NOT NULL,
    step             VARCHAR(40),
    progress_done    INT           NOT NULL DEFAULT 0,
    progress_total   INTEGER,
    balanced         SMALLINT,
    items_total      INT           NOT NULL DEFAULT 0,
    items_differ     INT           NOT NULL DEFAULT 0,
    digest           VARCHAR(64),
    report_outbox_id BIGINT,
    detail_json      LONGTEXT,
    error_message    VARCHAR(1000),
    started_at       DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    heartbeat_at     DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    finished_at      DATETIME(6),
    CONSTRAINT mi_recon_run_active UNIQUE (active_key),
    CONSTRAINT mi_recon_run_state_ck CHECK (state IN ('running','done','failed','abandoned'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;
CREATE INDEX mi_recon_run_day_ix ON mi_recon_run (recon_day, platform, state);

-- One row per order (setl_id, payOrdId, or a channel's out_trade_no) and leg of a run.
CREATE TABLE mi_recon_item (
    id               BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    run_id           BIGINT        NOT NULL,
    order_key        VARCHAR(64)   NOT NULL,
    leg              VARCHAR(16)   NOT NULL,
    diff_class       VARCHAR(16)   NOT NULL,
    order_ref        BIGINT,
    business_key     VARCHAR(64),
    channel          VARCHAR(16),
    channel_ref      VARCHAR(64),
    hospital_amount  DECIMAL(16,2),
    platform_amount  DECIMAL(16,2),
    channel_amount   DECIMAL(16,2),
    hospital_state   VARCHAR(40),
    platform_state   VARCHAR(40),
    source           VARCHAR(16)   NOT NULL,
    note             VARCHAR(1000),
    CONSTRAINT mi_recon_item_key UNIQUE (run_id, order_key, leg),
    CONSTRAINT mi_recon_item_run_fk FOREIGN KEY (run_id) REFERENCES mi_recon_run (id),
    CONSTRAINT mi_recon_item_class_ck CHECK (diff_class IN ('balanced','hospital_only','platform_only',
                                                            'channel_only','amount_differs','unchecked'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;
CREATE INDEX mi_recon_item_ref_ix ON mi_recon_item (run_id, channel_ref);

-- The WeChat / Alipay bill rows a run loaded (+ payments, - refunds, yuan).
CREATE TABLE mi_channel_bill (
    id               BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    run_id           BIGINT        NOT NULL,
    channel          VARCHAR(16)   NOT NULL,
    bill_day         VARCHAR(10)   NOT NULL,
    line_no          INT           NOT NULL,
    row_type         VARCHAR(16)   NOT NULL,
    out_trade_no     VARCHAR(64)   NOT NULL,
    trade_no         VARCHAR(64),
    out_refund_no    VARCHAR(64),
    refund_id        VARCHAR(64),
    amount           DECIMAL(16,2) NOT NULL,
    trade_state      VARCHAR(32),
    trade_time       VARCHAR(19),
    CONSTRAINT mi_channel_bill_line UNIQUE (run_id, channel, line_no),
    CONSTRAINT mi_channel_bill_run_fk FOREIGN KEY (run_id) REFERENCES mi_recon_run (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;
CREATE INDEX mi_channel_bill_trade_ix ON mi_channel_bill (run_id, out_trade_no);

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
  FROM mi_order o;

CREATE VIEW mi_v_order_refunds AS
SELECT r.id AS refund_id, r.order_ref AS order_id, o.business_key AS payment_key, r.platform,
       r.platform_order_id, r.refund_type, r.kind, r.business_key, r.refund_ref, r.out_refund_no, r.state,
       r.total_amount, r.fund_amount, r.account_amount, r.cash_amount, r.refund_day, r.refunded_at, r.outbox_id
  FROM mi_order_refund r LEFT JOIN mi_order o ON o.id = r.order_ref;

-- The latest completed run of each day and platform, one row per order and leg.
CREATE VIEW mi_v_reconciliation AS
SELECT r.recon_day, r.platform, r.id AS run_id, i.order_key, i.business_key, i.channel, i.channel_ref, i.leg,
       i.diff_class, i.hospital_amount, i.platform_amount, i.channel_amount, i.hospital_state,
       i.platform_state, i.source, i.note, i.order_ref AS order_id
  FROM mi_recon_item i JOIN mi_recon_run r ON r.id = i.run_id
 WHERE r.state = 'done'
   AND r.id = (SELECT MAX(x.id) FROM mi_recon_run x
                WHERE x.recon_day = r.recon_day AND x.platform = r.platform AND x.state = 'done');

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
 WHERE v.diff_class <> 'balanced';

-- The daily check: the latest finished run of each day and platform.
CREATE VIEW mi_v_recon_days AS
SELECT r.recon_day, r.platform, r.id AS run_id, r.state, r.balanced, r.items_total, r.items_differ,
       r.started_at, r.finished_at, r.error_message
  FROM mi_recon_run r
 WHERE r.id = (SELECT MAX(x.id) FROM mi_recon_run x
                WHERE x.recon_day = r.recon_day AND x.platform = r.platform AND x.state IN ('done', 'failed'));

-- Migration 006: mi_insured_region, the insured regions (参保地) the hospital supports, and
-- the view the HIS and the mini-program backend read (enabled regions only). Filled by the
-- daemon from the config, from a CSV the DBA loads (mibridge regions load) and, where the site
-- turns it on, from the platform's 1901 dictionary; `source` names who set the row last, and a
-- refresh from the platform never changes a row a person set (docs/identity.md). on_* say on
-- which channel the region is offered; insutypes lists the insurance types accepted there,
-- comma-separated (NULL = every type).
CREATE TABLE mi_insured_region (
    admdvs           VARCHAR(6)    NOT NULL,
    name             VARCHAR(100)  NOT NULL,
    enabled          SMALLINT      NOT NULL DEFAULT 1,
    on_wechat        SMALLINT      NOT NULL DEFAULT 1,
    on_alipay        SMALLINT      NOT NULL DEFAULT 1,
    on_counter       SMALLINT      NOT NULL DEFAULT 1,
    on_kiosk         SMALLINT      NOT NULL DEFAULT 1,
    insutypes        VARCHAR(200),
    sort_order       INT,
    source           VARCHAR(16)   NOT NULL,
    updated_at       DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    CONSTRAINT mi_insured_region_pk PRIMARY KEY (admdvs),
    CONSTRAINT mi_insured_region_admdvs_ck CHECK (admdvs REGEXP '^[0-9]{6}$'),
    CONSTRAINT mi_insured_region_name_ck CHECK (CHAR_LENGTH(TRIM(name)) > 0),
    CONSTRAINT mi_insured_region_flags_ck CHECK (enabled IN (0, 1) AND on_wechat IN (0, 1) AND on_alipay IN (0, 1)
                                                 AND on_counter IN (0, 1) AND on_kiosk IN (0, 1)),
    CONSTRAINT mi_insured_region_source_ck CHECK (source IN ('config', 'csv', '1901', 'manual'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;

CREATE VIEW mi_v_insured_regions AS
SELECT admdvs, name, on_wechat, on_alipay, on_counter, on_kiosk, insutypes, sort_order, source, updated_at
  FROM mi_insured_region WHERE enabled = 1;

INSERT INTO mi_schema_version (version, name) VALUES (1, '001_baseline'), (2, '002_hardening'), (3, '003_secrets'),
       (4, '004_reconciliation'), (5, '005_admin'), (6, '006_insured_region'),
       (7, '007_identity');
