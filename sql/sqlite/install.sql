-- mibridge: install into a SQLite (3.38+: the -> and ->> JSON operators) database file.
-- Run by hand:   sqlite3 his.db < sql/sqlite/install.sql
-- or:            mibridge db install --url sqlite:///path/to/his.db
-- This file is the schema at its latest version: the same as
-- migrations/001_baseline.sql followed by every later migration (the tests
-- compare the two). An installed database is upgraded with
-- `mibridge db upgrade`, never reinstalled: see docs/migrations.md.
-- It runs as one transaction; .bail on stops the sqlite3 shell at an error.
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
-- The HIS marks an inbox row as taken ('accepted') or refused ('rejected') with:
--   INSERT INTO mi_inbox_consume (id, his_ack) VALUES (?, 'accepted');

.bail on
BEGIN IMMEDIATE;

-- Which migrations this database has (docs/migrations.md).
CREATE TABLE mi_schema_version (
    version          INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL,
    applied_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now'))
);

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
-- Requests of one kind and serial key in any state (a refund counts its payment's
-- other refunds): the open-row index cannot serve a query that names final states.
CREATE INDEX mi_outbox_serial_kind_ix ON mi_outbox (serial_key, kind);
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
-- The HIS polls its results by business key; refunds sum their payment's rows by order_id.
CREATE INDEX mi_inbox_business_ix ON mi_inbox (business_key, kind);
CREATE INDEX mi_inbox_order_ix ON mi_inbox (order_id) WHERE order_id IS NOT NULL;

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
    -- Migration 005, written as SQLite's ALTER TABLE ADD COLUMN leaves the table's text
    -- (the tests compare the two). 1: not safe to repeat (may have moved money); NULL:
    -- journalled before migration 005, counted as unsafe.
    , unsafe INTEGER);
CREATE INDEX mi_journal_outbox_ix ON mi_journal (outbox_id);
CREATE INDEX mi_journal_started_ix ON mi_journal (started_at);

CREATE TABLE mi_identity (
    his_patient_id   TEXT    PRIMARY KEY,
    psn_no           TEXT    NOT NULL,
    insuplc_admdvs   TEXT,
    insutype         TEXT,
    benefit          TEXT,
    psn_cert_type    TEXT,
    source_outbox_id INTEGER,
    updated_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now'))
    -- migration 007: the identity written back to the HIS (docs/identity.md), written as SQLite's
    -- ALTER TABLE leaves the table's text, so that install.sql and 001 + migrations are the same.
, psn_type TEXT, med_type TEXT, benefit_status TEXT, certno_masked TEXT, psn_name_masked TEXT, gend TEXT, chosen INTEGER, source_kind TEXT);

CREATE TABLE mi_audit (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id        INTEGER NOT NULL REFERENCES mi_outbox (id),
    action           TEXT    NOT NULL,
    actor            TEXT    NOT NULL,
    note             TEXT,
    at               TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now'))
    -- migration 005 (as ALTER TABLE ADD COLUMN leaves it): the database login; none in SQLite
    , db_login TEXT);
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

-- Validation that holds however a row arrives: bad input aborts the INSERT
-- with a 'mibridge: ...' message and nothing is inserted; the same request
-- again (same kind and business key) with the same payload, whatever the
-- order of its fields, is silently ignored, with a different payload it aborts.
CREATE TRIGGER mi_outbox_validate_tg BEFORE INSERT ON mi_outbox
BEGIN
    SELECT CASE
        WHEN NEW.kind IS NULL OR trim(NEW.kind) = ''
            THEN RAISE(ABORT, 'mibridge: kind is required')
        WHEN NEW.business_key IS NULL OR trim(NEW.business_key) = ''
            THEN RAISE(ABORT, 'mibridge: business_key is required')
        WHEN NEW.serial_key IS NULL
            THEN RAISE(ABORT, 'mibridge: serial_key is NULL: leave the column out, or give '''', to use the business key')
        -- Keys compare byte for byte. A blank at either end is refused rather
        -- than kept, as on every database (SQL Server's '=' ignores trailing blanks).
        WHEN unicode(NEW.kind) IN (9, 10, 13, 32) OR unicode(substr(NEW.kind, -1)) IN (9, 10, 13, 32)
            THEN RAISE(ABORT, 'mibridge: kind must not start or end with a blank')
        WHEN unicode(NEW.business_key) IN (9, 10, 13, 32) OR unicode(substr(NEW.business_key, -1)) IN (9, 10, 13, 32)
            THEN RAISE(ABORT, 'mibridge: business_key must not start or end with a blank')
        WHEN trim(NEW.serial_key) <> ''
             AND (unicode(NEW.serial_key) IN (9, 10, 13, 32) OR unicode(substr(NEW.serial_key, -1)) IN (9, 10, 13, 32))
            THEN RAISE(ABORT, 'mibridge: serial_key must not start or end with a blank')
        WHEN length(NEW.kind) > 40
            THEN RAISE(ABORT, 'mibridge: kind is longer than 40 characters')
        WHEN length(NEW.business_key) > 64
            THEN RAISE(ABORT, 'mibridge: business_key is longer than 64 characters')
        WHEN length(NEW.serial_key) > 64
            THEN RAISE(ABORT, 'mibridge: serial_key is longer than 64 characters')
        WHEN NEW.payload IS NULL OR NOT json_valid(NEW.payload)
            THEN RAISE(ABORT, 'mibridge: payload is not valid JSON')
        WHEN json_type(NEW.payload) <> 'object'
            THEN RAISE(ABORT, 'mibridge: payload must be a JSON object')
        -- A lone UTF-16 surrogate escape (\ud800 without its \udc00): json_valid
        -- takes it, no other database does, and the daemon could never write it
        -- back. Searched in the text with its escaped backslashes blanked out, where each
        -- remaining \u starts an escape: a high half (\ud800-\udbff) not followed
        -- by a low one (\udc00-\udfff), or a low half not preceded by a high one.
        WHEN EXISTS (SELECT 1 FROM (SELECT lower(replace(NEW.payload, '\\', '__')) AS s)
                      WHERE instr(s, '\ud') > 0
                        AND (s GLOB '*\ud[89ab]??' OR s GLOB '*\ud[89ab]??[^\]*' OR s GLOB '*\ud[89ab]??\[^u]*'
                             OR s GLOB '*\ud[89ab]??\u[^d]*' OR s GLOB '*\ud[89ab]??\ud[^c-f]*'
                             OR s GLOB '\ud[c-f]*' OR s GLOB '?\ud[c-f]*' OR s GLOB '??\ud[c-f]*'
                             OR s GLOB '???\ud[c-f]*' OR s GLOB '????\ud[c-f]*' OR s GLOB '?????\ud[c-f]*'
                             OR s GLOB '*[^0-9a-f]\ud[c-f]*' OR s GLOB '*[^0-9a-f]?\ud[c-f]*'
                             OR s GLOB '*[^89ab]??\ud[c-f]*' OR s GLOB '*[^d]???\ud[c-f]*'
                             OR s GLOB '*[^u]????\ud[c-f]*' OR s GLOB '*[^\]?????\ud[c-f]*'))
            THEN RAISE(ABORT, 'mibridge: payload is not valid JSON')
        -- A key twice in one object (SQLite would read the first, the daemon the last).
        WHEN EXISTS (SELECT 1 FROM json_tree(NEW.payload) WHERE parent IS NOT NULL
                      GROUP BY parent, key HAVING COUNT(*) > 1)
            THEN RAISE(ABORT, 'mibridge: payload has a key twice in one object')
        -- The amount as written: a string, or a number in plain digits (->
        -- gives a number's own text, so 1e3 and -0 are refused).
        WHEN json_type(NEW.payload, '$.total_amount') IS NOT NULL
             AND json_type(NEW.payload, '$.total_amount') <> 'null'
             AND (SELECT t = '' OR t GLOB '*[^0-9.]*' OR t GLOB '.*' OR t GLOB '*.' OR t GLOB '*.*.*' OR t GLOB '*.???*'
                    FROM (SELECT CASE json_type(NEW.payload, '$.total_amount')
                                     WHEN 'text' THEN NEW.payload ->> '$.total_amount'
                                     ELSE NEW.payload -> '$.total_amount' END AS t))
            THEN RAISE(ABORT, 'mibridge: total_amount must be a non-negative amount with at most 2 decimals')
        -- The same request again: the same document is a no-op (leaf by leaf, so
        -- the order of the fields does not matter), another one an error.
        WHEN EXISTS (SELECT 1 FROM mi_outbox WHERE kind = NEW.kind AND business_key = NEW.business_key)
            THEN CASE
                WHEN NOT EXISTS (SELECT fullkey, CASE WHEN type IN ('integer', 'real') THEN 'number' ELSE type END, atom
                                   FROM json_tree((SELECT payload FROM mi_outbox
                                                    WHERE kind = NEW.kind AND business_key = NEW.business_key))
                                 EXCEPT
                                 SELECT fullkey, CASE WHEN type IN ('integer', 'real') THEN 'number' ELSE type END, atom
                                   FROM json_tree(NEW.payload))
                 AND NOT EXISTS (SELECT fullkey, CASE WHEN type IN ('integer', 'real') THEN 'number' ELSE type END, atom
                                   FROM json_tree(NEW.payload)
                                 EXCEPT
                                 SELECT fullkey, CASE WHEN type IN ('integer', 'real') THEN 'number' ELSE type END, atom
                                   FROM json_tree((SELECT payload FROM mi_outbox
                                                    WHERE kind = NEW.kind AND business_key = NEW.business_key)))
                THEN RAISE(IGNORE)
                ELSE RAISE(ABORT, 'mibridge: this request (kind, business_key) already exists with a different payload')
            END
    END;
END;

-- An omitted serial key means "this request is its own sequence".
CREATE TRIGGER mi_outbox_serial_default_tg AFTER INSERT ON mi_outbox
WHEN trim(NEW.serial_key) = ''
BEGIN
    UPDATE mi_outbox SET serial_key = NEW.business_key WHERE id = NEW.id;
END;

-- SQLite has no procedures: the HIS consumes an inbox row with one INSERT into
-- this view, whose trigger does what mi_inbox_consume does elsewhere:
--   INSERT INTO mi_inbox_consume (id, his_ack) VALUES (42, 'accepted');
-- A row that does not exist or was already consumed, and a verdict other than
-- 'accepted' or 'rejected' (NULL included), abort with a 'mibridge: ...' message.
CREATE VIEW mi_inbox_consume (id, his_ack) AS SELECT id, his_ack FROM mi_inbox WHERE 0;

CREATE TRIGGER mi_inbox_consume_tg INSTEAD OF INSERT ON mi_inbox_consume
BEGIN
    SELECT CASE
        WHEN NEW.his_ack IS NULL OR NEW.his_ack NOT IN ('accepted', 'rejected')
            THEN RAISE(ABORT, 'mibridge: the verdict must be ''accepted'' or ''rejected''')
        WHEN NOT EXISTS (SELECT 1 FROM mi_inbox WHERE id = NEW.id)
            THEN RAISE(ABORT, 'mibridge: inbox row does not exist')
        WHEN EXISTS (SELECT 1 FROM mi_inbox WHERE id = NEW.id AND consumed_at IS NOT NULL)
            THEN RAISE(ABORT, 'mibridge: inbox row was already consumed')
    END;
    UPDATE mi_inbox SET consumed_at = strftime('%Y-%m-%d %H:%M:%f','now'), his_ack = NEW.his_ack
     WHERE id = NEW.id AND consumed_at IS NULL;
END;

-- An HIS that still marks rows with a plain UPDATE gets the same verdict check:
-- a misspelt verdict is refused in words, and a row is never consumed without one.
CREATE TRIGGER mi_inbox_ack_tg BEFORE UPDATE OF consumed_at, his_ack ON mi_inbox
WHEN NEW.consumed_at IS NOT NULL AND (NEW.his_ack IS NULL OR NEW.his_ack NOT IN ('accepted', 'rejected'))
BEGIN
    SELECT RAISE(ABORT, 'mibridge: the verdict must be ''accepted'' or ''rejected''');
END;

-- Admin functions (migration 005): SQLite has no procedures, so each is a view
-- whose INSTEAD OF trigger does the work, as mi_inbox_consume does:
--   INSERT INTO mi_requeue (id, note) VALUES (42, 'gateway fixed');
--   INSERT INTO mi_resolve (id, note) VALUES (42, 'checked: never charged');
--   INSERT INTO mi_cancel  (id, note) VALUES (42, 'the patient left');
-- with an optional actor column (who asked; default 'sqlite').
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

-- Views for DBAs --------------------------------------------------------
-- Why a pending row waits (waits_for): serial_key (behind waits_behind_id, the
-- oldest unfinished request with the same serial key), query (a call in doubt),
-- his, patient, backoff, scheduled, worker; see sql/postgresql/install.sql.
-- last_error_* only while they belong to the current step's tries.
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

CREATE VIEW mi_v_in_flight AS
SELECT id, kind, business_key, step, lease_owner, lease_expires_at, current_call, attempts, updated_at,
       CAST((julianday('now') - julianday(created_at)) * 86400 AS INTEGER) AS age_seconds
  FROM mi_outbox WHERE state = 'running';

CREATE VIEW mi_v_held AS
SELECT id, kind, business_key, serial_key, step, attempts, last_error_code AS reason_code,
       last_error_message AS reason, updated_at,
       CAST((julianday('now') - julianday(created_at)) * 86400 AS INTEGER) AS age_seconds, current_call
  FROM mi_outbox WHERE state = 'held';

CREATE VIEW mi_v_failed AS
SELECT id, kind, business_key, step, finished_at, last_error_code, last_error_message,
       CAST((julianday('now') - julianday(created_at)) * 86400 AS INTEGER) AS age_seconds
  FROM mi_outbox WHERE state = 'failed';

CREATE VIEW mi_v_today AS
SELECT o.kind, o.state, COUNT(*) AS requests, SUM(CAST(i.total_amount AS NUMERIC)) AS total_amount
  FROM mi_outbox o
  LEFT JOIN mi_inbox i ON i.outbox_id = o.id AND i.id = (SELECT MAX(x.id) FROM mi_inbox x WHERE x.outbox_id = o.id)
 WHERE o.created_at >= strftime('%Y-%m-%d 00:00:00', 'now')
 GROUP BY o.kind, o.state
 ORDER BY o.kind, o.state;


-- Migration 003: mi_secret, the daemon's own store of tokens and ID numbers.
-- A flow's secrets (the mobile-pay payToken, a face-identified patient's ID number,
-- name, ecToken and authNo) live here instead of in mi_outbox.flow_data, which the HIS
-- and DBAs read. SQLite has no grants: whoever can open the file can read it. A row's secrets go when the request is final, except what a later request
-- needs (a payment's payToken for its refunds and for a late notice's check), and with
-- the row when it is purged.
CREATE TABLE mi_secret (
    outbox_id        INTEGER NOT NULL REFERENCES mi_outbox (id),
    name             TEXT    NOT NULL,
    value            TEXT    NOT NULL,
    created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    CONSTRAINT mi_secret_pk PRIMARY KEY (outbox_id, name)
);

-- Migration 004: the order book and daily reconciliation (docs/reconciliation.md).
-- mi_order: one row per payment, kept by the daemon from the inbox rows it writes, in the
-- same transaction (bridge/db/orderbook.py); mi_order_refund: its refunds, reversals and
-- cancellations. Purge never deletes either. mi_recon_run / mi_recon_item / mi_channel_bill:
-- the daily reconciliation; views show the latest completed run of each day and platform.
-- Days are yyyy-MM-dd in China time (UTC+8). Money is DECIMAL(16,2) text, as in mi_inbox.
CREATE TABLE mi_order (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    platform         TEXT    NOT NULL,
    channel          TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    business_key     TEXT    NOT NULL,
    outbox_id        INTEGER NOT NULL,
    inbox_id         INTEGER,
    platform_order_id TEXT   NOT NULL,
    settlement_id    TEXT,
    mix_trade_no     TEXT,
    out_trade_no     TEXT,
    trade_no         TEXT,
    psn_no           TEXT,
    mdtrt_id         TEXT,
    insutype         TEXT,
    clr_type         TEXT,
    setl_optins      TEXT,
    ref_no           TEXT,
    term_seq_no      TEXT,
    status           TEXT    NOT NULL DEFAULT 'paid',
    total_amount     TEXT    NOT NULL,
    fund_amount      TEXT    NOT NULL,
    account_amount   TEXT    NOT NULL,
    cash_amount      TEXT    NOT NULL,
    refunded_total   TEXT    NOT NULL DEFAULT '0.00',
    refunded_fund    TEXT    NOT NULL DEFAULT '0.00',
    refunded_account TEXT    NOT NULL DEFAULT '0.00',
    refunded_cash    TEXT    NOT NULL DEFAULT '0.00',
    refund_count     INTEGER NOT NULL DEFAULT 0,
    settle_day       TEXT    NOT NULL,
    settled_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    last_refund_at   TEXT,
    updated_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    CONSTRAINT mi_order_key UNIQUE (platform_order_id, platform),
    CONSTRAINT mi_order_status_ck CHECK (status IN ('paid','partly_refunded','refunded','reversed','cancelled'))
);
CREATE INDEX mi_order_day_ix ON mi_order (settle_day, platform, id);
CREATE INDEX mi_order_business_ix ON mi_order (business_key);
CREATE INDEX mi_order_trade_ix ON mi_order (out_trade_no);

CREATE TABLE mi_order_refund (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    order_ref        INTEGER,
    platform         TEXT    NOT NULL,
    platform_order_id TEXT   NOT NULL,
    refund_type      TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    business_key     TEXT    NOT NULL,
    outbox_id        INTEGER NOT NULL,
    inbox_id         INTEGER,
    refund_ref       TEXT,
    out_refund_no    TEXT,
    state            TEXT    NOT NULL DEFAULT 'booked',
    total_amount     TEXT    NOT NULL,
    fund_amount      TEXT    NOT NULL,
    account_amount   TEXT    NOT NULL,
    cash_amount      TEXT    NOT NULL,
    refund_day       TEXT    NOT NULL,
    refunded_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    CONSTRAINT mi_order_refund_key UNIQUE (outbox_id, refund_type, platform_order_id),
    CONSTRAINT mi_order_refund_type_ck CHECK (refund_type IN ('refund','reversal','cancellation')),
    CONSTRAINT mi_order_refund_state_ck CHECK (state IN ('booked','unmatched'))
);
CREATE INDEX mi_order_refund_order_ix ON mi_order_refund (order_ref);
CREATE INDEX mi_order_refund_day_ix ON mi_order_refund (refund_day, platform, id);
CREATE INDEX mi_order_refund_platform_ix ON mi_order_refund (platform_order_id);

-- One row per reconciliation run. active_key is "<day>:<platform>" while the run is running
-- and "run:<id>" after: the unique key lets one run per day and platform run at a time.
CREATE TABLE mi_recon_run (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    recon_day        TEXT    NOT NULL,
    platform         TEXT    NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'running',
    active_key       TEXT    NOT NULL,
    owner            TEXT    NOT NULL,
    step             TEXT,
    progress_done    INTEGER NOT NULL DEFAULT 0,
    progress_total   INTEGER,
    balanced         INTEGER,
    items_total      INTEGER NOT NULL DEFAULT 0,
    items_differ     INTEGER NOT NULL DEFAULT 0,
    digest           TEXT,
    report_outbox_id INTEGER,
    detail_json      TEXT,
    error_message    TEXT,
    started_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    heartbeat_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    finished_at      TEXT,
    CONSTRAINT mi_recon_run_active UNIQUE (active_key),
    CONSTRAINT mi_recon_run_state_ck CHECK (state IN ('running','done','failed','abandoned'))
);
CREATE INDEX mi_recon_run_day_ix ON mi_recon_run (recon_day, platform, state);

-- One row per order (setl_id, payOrdId, or a channel's out_trade_no) and leg of a run.
CREATE TABLE mi_recon_item (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           INTEGER NOT NULL REFERENCES mi_recon_run (id),
    order_key        TEXT    NOT NULL,
    leg              TEXT    NOT NULL,
    diff_class       TEXT    NOT NULL,
    order_ref        INTEGER,
    business_key     TEXT,
    channel          TEXT,
    channel_ref      TEXT,
    hospital_amount  TEXT,
    platform_amount  TEXT,
    channel_amount   TEXT,
    hospital_state   TEXT,
    platform_state   TEXT,
    source           TEXT    NOT NULL,
    note             TEXT,
    CONSTRAINT mi_recon_item_key UNIQUE (run_id, order_key, leg),
    CONSTRAINT mi_recon_item_class_ck CHECK (diff_class IN ('balanced','hospital_only','platform_only',
                                                            'channel_only','amount_differs','unchecked'))
);
CREATE INDEX mi_recon_item_ref_ix ON mi_recon_item (run_id, channel_ref);

-- The WeChat / Alipay bill rows a run loaded (+ payments, - refunds, yuan).
CREATE TABLE mi_channel_bill (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           INTEGER NOT NULL REFERENCES mi_recon_run (id),
    channel          TEXT    NOT NULL,
    bill_day         TEXT    NOT NULL,
    line_no          INTEGER NOT NULL,
    row_type         TEXT    NOT NULL,
    out_trade_no     TEXT    NOT NULL,
    trade_no         TEXT,
    out_refund_no    TEXT,
    refund_id        TEXT,
    amount           TEXT    NOT NULL,
    trade_state      TEXT,
    trade_time       TEXT,
    CONSTRAINT mi_channel_bill_line UNIQUE (run_id, channel, line_no)
);
CREATE INDEX mi_channel_bill_trade_ix ON mi_channel_bill (run_id, out_trade_no);

-- The order book: one row per payment, its refunds summed per leg, the latest refund request.
CREATE VIEW mi_v_orders AS
SELECT o.id AS order_id, o.platform, o.channel, o.kind, o.business_key, o.platform_order_id, o.settlement_id,
       o.mix_trade_no, o.out_trade_no, o.trade_no, o.status,
       o.total_amount, o.fund_amount, o.account_amount, o.cash_amount,
       o.refunded_total, o.refunded_fund, o.refunded_account, o.refunded_cash,
       printf('%.2f', CAST(o.total_amount AS NUMERIC) - CAST(o.refunded_total AS NUMERIC)) AS net_amount,
       o.refund_count,
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
    admdvs           TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    enabled          INTEGER NOT NULL DEFAULT 1,
    on_wechat        INTEGER NOT NULL DEFAULT 1,
    on_alipay        INTEGER NOT NULL DEFAULT 1,
    on_counter       INTEGER NOT NULL DEFAULT 1,
    on_kiosk         INTEGER NOT NULL DEFAULT 1,
    insutypes        TEXT,
    sort_order       INTEGER,
    source           TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    CONSTRAINT mi_insured_region_pk PRIMARY KEY (admdvs),
    CONSTRAINT mi_insured_region_admdvs_ck CHECK (length(admdvs) = 6 AND admdvs NOT GLOB '*[^0-9]*'),
    CONSTRAINT mi_insured_region_name_ck CHECK (length(trim(name)) > 0),
    CONSTRAINT mi_insured_region_flags_ck CHECK (enabled IN (0, 1) AND on_wechat IN (0, 1) AND on_alipay IN (0, 1)
                                                 AND on_counter IN (0, 1) AND on_kiosk IN (0, 1)),
    CONSTRAINT mi_insured_region_source_ck CHECK (source IN ('config', 'csv', '1901', 'manual'))
);

CREATE VIEW mi_v_insured_regions AS
SELECT admdvs, name, on_wechat, on_alipay, on_counter, on_kiosk, insutypes, sort_order, source, updated_at
  FROM mi_insured_region WHERE enabled = 1;

INSERT INTO mi_schema_version (version, name) VALUES (1, '001_baseline'), (2, '002_hardening'), (3, '003_secrets'),
       (4, '004_reconciliation'), (5, '005_admin'), (6, '006_insured_region'),
       (7, '007_identity');
COMMIT;
