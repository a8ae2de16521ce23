-- mibridge: install into a PostgreSQL (12+) HIS database.
-- Run by hand:   psql -v ON_ERROR_STOP=1 -d hisdb -f sql/postgresql/install.sql
-- or:            mibridge db install --url postgresql://dba@host/hisdb
-- Creates only objects whose names start with mi_. Safe to read top to bottom;
-- sql/postgresql/uninstall.sql removes everything again.

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
    CONSTRAINT mi_journal_outcome_ck CHECK (outcome IS NULL OR outcome IN ('ok','rejected','unknown'))
);
CREATE INDEX mi_journal_outbox_ix ON mi_journal (outbox_id);

-- Insurance identity written back for the HIS (one row per HIS patient).
CREATE TABLE mi_identity (
    his_patient_id   VARCHAR(64)   PRIMARY KEY,
    psn_no           VARCHAR(40)   NOT NULL,
    insuplc_admdvs   VARCHAR(12),
    insutype         VARCHAR(12),
    benefit          VARCHAR(40),
    psn_cert_type    VARCHAR(8),
    source_outbox_id BIGINT,
    updated_at       TIMESTAMPTZ   NOT NULL DEFAULT now()
);

-- Audit trail of every human action (requeue, resolve) and repair.
CREATE TABLE mi_audit (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id        BIGINT        NOT NULL REFERENCES mi_outbox (id),
    action           VARCHAR(40)   NOT NULL,
    actor            VARCHAR(64)   NOT NULL,
    note             VARCHAR(1000),
    at               TIMESTAMPTZ   NOT NULL DEFAULT now()
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

-- Validation that holds however a row arrives (mi_enqueue or a plain INSERT
-- from an HIS trigger): bad input is refused to the HIS, nothing is inserted.
CREATE FUNCTION mi_outbox_validate() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    doc jsonb;
    total text;
BEGIN
    IF NEW.business_key IS NULL OR btrim(NEW.business_key) = '' THEN
        RAISE EXCEPTION 'mibridge: business_key is required' USING ERRCODE = '22023';
    END IF;
    IF NEW.serial_key IS NULL OR btrim(NEW.serial_key) = '' THEN
        NEW.serial_key := NEW.business_key;
    END IF;
    BEGIN
        doc := NEW.payload::jsonb;
    EXCEPTION WHEN others THEN
        RAISE EXCEPTION 'mibridge: payload is not valid JSON' USING ERRCODE = '22023';
    END;
    IF jsonb_typeof(doc) <> 'object' THEN
        RAISE EXCEPTION 'mibridge: payload must be a JSON object' USING ERRCODE = '22023';
    END IF;
    total := doc ->> 'total_amount';
    IF total IS NOT NULL THEN
        IF total !~ '^[0-9]+(\.[0-9]{1,2})?$' THEN
            RAISE EXCEPTION 'mibridge: total_amount must be a non-negative amount with at most 2 decimals, got %', total
                USING ERRCODE = '22023';
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER mi_outbox_validate_tg BEFORE INSERT ON mi_outbox
    FOR EACH ROW EXECUTE FUNCTION mi_outbox_validate();

-- Wake the daemon at once (it LISTENs on mi_outbox; polling stays as the fallback).
CREATE FUNCTION mi_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mi_outbox', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER mi_outbox_notify_tg AFTER INSERT ON mi_outbox
    FOR EACH ROW EXECUTE FUNCTION mi_outbox_notify();

-- The one call the HIS makes per request. Returns the outbox id.
-- The same (kind, business_key) with the same payload returns the existing id
-- (a retried HIS transaction is harmless); with a different payload it is an error.
CREATE FUNCTION mi_enqueue(p_kind VARCHAR, p_business_key VARCHAR, p_serial_key VARCHAR, p_payload TEXT)
RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    new_id BIGINT;
    old_payload TEXT;
BEGIN
    INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
    VALUES (p_kind, p_business_key, COALESCE(p_serial_key, p_business_key), p_payload)
    ON CONFLICT (kind, business_key) DO NOTHING
    RETURNING id INTO new_id;
    IF new_id IS NOT NULL THEN
        RETURN new_id;
    END IF;
    SELECT id, payload INTO new_id, old_payload FROM mi_outbox
     WHERE kind = p_kind AND business_key = p_business_key;
    IF old_payload::jsonb IS DISTINCT FROM p_payload::jsonb THEN
        RAISE EXCEPTION 'mibridge: % request % already exists with a different payload (outbox id %)',
            p_kind, p_business_key, new_id USING ERRCODE = '23505';
    END IF;
    RETURN new_id;
END $$;

-- The HIS marks an inbox row as taken ('accepted') or refused ('rejected').
-- A refused settlement is repaired by the daemon (refund/reversal), see docs/.
CREATE FUNCTION mi_inbox_consume(p_id BIGINT, p_ack VARCHAR DEFAULT 'accepted')
RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mi_inbox SET consumed_at = now(), his_ack = p_ack
     WHERE id = p_id AND consumed_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'mibridge: inbox row % does not exist or was already consumed', p_id
            USING ERRCODE = '22023';
    END IF;
END $$;

-- Views for DBAs --------------------------------------------------------
CREATE VIEW mi_v_pending AS
SELECT id, kind, business_key, serial_key, state, step, attempts, next_attempt_at, created_at,
       now() - created_at AS age, last_error_code, last_error_message
  FROM mi_outbox WHERE state IN ('pending', 'in_doubt');

CREATE VIEW mi_v_in_flight AS
SELECT id, kind, business_key, step, lease_owner, lease_expires_at, current_call, attempts, updated_at
  FROM mi_outbox WHERE state = 'running';

CREATE VIEW mi_v_held AS
SELECT id, kind, business_key, serial_key, step, attempts, last_error_code AS reason_code,
       last_error_message AS reason, updated_at
  FROM mi_outbox WHERE state = 'held';

CREATE VIEW mi_v_failed AS
SELECT o.id, o.kind, o.business_key, o.step, o.finished_at, o.last_error_code, o.last_error_message
  FROM mi_outbox o WHERE o.state = 'failed';

CREATE VIEW mi_v_today AS
SELECT o.kind, o.state, count(*) AS requests,
       sum(i.total_amount) AS total_amount
  FROM mi_outbox o
  LEFT JOIN mi_inbox i ON i.outbox_id = o.id AND i.id = (SELECT max(id) FROM mi_inbox x WHERE x.outbox_id = o.id)
 WHERE o.created_at >= date_trunc('day', now())
 GROUP BY o.kind, o.state;

-- mibridge migration 003: mi_secret, the daemon's own store of tokens and ID numbers.
-- A flow's secrets (the mobile-pay payToken, a face-identified patient's ID number,
-- name, ecToken and authNo) live here instead of in mi_outbox.flow_data, which the HIS
-- and DBAs read. Only the daemon reads or writes it (grants.sql gives the HIS nothing
-- on it). A row's secrets go when the request is final, except what a later request
-- needs (a payment's payToken for its refund), and with the row when it is purged.
CREATE TABLE mi_secret (
    outbox_id        BIGINT        NOT NULL REFERENCES mi_outbox (id),
    name             VARCHAR(64)   NOT NULL,
    value            VARCHAR(2000) NOT NULL,
    created_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT mi_secret_pk PRIMARY KEY (outbox_id, name)
);
