"""The web console: served by the daemon on its own listener ([console], off by
default, 127.0.0.1:8780), behind a login with two roles:

    viewer      every page
    operator    also requeue, resolve and cancel a request (a note each; audited
                in mi_audit as "<login>@console", through the same database
                functions a DBA runs: mi_requeue, mi_resolve, mi_cancel)

Why Flask (https://flask.palletsprojects.com): server-rendered Jinja2 pages, no
front-end build; sessions, cookies and escaping done by a well-kept library.
CSRF tokens on every form by Flask-WTF's CSRFProtect
(https://flask-wtf.readthedocs.io/en/1.2.x/csrf/): a POST without a valid token
is refused before any view runs.  Passwords: werkzeug.security (auth.py).

Pages (PAGES, the navigation): Overview, Held and in doubt, a request's detail
with its masked journal, Orders (orders.py: the order book, mi_v_orders, with
each payment's refunds and a CSV export) and Reconciliation (reconciliation.py:
each day's result and its differences with what to do).  Search forms are
checked by WTForms (filters.py) before any query runs.

No traceback ever reaches a page: every error is an error page in words, the
details go to the log.
"""
from __future__ import annotations

import datetime as dt
import secrets
from typing import Callable, Optional

from flask import (Flask, abort, flash, g, redirect, render_template, request, session, url_for)
from flask_wtf.csrf import CSRFError, CSRFProtect
from loguru import logger
from werkzeug.exceptions import HTTPException

from daemon.config import Config, ConsoleConfig
from daemon.console import data
from daemon.console.auth import Sessions, Throttle, User, check_password, load_secret_key, load_users
from daemon.console.i18n import Words

# The navigation: (endpoint, text key); a page is added here and in its module.
PAGES = [("overview", "overview"), ("held", "held_rows"), ("orders", "orders"),
         ("reconciliation", "reconciliation")]


def create_app(cfg: ConsoleConfig, users: dict[str, User], secret_key: str, new_store: Callable,
               daemon=None, platforms: Optional[dict] = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_NAME="mibridge_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=cfg.secure_cookies,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(minutes=cfg.session_minutes),
        WTF_CSRF_TIME_LIMIT=cfg.session_minutes * 60,
        MAX_CONTENT_LENGTH=64 * 1024,
        PROPAGATE_EXCEPTIONS=False,
        TRAP_HTTP_EXCEPTIONS=False,
    )
    CSRFProtect(app)
    words = Words(cfg.language)
    sessions = Sessions(cfg.session_minutes * 60)
    throttle = Throttle(cfg.login_attempts, cfg.login_window_seconds)
    app.extensions["mibridge"] = {"sessions": sessions, "throttle": throttle, "users": users}

    @app.context_processor
    def _globals():
        return {"t": words, "pages": PAGES, "user": g.get("user"), "language": cfg.language}

    @app.template_filter("ago")
    def _ago(seconds) -> str:
        s = int(seconds or 0)
        if s < 120:
            return f"{s} s"
        if s < 7200:
            return f"{s // 60} min"
        if s < 172800:
            return f"{s // 3600} h"
        return f"{s // 86400} d"

    @app.template_filter("when")
    def _when(v) -> str:
        if v is None:
            return ""
        if isinstance(v, (int, float)):
            return dt.datetime.fromtimestamp(v).strftime("%Y-%m-%d %H:%M:%S")
        return str(v)[:19]

    # -- the database: one connection per request ---------------------------------
    def store():
        if "store" not in g:
            g.store = new_store()
        return g.store

    @app.teardown_request
    def _close(_exc):
        s = g.pop("store", None)
        if s is not None:
            s.close()

    # -- sign-in --------------------------------------------------------------------
    @app.before_request
    def _who():
        g.user = sessions.get(session.get("sid"))
        if request.endpoint in ("login", "static") or request.endpoint is None:
            return None
        if g.user is None:
            if session.get("sid"):
                session.clear()
                flash(words.plain("session_ended"))
            return redirect(url_for("login", next=request.full_path.rstrip("?") if request.method == "GET" else None))
        return None

    @app.after_request
    def _headers(resp):
        resp.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; "
                                "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    @app.route("/login", methods=["GET", "POST"])
    def login():
        error = None
        if request.method == "POST":
            name = (request.form.get("name") or "").strip()[:40]
            addr = request.remote_addr or "?"
            if throttle.blocked(name, addr):
                logger.warning("console: sign-in as {!r} from {} refused: too many failures", name, addr)
                error = "throttled"
            else:
                user = check_password(users, name, request.form.get("password") or "")
                if user is None:
                    throttle.failed(name, addr)
                    logger.warning("console: failed sign-in as {!r} from {}", name, addr)
                    error = "bad_login"
                else:
                    throttle.succeeded(name)
                    # A fresh session: nothing from before the sign-in survives
                    # (no session fixation), and a new id that only this login knows.
                    sessions.end(session.get("sid"))
                    session.clear()
                    session["sid"] = sessions.new(user)
                    session.permanent = True
                    logger.info("console: {} ({}) signed in from {}", user.name, user.role, addr)
                    nxt = request.args.get("next") or ""
                    # Only a path of ours, never another site.
                    if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
                        nxt = url_for("overview")
                    return redirect(nxt)
        return render_template("login.html", error=error), (401 if error else 200)

    @app.post("/logout")
    def logout():
        logger.info("console: {} signed out", g.user["name"])
        sessions.end(session.get("sid"))
        session.clear()
        flash(words.plain("signed_out"))
        return redirect(url_for("login"))

    # -- pages -----------------------------------------------------------------------
    @app.get("/")
    def overview():
        s = store()
        return render_template("overview.html", counts=data.counts(s), oldest=data.oldest_open(s),
                               held=data.held_and_in_doubt(s, ("held",), limit=50),
                               calls=data.calls_last_hour(s), notices=data.notices(s),
                               endpoint=_notice_endpoint(platforms or {}), jobs=_jobs(daemon))

    @app.get("/held")
    def held():
        return render_template("held.html", rows=data.held_and_in_doubt(store()))

    @app.get("/rows/<int:row_id>")
    def row(row_id: int):
        r = data.row(store(), row_id)
        if r is None:
            abort(404)
        return render_template("row.html", r=r)

    @app.get("/find")
    def find():
        key = (request.args.get("key") or "").strip()[:64]
        rows = data.find(store(), key) if key else []
        if len(rows) == 1:
            return redirect(url_for("row", row_id=rows[0]["id"]))
        return render_template("find.html", key=key, rows=rows)

    from daemon.console import orders, reconciliation
    orders.register(app, store, words)
    reconciliation.register(app, store, words, platforms or {})

    # -- actions (operator only; CSRFProtect has checked the token) --------------------
    def _act(row_id: int, what: str):
        if not g.user or g.user["role"] != "operator":
            logger.warning("console: {} ({}) tried to {} row {}: refused (operator only)",
                           g.user and g.user["name"], g.user and g.user["role"], what, row_id)
            abort(403)
        note = (request.form.get("note") or "").strip()
        if not note:
            flash(f"{words.plain('refused')}: {words.plain('note_required')}", "error")
            return redirect(url_for("row", row_id=row_id))
        actor = f"{g.user['name']}@console"
        from bridge.db.store import AdminRefused
        try:
            result = getattr(store(), what)(row_id, actor, note)
        except AdminRefused as exc:
            flash(f"{words.plain('refused')}: {exc}", "error")
            return redirect(url_for("row", row_id=row_id))
        logger.info("console: {} {} row {}: {}", actor, what, row_id, result or "done")
        flash(f"{words.plain('done_' + what)}" + (f": {result}" if what == "requeue" else ""), "ok")
        return redirect(url_for("row", row_id=row_id))

    @app.post("/rows/<int:row_id>/requeue")
    def requeue(row_id: int):
        return _act(row_id, "requeue")

    @app.post("/rows/<int:row_id>/resolve")
    def resolve(row_id: int):
        return _act(row_id, "resolve")

    @app.post("/rows/<int:row_id>/cancel")
    def cancel(row_id: int):
        return _act(row_id, "cancel")

    # -- errors: words on a page, details in the log ------------------------------------
    @app.errorhandler(CSRFError)
    def _csrf(exc):
        logger.warning("console: {} {} from {} refused: {}", request.method, request.path, request.remote_addr,
                       exc.description)
        return render_template("error.html", code=400, key="csrf"), 400

    @app.errorhandler(HTTPException)
    def _http(exc):
        key = f"error_{exc.code}" if f"error_{exc.code}" in _KNOWN else "error"
        return render_template("error.html", code=exc.code, key=key), exc.code

    @app.errorhandler(Exception)
    def _any(exc):
        store_obj = g.get("store")
        disconnected = store_obj is not None and store_obj.is_disconnect(exc)
        logger.opt(exception=exc).error("console: {} {} failed", request.method, request.path)
        return render_template("error.html", code=503 if disconnected else 500,
                               key="database_error" if disconnected else "error_500"), \
            503 if disconnected else 500

    return app


_KNOWN = {"error_400", "error_403", "error_404", "error_405", "error_500"}


def _notice_endpoint(platforms: dict) -> Optional[dict]:
    mp = platforms.get("mobilepay") or {}
    if not mp.get("callback_listen"):
        return None
    return {"listen": mp.get("callback_listen"), "path": mp.get("callback_path", "")}


def _jobs(daemon) -> Optional[list[dict]]:
    sched = getattr(daemon, "scheduler", None)
    if sched is None:
        return None
    out = []
    for job in sched.get_jobs():
        last = daemon.job_runs.get(job.id) or {}
        out.append({"id": job.id, "name": job.name, "next": job.next_run_time, "last": last.get("at"),
                    "result": last.get("result")})
    return sorted(out, key=lambda j: j["name"])


def make_app(cfg: Config, daemon=None) -> Flask:
    """The console of a daemon, from its configuration (the secret and the
    password hashes are read here: a missing one stops the start with a message)."""
    c = cfg.console
    return create_app(c, load_users(c), load_secret_key(c), daemon.new_store if daemon else _store_of(cfg),
                      daemon=daemon, platforms=cfg.platforms)


def _store_of(cfg: Config):
    from bridge.db.store import Store

    return lambda: Store(cfg.database.url, cfg.database.password_env)


def check(cfg: Config) -> None:
    """Raise ConfigError now if the console could not start (used at build time)."""
    load_users(cfg.console)
    load_secret_key(cfg.console)


__all__ = ["create_app", "make_app", "check", "PAGES", "secrets"]
