-- mibridge migration 005 (admin) for PostgreSQL: from schema version 4 to 5.
-- Normally run by `mibridge db upgrade --url ...`. By hand:
--   psql -1 -v ON_ERROR_STOP=1 -d hisdb -f sql/postgresql/migrations/005_admin.sql
-- What changes (docs/operations.md, "Admin functions in SQL"):
--   * mi_requeue(id, note), mi_resolve(id, note), mi_cancel(id, note): what
--     `mibridge requeue|resolve|cancel` and the console do, for a DBA in SQL, with
--     the same rules (they are the one implementation; the daemon calls them too);
--     each is audited in mi_audit with the database login (db_login) and who
--     asked (actor: the optional third argument, else the login);
--   * mi_journal.unsafe: whether a journalled call was not safe to repeat (may have
--     moved money); NULL for calls journalled before, counted as unsafe;
--   * the DBA views: the same columns on every database, age_seconds in each;
--     mi_v_pending says why a row waits (waits_for, waits_behind_id) and shows an
--     error only while it belongs to the current step's tries; mi_v_today is ordered;
--   * an index on mi_journal (started_at) for "calls in the last hour".
-- Nothing here rewrites or deletes a row. The views are replaced in place
-- (CREATE OR REPLACE: new columns at the end), so their grants stay.

SELECT pg_catalog.set_config('search_path',
                             pg_catalog.quote_ident(pg_catalog.current_schema()) || ', pg_temp', false);

ALTER TABLE mi_journal ADD COLUMN unsafe SMALLINT;
ALTER TABLE mi_audit ADD COLUMN db_login VARCHAR(64);
CREATE INDEX mi_journal_started_ix ON mi_journal (started_at);

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
CREATE OR REPLACE VIEW mi_v_pending AS
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

CREATE OR REPLACE VIEW mi_v_in_flight AS
SELECT id, kind, business_key, step, lease_owner, lease_expires_at, current_call, attempts, updated_at,
       floor(EXTRACT(EPOCH FROM now() - created_at))::bigint AS age_seconds
  FROM mi_outbox WHERE state = 'running';

CREATE OR REPLACE VIEW mi_v_held AS
SELECT id, kind, business_key, serial_key, step, attempts, last_error_code AS reason_code,
       last_error_message AS reason, updated_at,
       floor(EXTRACT(EPOCH FROM now() - created_at))::bigint AS age_seconds, current_call
  FROM mi_outbox WHERE state = 'held';

CREATE OR REPLACE VIEW mi_v_failed AS
SELECT o.id, o.kind, o.business_key, o.step, o.finished_at, o.last_error_code, o.last_error_message,
       floor(EXTRACT(EPOCH FROM now() - o.created_at))::bigint AS age_seconds
  FROM mi_outbox o WHERE o.state = 'failed';

CREATE OR REPLACE VIEW mi_v_today AS
SELECT o.kind, o.state, count(*) AS requests,
       sum(i.total_amount) AS total_amount
  FROM mi_outbox o
  LEFT JOIN mi_inbox i ON i.outbox_id = o.id AND i.id = (SELECT max(id) FROM mi_inbox x WHERE x.outbox_id = o.id)
 WHERE o.created_at >= date_trunc('day', now())
 GROUP BY o.kind, o.state
 ORDER BY o.kind, o.state;

INSERT INTO mi_schema_version (version, name) VALUES (5, '005_admin');
