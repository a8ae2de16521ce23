-- mibridge: install into a SQLite (3.35+) database file.
-- Run by hand:   sqlite3 his.db < sql/sqlite/install.sql
-- or:            mibridge db install --url sqlite:///path/to/his.db
-- Creates only objects whose names start with mi_; uninstall.sql removes them.
-- The states are explained in sql/postgresql/install.sql and docs/.
-- Times are UTC text 'YYYY-MM-DD HH:MM:SS.SSS' from SQLite's own clock, so they
-- sort and compare as text.
--
-- SQLite has no stored procedures. The HIS enqueues with one plain INSERT:
--   INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
--   VALUES ('test.charge', 'INV-1', 'VISIT-1', '{"total_amount":"12.50"}');
-- Validation runs in the triggers below: bad input aborts the INSERT with a
-- 'mibridge: ...' message; repeating an existing (kind, business_key) with the
-- same payload is silently ignored, with a different payload it aborts.
-- The HIS marks an inbox row as taken with:
--   UPDATE mi_inbox SET consumed_at = strftime('%Y-%m-%d %H:%M:%f','now'), his_ack = 'accepted'
--    WHERE id = ? AND consumed_at IS NULL;

CREATE TABLE mi_outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL,
    business_key     TEXT    NOT NULL,
    serial_key       TEXT    NOT NULL DEFAULT '',
    payload          TEXT    NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending','running','in_doubt','held','done','failed','resolved')),
    step             TEXT,
    flow_data        TEXT,
    current_call     TEXT,
    call_unsafe      INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 10,
    next_attempt_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    lease_owner      TEXT,
    lease_expires_at TEXT,
    created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    updated_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    finished_at      TEXT,
    last_error_code  TEXT,
    last_error_message TEXT,
    CONSTRAINT mi_outbox_kind_key UNIQUE (kind, business_key)
);
CREATE INDEX mi_outbox_ready_ix ON mi_outbox (next_attempt_at, id)
    WHERE state IN ('pending', 'in_doubt');
CREATE INDEX mi_outbox_serial_open_ix ON mi_outbox (serial_key, id)
    WHERE state NOT IN ('done', 'failed', 'resolved');
CREATE INDEX mi_outbox_lease_ix ON mi_outbox (lease_expires_at)
    WHERE state = 'running';
CREATE INDEX mi_outbox_finished_ix ON mi_outbox (finished_at)
    WHERE finished_at IS NOT NULL;

CREATE TABLE mi_inbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id        INTEGER NOT NULL REFERENCES mi_outbox (id),
    kind             TEXT    NOT NULL,
    business_key     TEXT    NOT NULL,
    result_type      TEXT    NOT NULL,
    outcome          TEXT    NOT NULL CHECK (outcome IN ('ok','failed','held','resolved')),
    error_code       TEXT,
    error_message    TEXT,
    order_id         TEXT,
    settlement_id    TEXT,
    -- Money is DECIMAL(16,2) text, as SQLite has no exact decimal type:
    -- the daemon writes '12.50', never a float.
    total_amount     TEXT,
    fund_amount      TEXT,
    account_amount   TEXT,
    cash_amount      TEXT,
    result_json      TEXT,
    created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    consumed_at      TEXT,
    his_ack          TEXT    CHECK (his_ack IS NULL OR his_ack IN ('accepted','rejected'))
);
CREATE INDEX mi_inbox_unconsumed_ix ON mi_inbox (id) WHERE consumed_at IS NULL;
CREATE INDEX mi_inbox_outbox_ix ON mi_inbox (outbox_id);

CREATE TABLE mi_journal (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id           TEXT    NOT NULL UNIQUE,
    outbox_id        INTEGER NOT NULL REFERENCES mi_outbox (id),
    step             TEXT    NOT NULL,
    interface        TEXT    NOT NULL,
    request_masked   TEXT,
    response_masked  TEXT,
    http_status      INTEGER,
    started_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    ended_at         TEXT,
    outcome          TEXT    CHECK (outcome IS NULL OR outcome IN ('ok','rejected','unknown')),
    error_message    TEXT
);
CREATE INDEX mi_journal_outbox_ix ON mi_journal (outbox_id);

CREATE TABLE mi_identity (
    his_patient_id   TEXT    PRIMARY KEY,
    psn_no           TEXT    NOT NULL,
    insuplc_admdvs   TEXT,
    insutype         TEXT,
    benefit          TEXT,
    psn_cert_type    TEXT,
    source_outbox_id INTEGER,
    updated_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now'))
);

CREATE TABLE mi_audit (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id        INTEGER NOT NULL REFERENCES mi_outbox (id),
    action           TEXT    NOT NULL,
    actor            TEXT    NOT NULL,
    note             TEXT,
    at               TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now'))
);
CREATE INDEX mi_audit_outbox_ix ON mi_audit (outbox_id);

-- Notices the platforms push to us (the mobile-pay centre's 6302 settlement notice),
-- recorded once each after their signature verified, by the daemon's notice endpoint.
-- A repeated notice only bumps received_count. Flows read it; nobody else writes it.
-- outbox_id has no foreign key: a notice can name a row that was purged or never existed.
CREATE TABLE mi_notice (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    interface        TEXT    NOT NULL,
    notice_key       TEXT    NOT NULL,
    business_key     TEXT,
    outbox_id        INTEGER,
    notice_json      TEXT    NOT NULL,
    received_count   INTEGER NOT NULL DEFAULT 1,
    first_received_at TEXT   NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    last_received_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    CONSTRAINT mi_notice_key UNIQUE (interface, notice_key)
);
CREATE INDEX mi_notice_business_ix ON mi_notice (business_key);

-- The same request twice: the same payload is a no-op, a different one an error.
CREATE TRIGGER mi_outbox_duplicate_tg BEFORE INSERT ON mi_outbox
WHEN EXISTS (SELECT 1 FROM mi_outbox WHERE kind = NEW.kind AND business_key = NEW.business_key)
BEGIN
    SELECT CASE
        WHEN (SELECT json(payload) FROM mi_outbox WHERE kind = NEW.kind AND business_key = NEW.business_key)
             IS json(NEW.payload)
        THEN RAISE(IGNORE)
        ELSE RAISE(ABORT, 'mibridge: this request (kind, business_key) already exists with a different payload')
    END;
END;

CREATE TRIGGER mi_outbox_validate_tg BEFORE INSERT ON mi_outbox
BEGIN
    SELECT CASE
        WHEN NEW.business_key IS NULL OR trim(NEW.business_key) = ''
            THEN RAISE(ABORT, 'mibridge: business_key is required')
        WHEN NEW.kind IS NULL OR trim(NEW.kind) = ''
            THEN RAISE(ABORT, 'mibridge: kind is required')
        WHEN NEW.payload IS NULL OR NOT json_valid(NEW.payload)
            THEN RAISE(ABORT, 'mibridge: payload is not valid JSON')
        WHEN json_type(NEW.payload) <> 'object'
            THEN RAISE(ABORT, 'mibridge: payload must be a JSON object')
        WHEN json_type(NEW.payload, '$.total_amount') IN ('integer', 'real', 'text')
             AND (CAST(json_extract(NEW.payload, '$.total_amount') AS TEXT) GLOB '*[^0-9.]*'
                  OR CAST(json_extract(NEW.payload, '$.total_amount') AS TEXT) GLOB '*.???*'
                  OR CAST(json_extract(NEW.payload, '$.total_amount') AS TEXT) GLOB '*.*.*'
                  OR CAST(json_extract(NEW.payload, '$.total_amount') AS TEXT) GLOB '.*'
                  OR CAST(json_extract(NEW.payload, '$.total_amount') AS TEXT) GLOB '*.'
                  OR CAST(json_extract(NEW.payload, '$.total_amount') AS TEXT) = '')
            THEN RAISE(ABORT, 'mibridge: total_amount must be a non-negative amount with at most 2 decimals')
        WHEN json_type(NEW.payload, '$.total_amount') IN ('true', 'false', 'object', 'array')
            THEN RAISE(ABORT, 'mibridge: total_amount must be a non-negative amount with at most 2 decimals')
    END;
END;

-- An omitted serial key means "this request is its own sequence".
CREATE TRIGGER mi_outbox_serial_default_tg AFTER INSERT ON mi_outbox
WHEN trim(NEW.serial_key) = ''
BEGIN
    UPDATE mi_outbox SET serial_key = NEW.business_key WHERE id = NEW.id;
END;

-- Views for DBAs --------------------------------------------------------
CREATE VIEW mi_v_pending AS
SELECT id, kind, business_key, serial_key, state, step, attempts, next_attempt_at, created_at,
       CAST((julianday('now') - julianday(created_at)) * 86400 AS INTEGER) AS age_seconds,
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
SELECT o.kind, o.state, COUNT(*) AS requests, SUM(CAST(i.total_amount AS NUMERIC)) AS total_amount
  FROM mi_outbox o
  LEFT JOIN mi_inbox i ON i.outbox_id = o.id AND i.id = (SELECT MAX(x.id) FROM mi_inbox x WHERE x.outbox_id = o.id)
 WHERE o.created_at >= strftime('%Y-%m-%d 00:00:00', 'now')
 GROUP BY o.kind, o.state;

-- mibridge migration 003: mi_secret, the daemon's own store of tokens and ID numbers.
-- A flow's secrets (the mobile-pay payToken, a face-identified patient's ID number,
-- name, ecToken and authNo) live here instead of in mi_outbox.flow_data. A row's
-- secrets go when the request is final, except what a later request needs (a
-- payment's payToken for its refund), and with the row when it is purged.
-- SQLite has no grants: whoever can open the file can read this table (grants.sql).
CREATE TABLE mi_secret (
    outbox_id        INTEGER NOT NULL REFERENCES mi_outbox (id),
    name             TEXT    NOT NULL,
    value            TEXT    NOT NULL,
    created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    PRIMARY KEY (outbox_id, name)
);
