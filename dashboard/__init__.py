"""The staff dashboard and the children's portal: one Flask app, one blueprint per area.

`create_app(config, overrides)` follows Flask's tutorial app: defaults in code, the appliance's
configuration file (its `dashboard:` and `portal:` sections), then test overrides.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from jinja2 import ChoiceLoader, FileSystemLoader

from appliance.config import Config
from appliance.in_force.head_office import load_config_in_force
from appliance.pages import template_loader

SECRET_KEY_FILE = "dashboard.key"
TLS_COOKIE_PREFIX = "__Host-"  # browsers take it only over HTTPS, for this host, never from plain HTTP


class PerSchemeSessions(SecureCookieSessionInterface):
    """A session cookie of its own for HTTPS (Secure, `__Host-` prefixed) and for plain HTTP: the staff
    pages' HTTPS cookie is never sent over the children's plain-HTTP port, and a cookie set over plain
    HTTP is never taken over HTTPS (cookies do not tell ports apart; the scheme they can)."""

    def get_cookie_name(self, app: Flask) -> str:
        name = str(app.config["SESSION_COOKIE_NAME"])
        return TLS_COOKIE_PREFIX + name if request.is_secure else name

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or bool(app.config["SESSION_COOKIE_SECURE"])


def _secret_key(data_dir: Path) -> bytes:
    """The key that signs staff sessions: made once per appliance, readable by its owner only."""
    path = data_dir / SECRET_KEY_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def _install_wording(app: Flask) -> None:
    """The plain-words filters every staff page uses: `reasons|why` (a verdict's reasons in sentences)
    `ts|when` (a time, or a store timestamp, in the centre's zone and format) and `user|staff_name`."""
    from datetime import datetime

    from dashboard.database import local_time, staff_name, vocabulary
    from dashboard.wording import centre_time, why

    def why_filter(reasons: Any) -> str:
        return why(reasons, vocabulary())

    def when_filter(moment: float | datetime) -> str:
        if isinstance(moment, datetime):
            moment = moment.timestamp() if moment.tzinfo is not None else moment
        return centre_time(moment if isinstance(moment, datetime) else local_time(moment))

    app.add_template_filter(why_filter, "why")
    app.add_template_filter(when_filter, "when")
    app.add_template_filter(staff_name, "staff_name")  # `user|staff_name`: who did it, as staff know them


def create_app(config: Config | None = None, overrides: Mapping[str, Any] | None = None) -> Flask:
    """The dashboard over `config` (default: the appliance's configuration file)."""
    from dashboard import (
        alerts,
        audit_views,
        auth,
        controls,
        health,
        incidents,
        overview,
        people,
        policy_views,
        portal,
        reports,
        review,
        security,
    )
    from dashboard.database import close_store

    config = config or load_config_in_force()
    app = Flask(__name__)
    # The children's pages' skeleton (children/base.html), shared with the proxy's block page.
    app.jinja_loader = ChoiceLoader([FileSystemLoader(Path(app.root_path, "templates")), template_loader()])
    settings = config.dashboard
    app.config.update(
        APPLIANCE=config,
        SECRET_KEY=_secret_key(config.data_dir),
        SESSION_COOKIE_NAME="appliance_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
        MAX_CONTENT_LENGTH=256 * 1024,  # the largest form is a profile file
        STORE_PATH=config.events_path,
    )
    if overrides:
        app.config.update(overrides)
    app.session_interface = PerSchemeSessions()
    security.install(app)
    _install_wording(app)
    health.install(app)
    app.teardown_appcontext(close_store)
    areas = (
        auth,
        overview,
        review,
        alerts,
        controls,
        incidents,
        people,
        policy_views,
        reports,
        audit_views,
        portal,
    )
    for module in areas:
        app.register_blueprint(module.bp)
    return app
