-- mibridge: install into a MariaDB (10.7+: SKIP LOCKED, JSON_EQUALS) HIS database.
-- Run by hand:   mysql --database=hisdb < sql/mysql/install.sql
-- or:            mibridge db install --url mysql://dba@host/hisdb
-- Creates only objects whose names start with mi_; sql/mysql/uninstall.sql
-- removes them. The states are explained in sql/postgresql/install.sql and docs/.
-- Timestamps are DATETIME(6) holding UTC (UTC_TIMESTAMP), whatever a session's
-- time_zone: an HIS session in +08:00 and the daemon in SYSTEM must agree on
-- when a row is due. Every time the daemon compares (leases, retries) is
-- computed by the server, never by the daemon. mi_v_today converts "today"
-- to UTC using the session's offset.

CREATE TABLE mi_outbox (
    id               BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    kind             VARCHAR(40)   NOT NULL,
    business_key     VARCHAR(64)   NOT NULL,
    serial_key       VARCHAR(64)   NOT NULL,
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
    open_serial_key  VARCHAR(64)   AS (CASE WHEN state IN ('pending', 'running', 'in_doubt', 'held') THEN serial_key END) VIRTUAL,
    CONSTRAINT mi_outbox_kind_key UNIQUE (kind, business_key),
    CONSTRAINT mi_outbox_state_ck CHECK (state IN ('pending','running','in_doubt','held','done','failed','resolved'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX mi_outbox_ready_ix ON mi_outbox (ready_at, id);
CREATE INDEX mi_outbox_serial_ix ON mi_outbox (open_serial_key, id);
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
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX mi_inbox_unconsumed_ix ON mi_inbox (consumed_at, id);

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
    CONSTRAINT mi_journal_msg_uq UNIQUE (msg_id),
    CONSTRAINT mi_journal_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id),
    CONSTRAINT mi_journal_outcome_ck CHECK (outcome IS NULL OR outcome IN ('ok','rejected','unknown'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE mi_identity (
    his_patient_id   VARCHAR(64)   NOT NULL PRIMARY KEY,
    psn_no           VARCHAR(40)   NOT NULL,
    insuplc_admdvs   VARCHAR(12),
    insutype         VARCHAR(12),
    benefit          VARCHAR(40),
    psn_cert_type    VARCHAR(8),
    source_outbox_id BIGINT,
    updated_at       DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE mi_audit (
    id               BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    outbox_id        BIGINT        NOT NULL,
    action           VARCHAR(40)   NOT NULL,
    actor            VARCHAR(64)   NOT NULL,
    note             VARCHAR(1000),
    at               DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    CONSTRAINT mi_audit_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

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
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX mi_notice_business_ix ON mi_notice (business_key);

-- Validation that holds however a row arrives (mi_enqueue or a plain INSERT
-- from an HIS trigger): bad input is refused to the HIS, nothing is inserted.
DELIMITER //
CREATE TRIGGER mi_outbox_validate_tg BEFORE INSERT ON mi_outbox FOR EACH ROW
BEGIN
    DECLARE total VARCHAR(100);
    IF NEW.business_key IS NULL OR TRIM(NEW.business_key) = '' THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: business_key is required';
    END IF;
    IF NEW.kind IS NULL OR TRIM(NEW.kind) = '' THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: kind is required';
    END IF;
    IF NEW.serial_key IS NULL OR TRIM(NEW.serial_key) = '' THEN
        SET NEW.serial_key = NEW.business_key;
    END IF;
    IF NEW.payload IS NULL OR JSON_VALID(NEW.payload) = 0 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: payload is not valid JSON';
    END IF;
    IF JSON_TYPE(NEW.payload) <> 'OBJECT' THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: payload must be a JSON object';
    END IF;
    SET total = JSON_UNQUOTE(JSON_EXTRACT(NEW.payload, '$.total_amount'));
    IF total IS NOT NULL AND total <> 'null' AND total NOT REGEXP '^[0-9]+(\\.[0-9]{1,2})?$' THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: total_amount must be a non-negative amount with at most 2 decimals';
    END IF;
END //

-- The one call the HIS makes per request:
--   CALL mi_enqueue('test.charge', 'INV-1', 'VISIT-1', '{"total_amount":"12.50"}', @id); SELECT @id;
-- The same (kind, business_key) with the same payload returns the existing id;
-- with a different payload it is an error.
CREATE PROCEDURE mi_enqueue(IN p_kind VARCHAR(40), IN p_business_key VARCHAR(64),
                            IN p_serial_key VARCHAR(64), IN p_payload LONGTEXT, OUT p_id BIGINT)
BEGIN
    DECLARE old_payload LONGTEXT;
    DECLARE duplicate INT DEFAULT 0;
    -- Insert first: of two identical calls racing, one inserts and the other
    -- lands here on the unique key (1062) and returns the same id.
    DECLARE CONTINUE HANDLER FOR 1062 SET duplicate = 1;
    SET p_id = NULL;
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

CREATE PROCEDURE mi_inbox_consume(IN p_id BIGINT, IN p_ack VARCHAR(16))
BEGIN
    UPDATE mi_inbox SET consumed_at = UTC_TIMESTAMP(6), his_ack = COALESCE(p_ack, 'accepted')
     WHERE id = p_id AND consumed_at IS NULL;
    IF ROW_COUNT() = 0 THEN
        SIGNAL SQLSTATE '45000'
            SET MESSAGE_TEXT = 'mibridge: inbox row does not exist or was already consumed';
    END IF;
END //
DELIMITER ;

-- Views for DBAs --------------------------------------------------------
CREATE VIEW mi_v_pending AS
SELECT id, kind, business_key, serial_key, state, step, attempts, next_attempt_at, created_at,
       TIMESTAMPDIFF(SECOND, created_at, UTC_TIMESTAMP(6)) AS age_seconds,
       last_error_code, last_error_message
  FROM mi_outbox WHERE state IN ('pending', 'in_doubt');

CREATE VIEW mi_v_in_flight AS
SELECT id, kind, business_key, step, lease_owner, lease_expires_at, current_call, attempts, updated_at
  FROM mi_outbox WHERE state = 'running';

CREATE VIEW mi_v_held AS
SELECT id, kind, business_key, serial_key, step, attempts, last_error_code AS reason_code,
       last_error_message AS reason, updated_at
  FROM mi_outbox WHERE state = 'held';

CREATE VIEW mi_v_failed AS
SELECT id, kind, business_key, step, finished_at, last_error_code, last_error_message
  FROM mi_outbox WHERE state = 'failed';

CREATE VIEW mi_v_today AS
SELECT o.kind, o.state, COUNT(*) AS requests, SUM(i.total_amount) AS total_amount
  FROM mi_outbox o
  LEFT JOIN mi_inbox i ON i.outbox_id = o.id AND i.id = (SELECT MAX(x.id) FROM mi_inbox x WHERE x.outbox_id = o.id)
 WHERE o.created_at >= CURRENT_DATE - INTERVAL TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW()) SECOND
 GROUP BY o.kind, o.state;

-- mibridge migration 003: mi_secret, the daemon's own store of tokens and ID numbers.
-- A flow's secrets (the mobile-pay payToken, a face-identified patient's ID number,
-- name, ecToken and authNo) live here instead of in mi_outbox.flow_data, which the HIS
-- and DBAs read. Only the daemon reads or writes it (grants.sql gives the HIS nothing
-- on it). A row's secrets go when the request is final, except what a later request
-- needs (a payment's payToken for its refund), and with the row when it is purged.
-- name compares byte for byte (utf8mb4_bin).
CREATE TABLE mi_secret (
    outbox_id        BIGINT        NOT NULL,
    name             VARCHAR(64)   CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    value            VARCHAR(2000) NOT NULL,
    created_at       DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    CONSTRAINT mi_secret_pk PRIMARY KEY (outbox_id, name),
    CONSTRAINT mi_secret_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
