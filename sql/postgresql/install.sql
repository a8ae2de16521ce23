-- mibridge: install into a PostgreSQL (12+) HIS database.
-- Run by hand:   psql -1 -v ON_ERROR_STOP=1 -d hisdb -f sql/postgresql/install.sql
-- or:            mibridge db install --url postgresql://dba@host/hisdb
-- Creates only objects whose names start with mi_. Safe to read top to bottom;
-- sql/postgresql/uninstall.sql removes everything again.
-- This file is the schema at its latest version: the same as
-- migrations/001_baseline.sql followed by every later migration (the tests
-- compare the two). An installed database is upgraded with
-- `mibridge db upgrade`, never reinstalled: see docs/migrations.md.

-- Every function below pins search_path to the schema the mi_ objects live in
-- (FROM CURRENT), with pg_temp last so that no temporary object can stand in
-- for one of ours.
SELECT pg_catalog.set_config('search_path',
                             pg_catalog.quote_ident(pg_catalog.current_schema()) || ', pg_temp', false);

-- Which migrations this database has (docs/migrations.md).
CREATE TABLE mi_schema_version (
    version          INTEGER       PRIMARY KEY,
    name             VARCHAR(100)  NOT NULL,
    applied_at       TIMESTAMPTZ   NOT NULL DEFAULT now()
);

-- Outbox: one row per request the HIS makes. The daemon claims rows, runs the
-- request's flow (a state machine; the current step is in `step`), and finishes
-- each row exactly once.
--   state: pending   waiting to be claimed (not before next_attempt_at)
--          running   leased by a daemon worker until lease_expires_at
--          in_doubt  a remote call's effect is unknown; the flow must query
--                    the platform before anything is sent again
--          held      stopped for a human; the reason is in last_error_*
--          done      finished; the result is in mi_inbox
--          failed    finished with a business failure; the reason is in mi_inbox
--          resolved  closed by a human (mibridge resolve), see mi_audit
CREATE TABLE mi_outbox (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             VARCHAR(40)   NOT NULL,
    business_key     VARCHAR(64)   NOT NULL,
    serial_key       VARCHAR(64)   NOT NULL,
    payload          TEXT          NOT NULL,
    state            VARCHAR(16)   NOT NULL DEFAULT 'pending',
    step             VARCHAR(40),
    flow_data        TEXT,
    current_call     VARCHAR(64),
    call_unsafe      SMALLINT      NOT NULL DEFAULT 0,
    attempts         INTEGER       NOT NULL DEFAULT 0,
    max_attempts     INTEGER       NOT NULL DEFAULT 10,
    next_attempt_at  TIMESTAMPTZ   NOT NULL DEFAULT now(),
    lease_owner      VARCHAR(64),
    lease_expires_at TIMESTAMPTZ,
    created_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    finished_at      TIMESTAMPTZ,
    last_error_code  VARCHAR(40),
    last_error_message VARCHAR(1000),
    CONSTRAINT mi_outbox_kind_key UNIQUE (kind, business_key),
    CONSTRAINT mi_outbox_state_ck CHECK (state IN ('pending','running','in_doubt','held','done','failed','resolved')),
    CONSTRAINT mi_outbox_key_ck CHECK (length(btrim(business_key)) > 0 AND length(btrim(kind)) > 0)
);
-- Claim reads only open rows: partial indexes keep it flat however many
-- finished rows the table holds.
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

-- Inbox: results for the HIS. A request can produce several rows (an order,
-- then its settlement). The HIS reads rows with consumed_at IS NULL and marks
-- each one with mi_inbox_consume(id, 'accepted' | 'rejected').
CREATE TABLE mi_inbox (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id        BIGINT        NOT NULL REFERENCES mi_outbox (id),
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
    result_json      TEXT,
    created_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    consumed_at      TIMESTAMPTZ,
    his_ack          VARCHAR(16),
    CONSTRAINT mi_inbox_outcome_ck CHECK (outcome IN ('ok','failed','held','resolved')),
    CONSTRAINT mi_inbox_ack_ck CHECK (his_ack IS NULL OR his_ack IN ('accepted','rejected'))
);
CREATE INDEX mi_inbox_unconsumed_ix ON mi_inbox (id) WHERE consumed_at IS NULL;
CREATE INDEX mi_inbox_outbox_ix ON mi_inbox (outbox_id);
-- The HIS polls its results by business key; refunds sum their payment's rows by order_id.
CREATE INDEX mi_inbox_business_ix ON mi_inbox (business_key, kind);
CREATE INDEX mi_inbox_order_ix ON mi_inbox (order_id) WHERE order_id IS NOT NULL;

-- Call journal: one row per remote call, written BEFORE the call is sent.
-- outcome is NULL while the call is in flight; a NULL left behind by a
-- crash marks the call as in doubt.
CREATE TABLE mi_journal (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    msg_id           VARCHAR(64)   NOT NULL UNIQUE,
    outbox_id        BIGINT        NOT NULL REFERENCES mi_outbox (id),
    step             VARCHAR(40)   NOT NULL,
    interface        VARCHAR(40)   NOT NULL,
    request_masked   TEXT,
    response_masked  TEXT,
    http_status      INTEGER,
    started_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    ended_at         TIMESTAMPTZ,
    outcome          VARCHAR(16),
    error_message    VARCHAR(1000),
    -- 1: the call was not safe to repeat (it may have moved money); NULL: journalled
    -- before migration 005, counted as unsafe.
    unsafe           SMALLINT,
    CONSTRAINT mi_journal_outcome_ck CHECK (outcome IS NULL OR outcome IN ('ok','rejected','unknown'))
);
CREATE INDEX mi_journal_outbox_ix ON mi_journal (outbox_id);
CREATE INDEX mi_journal_started_ix ON mi_journal (started_at);

-- Insurance identity written back for the HIS (one row per HIS patient).
CREATE TABLE mi_identity (
    his_patient_id   VARCHAR(64)   PRIMARY KEY,
    psn_no           VARCHAR(40)   NOT NULL,
    insuplc_admdvs   VARCHAR(12),
    insutype         VARCHAR(12),
    benefit          VARCHAR(40),
    psn_cert_type    VARCHAR(8),
    source_outbox_id BIGINT,
    updated_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    -- migration 007: the identity written back to the HIS (docs/identity.md)
    psn_type         VARCHAR(12),
    med_type         VARCHAR(8),
    benefit_status   VARCHAR(16),
    certno_masked    VARCHAR(40),
    psn_name_masked  VARCHAR(100),
    gend             VARCHAR(4),
    chosen           SMALLINT,
    source_kind      VARCHAR(40)
);

-- Audit trail of every human action (requeue, resolve) and repair.
CREATE TABLE mi_audit (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id        BIGINT        NOT NULL REFERENCES mi_outbox (id),
    action           VARCHAR(40)   NOT NULL,
    actor            VARCHAR(64)   NOT NULL,
    note             VARCHAR(1000),
    at               TIMESTAMPTZ   NOT NULL DEFAULT now(),
    -- the database login that ran the action (actor: who asked, e.g. alice@console)
    db_login         VARCHAR(64)
);
CREATE INDEX mi_audit_outbox_ix ON mi_audit (outbox_id);

-- Notices the platforms push to us (the mobile-pay centre's 6302 settlement notice),
-- recorded once each after their signature verified, by the daemon's notice endpoint.
-- A repeated notice only bumps received_count. Flows read it; nobody else writes it.
-- outbox_id has no foreign key: a notice can name a row that was purged or never existed.
CREATE TABLE mi_notice (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    interface        VARCHAR(16)   NOT NULL,
    notice_key       VARCHAR(64)   NOT NULL,
    business_key     VARCHAR(64),
    outbox_id        BIGINT,
    notice_json      TEXT          NOT NULL,
    received_count   INTEGER       NOT NULL DEFAULT 1,
    first_received_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    last_received_at TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT mi_notice_key UNIQUE (interface, notice_key)
);
CREATE INDEX mi_notice_business_ix ON mi_notice (business_key);

-- The first key that appears twice in one object of a JSON document, or NULL.
-- The json type keeps every member as written (jsonb would keep the last one).
CREATE FUNCTION mi_json_duplicate_key(doc json) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path FROM CURRENT AS $$
DECLARE
    dup   text;
    child json;
BEGIN
    IF json_typeof(doc) = 'object' THEN
        SELECT k INTO dup FROM json_object_keys(doc) AS t(k) GROUP BY k HAVING count(*) > 1 LIMIT 1;
        IF dup IS NOT NULL THEN
            RETURN dup;
        END IF;
        FOR child IN SELECT value FROM json_each(doc) WHERE json_typeof(value) IN ('object', 'array') LOOP
            dup := mi_json_duplicate_key(child);
            IF dup IS NOT NULL THEN
                RETURN dup;
            END IF;
        END LOOP;
    ELSIF json_typeof(doc) = 'array' THEN
        FOR child IN SELECT value FROM json_array_elements(doc) WHERE json_typeof(value) IN ('object', 'array') LOOP
            dup := mi_json_duplicate_key(child);
            IF dup IS NOT NULL THEN
                RETURN dup;
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END $$;

-- Validation that holds however a row arrives (mi_enqueue or a plain INSERT
-- from an HIS trigger): bad input is refused to the HIS, nothing is inserted.
CREATE FUNCTION mi_outbox_validate() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    doc    json;
    amount json;
    dup    text;
BEGIN
    IF NEW.kind IS NULL OR btrim(NEW.kind) = '' THEN
        RAISE EXCEPTION 'mibridge: kind is required' USING ERRCODE = '22023';
    END IF;
    IF NEW.business_key IS NULL OR btrim(NEW.business_key) = '' THEN
        RAISE EXCEPTION 'mibridge: business_key is required' USING ERRCODE = '22023';
    END IF;
    IF NEW.serial_key IS NULL OR btrim(NEW.serial_key) = '' THEN
        NEW.serial_key := NEW.business_key;
    END IF;
    -- Keys compare byte for byte. A blank at either end is refused rather than
    -- kept, because SQL Server's '=' ignores trailing blanks: the same keys
    -- must mean the same requests on every database.
    IF ascii(NEW.kind) IN (9, 10, 13, 32) OR ascii(right(NEW.kind, 1)) IN (9, 10, 13, 32) THEN
        RAISE EXCEPTION 'mibridge: kind must not start or end with a blank' USING ERRCODE = '22023';
    END IF;
    IF ascii(NEW.business_key) IN (9, 10, 13, 32) OR ascii(right(NEW.business_key, 1)) IN (9, 10, 13, 32) THEN
        RAISE EXCEPTION 'mibridge: business_key must not start or end with a blank' USING ERRCODE = '22023';
    END IF;
    IF ascii(NEW.serial_key) IN (9, 10, 13, 32) OR ascii(right(NEW.serial_key, 1)) IN (9, 10, 13, 32) THEN
        RAISE EXCEPTION 'mibridge: serial_key must not start or end with a blank' USING ERRCODE = '22023';
    END IF;
    -- Not JSON (NaN ...), or what no database could store: jsonb refuses a
    -- lone UTF-16 surrogate escape, which the json type lets through.
    BEGIN
        doc := NEW.payload::json;
        PERFORM doc::jsonb;
    EXCEPTION WHEN others THEN
        RAISE EXCEPTION 'mibridge: payload is not valid JSON' USING ERRCODE = '22023';
    END;
    IF json_typeof(doc) <> 'object' THEN
        RAISE EXCEPTION 'mibridge: payload must be a JSON object' USING ERRCODE = '22023';
    END IF;
    dup := mi_json_duplicate_key(doc);
    IF dup IS NOT NULL THEN
        RAISE EXCEPTION 'mibridge: payload has the key "%" twice in one object', dup USING ERRCODE = '22023';
    END IF;
    -- The amount as written: a string, or a number in plain digits ("1e3" and -0 are refused).
    amount := doc -> 'total_amount';
    IF amount IS NOT NULL AND json_typeof(amount) <> 'null' THEN
        IF json_typeof(amount) NOT IN ('string', 'number')
           OR (amount #>> '{}') !~ '^[0-9]+(\.[0-9]{1,2})?$' THEN
            RAISE EXCEPTION 'mibridge: total_amount must be a non-negative amount with at most 2 decimals, got %',
                amount::text USING ERRCODE = '22023';
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER mi_outbox_validate_tg BEFORE INSERT ON mi_outbox
    FOR EACH ROW EXECUTE FUNCTION mi_outbox_validate();

-- Wake the daemon at once (it LISTENs on mi_outbox; polling stays as the fallback).
CREATE FUNCTION mi_outbox_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM pg_notify('mi_outbox', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER mi_outbox_notify_tg AFTER INSERT ON mi_outbox
    FOR EACH ROW EXECUTE FUNCTION mi_outbox_notify();

-- The one call the HIS makes per request. Returns the outbox id.
-- The same (kind, business_key) with the same payload returns the existing id
-- (a retried HIS transaction is harmless; the order of the payload's fields
-- does not matter); with a different payload it is an error.
-- SECURITY DEFINER: it runs with its owner's rights, so the HIS needs EXECUTE
-- on it and nothing on the tables.
CREATE FUNCTION mi_enqueue(p_kind VARCHAR, p_business_key VARCHAR, p_serial_key VARCHAR, p_payload TEXT)
RETURNS BIGINT LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    new_id BIGINT;
    old_payload TEXT;
BEGIN
    -- Longer keys would be cut or refused by the columns; say so in words.
    IF char_length(p_kind) > 40 THEN
        RAISE EXCEPTION 'mibridge: kind is longer than 40 characters' USING ERRCODE = '22023';
    END IF;
    IF char_length(p_business_key) > 64 THEN
        RAISE EXCEPTION 'mibridge: business_key is longer than 64 characters' USING ERRCODE = '22023';
    END IF;
    IF char_length(p_serial_key) > 64 THEN
        RAISE EXCEPTION 'mibridge: serial_key is longer than 64 characters' USING ERRCODE = '22023';
    END IF;
    INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
    VALUES (p_kind, p_business_key, COALESCE(p_serial_key, p_business_key), p_payload)
    ON CONFLICT (kind, business_key) DO NOTHING
    RETURNING id INTO new_id;
    IF new_id IS NOT NULL THEN
        RETURN new_id;
    END IF;
    SELECT id, payload INTO new_id, old_payload FROM mi_outbox
     WHERE kind = p_kind AND business_key = p_business_key;
    -- The BEFORE INSERT trigger checked p_payload even though the insert was
    -- skipped: a payload with a duplicate key never gets here.
    IF old_payload::jsonb IS DISTINCT FROM p_payload::jsonb THEN
        RAISE EXCEPTION 'mibridge: % request % already exists with a different payload (outbox id %)',
            p_kind, p_business_key, new_id USING ERRCODE = '23505';
    END IF;
    RETURN new_id;
END $$;

-- The HIS marks an inbox row as taken ('accepted') or refused ('rejected').
-- A refused settlement is repaired by the daemon (refund/reversal), see docs/.
CREATE FUNCTION mi_inbox_consume(p_id BIGINT, p_ack VARCHAR DEFAULT 'accepted')
RETURNS VOID LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF p_ack IS NULL OR p_ack NOT IN ('accepted', 'rejected') THEN
        RAISE EXCEPTION 'mibridge: the verdict must be ''accepted'' or ''rejected'', not %',
            COALESCE(quote_literal(p_ack), 'NULL') USING ERRCODE = '22023';
    END IF;
    UPDATE mi_inbox SET consumed_at = now(), his_ack = p_ack
     WHERE id = p_id AND consumed_at IS NULL;
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM mi_inbox WHERE id = p_id) THEN
            RAISE EXCEPTION 'mibridge: inbox row % was already consumed', p_id USING ERRCODE = '22023';
        END IF;
        RAISE EXCEPTION 'mibridge: inbox row % does not exist', COALESCE(p_id::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
END $$;

-- Functions are executable by PUBLIC by default; these two run with their
-- owner's rights, so only the roles grants.sql names may call them.
REVOKE ALL ON FUNCTION mi_enqueue(VARCHAR, VARCHAR, VARCHAR, TEXT) FROM PUBLIC;
REVOKE ALL ON FUNCTION mi_inbox_consume(BIGINT, VARCHAR) FROM PUBLIC;

-- Admin functions (migration 005) ---------------------------------------
-- A held row goes back to work: to in_doubt when it stopped inside a call that
-- was not safe to repeat (the flow queries the platform first, never resends
-- blindly), else to pending.  Returns the new state.
CREATE FUNCTION mi_requeue(p_id BIGINT, p_note VARCHAR, p_actor VARCHAR DEFAULT NULL)
RETURNS VARCHAR LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    v_state VARCHAR(16);
BEGIN
    IF p_note IS NULL OR btrim(p_note) = '' THEN
        RAISE EXCEPTION 'mibridge: a note is required: what was checked and decided' USING ERRCODE = '22023';
    END IF;
    SELECT state INTO v_state FROM mi_outbox WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'mibridge: outbox row % does not exist', COALESCE(p_id::text, 'NULL') USING ERRCODE = '22023';
    END IF;
    IF v_state <> 'held' THEN
        RAISE EXCEPTION 'mibridge: outbox row % is %; only a held row can be requeued', p_id, v_state
            USING ERRCODE = '22023';
    END IF;
    UPDATE mi_outbox
       SET state = CASE WHEN current_call IS NOT NULL AND call_unsafe = 1 THEN 'in_doubt' ELSE 'pending' END,
           attempts = 0, next_attempt_at = now(), updated_at = now()
     WHERE id = p_id AND state = 'held'
    RETURNING state INTO v_state;
    INSERT INTO mi_audit (outbox_id, action, actor, note, db_login)
    VALUES (p_id, 'requeue', left(COALESCE(NULLIF(btrim(p_actor), ''), session_user), 64), left(p_note, 1000),
            left(session_user, 64));
    RETURN v_state;
END $$;

-- A person settled a held row by hand (after checking the platform): it ends
-- 'resolved', the HIS gets a 'manual' inbox row with the note, its secrets go.
CREATE FUNCTION mi_resolve(p_id BIGINT, p_note VARCHAR, p_actor VARCHAR DEFAULT NULL)
RETURNS VARCHAR LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    v_state VARCHAR(16);
    v_kind  VARCHAR(40);
    v_key   VARCHAR(64);
    v_actor VARCHAR(64) := left(COALESCE(NULLIF(btrim(p_actor), ''), session_user), 64);
BEGIN
    IF p_note IS NULL OR btrim(p_note) = '' THEN
        RAISE EXCEPTION 'mibridge: a note is required: what was checked and decided' USING ERRCODE = '22023';
    END IF;
    SELECT state, kind, business_key INTO v_state, v_kind, v_key FROM mi_outbox WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'mibridge: outbox row % does not exist', COALESCE(p_id::text, 'NULL') USING ERRCODE = '22023';
    END IF;
    IF v_state <> 'held' THEN
        RAISE EXCEPTION 'mibridge: outbox row % is %; only a held row can be resolved', p_id, v_state
            USING ERRCODE = '22023';
    END IF;
    UPDATE mi_outbox SET state = 'resolved', finished_at = now(), updated_at = now(),
           current_call = NULL, call_unsafe = 0
     WHERE id = p_id AND state = 'held';
    DELETE FROM mi_secret WHERE outbox_id = p_id;
    INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, error_code, error_message, result_json)
    VALUES (p_id, v_kind, v_key, 'manual', 'resolved', 'RESOLVED_BY_HAND', left(p_note, 1000),
            json_build_object('note', p_note, 'resolved_by', v_actor)::text);
    INSERT INTO mi_audit (outbox_id, action, actor, note, db_login)
    VALUES (p_id, 'resolve', v_actor, left(p_note, 1000), left(session_user, 64));
    RETURN 'resolved';
END $$;

-- A request nobody wants any more, before it made any call that may have moved
-- money: a pending or held row with no journalled unsafe call ends 'failed', and
-- the HIS gets a 'cancelled' inbox row (error_code CANCELLED_BY_HAND) with the note.
-- Refused while a worker runs it, and for any row whose journal has an unsafe
-- call (or a call of unknown safety): that one is reversed by its flow, or
-- resolved by hand once held.
CREATE FUNCTION mi_cancel(p_id BIGINT, p_note VARCHAR, p_actor VARCHAR DEFAULT NULL)
RETURNS VARCHAR LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    v_state VARCHAR(16);
    v_kind  VARCHAR(40);
    v_key   VARCHAR(64);
    v_calls TEXT;
    v_actor VARCHAR(64) := left(COALESCE(NULLIF(btrim(p_actor), ''), session_user), 64);
BEGIN
    IF p_note IS NULL OR btrim(p_note) = '' THEN
        RAISE EXCEPTION 'mibridge: a note is required: what was checked and decided' USING ERRCODE = '22023';
    END IF;
    SELECT state, kind, business_key INTO v_state, v_kind, v_key FROM mi_outbox WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'mibridge: outbox row % does not exist', COALESCE(p_id::text, 'NULL') USING ERRCODE = '22023';
    END IF;
    IF v_state = 'running' THEN
        RAISE EXCEPTION 'mibridge: outbox row % is running (a worker has it); try again when it waits',
            p_id USING ERRCODE = '22023';
    END IF;
    IF v_state NOT IN ('pending', 'held') THEN
        RAISE EXCEPTION 'mibridge: outbox row % is %; only a pending or held row can be cancelled', p_id, v_state
            USING ERRCODE = '22023';
    END IF;
    SELECT string_agg(DISTINCT interface, ', ') INTO v_calls FROM mi_journal
     WHERE outbox_id = p_id AND COALESCE(unsafe, 1) = 1;
    IF v_calls IS NOT NULL THEN
        RAISE EXCEPTION 'mibridge: outbox row % made a call that may have moved money (%); it cannot be cancelled: let its flow finish or reverse it, or resolve it by hand once it is held',
            p_id, v_calls USING ERRCODE = '22023';
    END IF;
    UPDATE mi_outbox SET state = 'failed', finished_at = now(), updated_at = now(), current_call = NULL,
           call_unsafe = 0, lease_owner = NULL, lease_expires_at = NULL,
           last_error_code = 'CANCELLED_BY_HAND', last_error_message = left(p_note, 1000)
     WHERE id = p_id AND state IN ('pending', 'held');
    DELETE FROM mi_secret WHERE outbox_id = p_id;
    INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, error_code, error_message, result_json)
    VALUES (p_id, v_kind, v_key, 'cancelled', 'failed', 'CANCELLED_BY_HAND', left(p_note, 1000),
            json_build_object('cancelled_by', v_actor, 'note', p_note)::text);
    INSERT INTO mi_audit (outbox_id, action, actor, note, db_login)
    VALUES (p_id, 'cancel', v_actor, left(p_note, 1000), left(session_user, 64));
    RETURN 'failed';
END $$;

-- They run with their owner's rights: only the roles grants.sql names may call them.
REVOKE ALL ON FUNCTION mi_requeue(BIGINT, VARCHAR, VARCHAR) FROM PUBLIC;
REVOKE ALL ON FUNCTION mi_resolve(BIGINT, VARCHAR, VARCHAR) FROM PUBLIC;
REVOKE ALL ON FUNCTION mi_cancel(BIGINT, VARCHAR, VARCHAR) FROM PUBLIC;

-- Views for DBAs --------------------------------------------------------
-- Why a pending row waits (waits_for):
--   serial_key  behind an older unfinished request with the same serial key
--               (waits_behind_id: the oldest of them, the one to look at)
--   query       a call is in doubt: the flow asks the platform at next_attempt_at
--   his         for the HIS to take a result (a step named await_his...)
--   patient     for the patient to pay (a step named await_payment or await_patient...)
--   backoff     retrying after an error (last_error_*), at next_attempt_at
--   scheduled   the flow's own next look, at next_attempt_at
--   worker      due now: for a free worker (or for the daemon to run)
-- last_error_* are shown only while they belong to the current step's tries
-- (attempts > 0): a step that moved on keeps no stale error.
CREATE VIEW mi_v_pending AS
SELECT p.id, p.kind, p.business_key, p.serial_key, p.state, p.step, p.attempts, p.next_attempt_at, p.created_at,
       floor(EXTRACT(EPOCH FROM now() - p.created_at))::bigint AS age_seconds,
       CAST(CASE WHEN p.attempts > 0 THEN p.last_error_code END AS VARCHAR(40)) AS last_error_code,
       CAST(CASE WHEN p.attempts > 0 THEN p.last_error_message END AS VARCHAR(1000)) AS last_error_message,
       CAST(CASE WHEN p.waits_behind_id IS NOT NULL THEN 'serial_key'
                 WHEN p.state = 'in_doubt' THEN 'query'
                 WHEN left(p.step, 9) = 'await_his' THEN 'his'
                 WHEN p.step = 'await_payment' OR left(p.step, 13) = 'await_patient' THEN 'patient'
                 WHEN p.next_attempt_at > now() AND p.attempts > 0 THEN 'backoff'
                 WHEN p.next_attempt_at > now() THEN 'scheduled'
                 ELSE 'worker' END AS VARCHAR(16)) AS waits_for,
       p.waits_behind_id
  FROM (SELECT o.id, o.kind, o.business_key, o.serial_key, o.state, o.step, o.attempts, o.next_attempt_at,
               o.created_at, o.last_error_code, o.last_error_message,
               (SELECT MIN(x.id) FROM mi_outbox x
                 WHERE x.serial_key = o.serial_key AND x.id < o.id
                   AND x.state NOT IN ('done', 'failed', 'resolved')) AS waits_behind_id
          FROM mi_outbox o WHERE o.state IN ('pending', 'in_doubt')) p;

CREATE VIEW mi_v_in_flight AS
SELECT id, kind, business_key, step, lease_owner, lease_expires_at, current_call, attempts, updated_at,
       floor(EXTRACT(EPOCH FROM now() - created_at))::bigint AS age_seconds
  FROM mi_outbox WHERE state = 'running';

CREATE VIEW mi_v_held AS
SELECT id, kind, business_key, serial_key, step, attempts, last_error_code AS reason_code,
       last_error_message AS reason, updated_at,
       floor(EXTRACT(EPOCH FROM now() - created_at))::bigint AS age_seconds, current_call
  FROM mi_outbox WHERE state = 'held';

CREATE VIEW mi_v_failed AS
SELECT o.id, o.kind, o.business_key, o.step, o.finished_at, o.last_error_code, o.last_error_message,
       floor(EXTRACT(EPOCH FROM now() - o.created_at))::bigint AS age_seconds
  FROM mi_outbox o WHERE o.state = 'failed';

CREATE VIEW mi_v_today AS
SELECT o.kind, o.state, count(*) AS requests,
       sum(i.total_amount) AS total_amount
  FROM mi_outbox o
  LEFT JOIN mi_inbox i ON i.outbox_id = o.id AND i.id = (SELECT max(id) FROM mi_inbox x WHERE x.outbox_id = o.id)
 WHERE o.created_at >= date_trunc('day', now())
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
    outbox_id        BIGINT        NOT NULL REFERENCES mi_outbox (id),
    name             VARCHAR(64)   NOT NULL,
    value            VARCHAR(2000) NOT NULL,
    created_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT mi_secret_pk PRIMARY KEY (outbox_id, name)
);

-- Migration 004: the order book and daily reconciliation (docs/reconciliation.md).
-- mi_order: one row per payment, kept by the daemon from the inbox rows it writes, in the
-- same transaction (bridge/db/orderbook.py); mi_order_refund: its refunds, reversals and
-- cancellations. Purge never deletes either. mi_recon_run / mi_recon_item / mi_channel_bill:
-- the daily reconciliation; views show the latest completed run of each day and platform.
-- Days are yyyy-MM-dd in China time (UTC+8), the day the platforms' statements use.
CREATE TABLE mi_order (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    refund_count     INTEGER       NOT NULL DEFAULT 0,
    settle_day       VARCHAR(10)   NOT NULL,
    settled_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    last_refund_at   TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT mi_order_key UNIQUE (platform_order_id, platform),
    CONSTRAINT mi_order_status_ck CHECK (status IN ('paid','partly_refunded','refunded','reversed','cancelled'))
);
CREATE INDEX mi_order_day_ix ON mi_order (settle_day, platform, id);
CREATE INDEX mi_order_business_ix ON mi_order (business_key);
CREATE INDEX mi_order_trade_ix ON mi_order (out_trade_no);

CREATE TABLE mi_order_refund (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    refunded_at      TIMESTAMPTZ   NOT NULL DEFAULT now(),
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
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recon_day        VARCHAR(10)   NOT NULL,
    platform         VARCHAR(16)   NOT NULL,
    state            VARCHAR(16)   NOT NULL DEFAULT 'running',
    active_key       VARCHAR(40)   NOT NULL,
    owner            VARCHAR(80)   NOT NULL,
    step             VARCHAR(40),
    progress_done    INTEGER       NOT NULL DEFAULT 0,
    progress_total   INTEGER,
    balanced         SMALLINT,
    items_total      INTEGER       NOT NULL DEFAULT 0,
    items_differ     INTEGER       NOT NULL DEFAULT 0,
    digest           VARCHAR(64),
    report_outbox_id BIGINT,
    detail_json      TEXT,
    error_message    VARCHAR(1000),
    started_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    heartbeat_at     TIMESTAMPTZ   NOT NULL DEFAULT now(),
    finished_at      TIMESTAMPTZ,
    CONSTRAINT mi_recon_run_active UNIQUE (active_key),
    CONSTRAINT mi_recon_run_state_ck CHECK (state IN ('running','done','failed','abandoned'))
);
CREATE INDEX mi_recon_run_day_ix ON mi_recon_run (recon_day, platform, state);

-- One row per order (setl_id, payOrdId, or a channel's out_trade_no) and leg of a run.
CREATE TABLE mi_recon_item (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id           BIGINT        NOT NULL REFERENCES mi_recon_run (id),
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
    CONSTRAINT mi_recon_item_class_ck CHECK (diff_class IN ('balanced','hospital_only','platform_only',
                                                            'channel_only','amount_differs','unchecked'))
);
CREATE INDEX mi_recon_item_ref_ix ON mi_recon_item (run_id, channel_ref);

-- The WeChat / Alipay bill rows a run loaded (+ payments, - refunds, yuan).
CREATE TABLE mi_channel_bill (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id           BIGINT        NOT NULL REFERENCES mi_recon_run (id),
    channel          VARCHAR(16)   NOT NULL,
    bill_day         VARCHAR(10)   NOT NULL,
    line_no          INTEGER       NOT NULL,
    row_type         VARCHAR(16)   NOT NULL,
    out_trade_no     VARCHAR(64)   NOT NULL,
    trade_no         VARCHAR(64),
    out_refund_no    VARCHAR(64),
    refund_id        VARCHAR(64),
    amount           DECIMAL(16,2) NOT NULL,
    trade_state      VARCHAR(32),
    trade_time       VARCHAR(19),
    CONSTRAINT mi_channel_bill_line UNIQUE (run_id, channel, line_no)
);
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
    sort_order       INTEGER,
    source           VARCHAR(16)   NOT NULL,
    updated_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT mi_insured_region_pk PRIMARY KEY (admdvs),
    CONSTRAINT mi_insured_region_admdvs_ck CHECK (admdvs ~ '^[0-9]{6}$'),
    CONSTRAINT mi_insured_region_name_ck CHECK (length(btrim(name)) > 0),
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
