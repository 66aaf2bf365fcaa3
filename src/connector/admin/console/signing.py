"""Who is signed in to the console: Entra ID sign-in, the session cookie, CSRF, sign-out.

- Sign-in is MSAL's authorization-code flow with PKCE (``graph_sync.sign_in``). The flow
  (state, nonce, PKCE verifier) waits in a short-lived signed cookie until Entra sends the
  browser back to ``/admin/signed-in``.
- The session is a cookie signed with ``DEALBRIDGE_ADMIN_SESSION_KEY`` (itsdangerous): who,
  when they signed in, and their CSRF token. HttpOnly, SameSite=Lax, Secure — except over
  plain http on localhost / 127.0.0.1, where a browser would drop a Secure cookie (the demo and
  the tests; documented in the admin guide). It lasts ``DEALBRIDGE_ADMIN_SESSION_MINUTES``.
- Only the holders of the app role ``DealBridge.Admin`` and the UPNs in ``DEALBRIDGE_ADMINS``
  get in. Every POST carries the session's CSRF token in a hidden field.
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, g, render_template, request, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import BaseModel, ConfigDict, ValidationError

from connector.settings import ENV_PREFIX, SETTINGS_EXTENSION, Settings, current_settings
from graph_sync.sign_in import AuthCodeSignIn, SignInError

ADMIN_ROLE = "DealBridge.Admin"
"""The app role (declared on the app registration) that lets a user into the console."""
SESSION_COOKIE = "dealbridge_admin"
FLOW_COOKIE = "dealbridge_admin_sign_in"
FLOW_MINUTES = 10
CSRF_FIELD = "csrf"
_EXTENSION = "dealbridge.admin_sign_in"
_PUBLIC = {"console.sign_in", "console.signed_in", "console.signed_out", "console.static"}
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


class Admin(BaseModel):
    """The signed-in admin, as the session cookie carries them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    username: str
    """UPN, lower-case: the ``actor`` of audit rows."""
    name: str
    object_id: str
    at: float
    """When they signed in (epoch seconds): the session ends ``admin_session_minutes`` later."""
    csrf: str
    """The token every form of this session carries."""


def _serializer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    assert settings.admin_session_key is not None
    return URLSafeTimedSerializer(settings.admin_session_key.get_secret_value(), salt=salt)


def session_cookie(settings: Settings, admin: Admin) -> str:
    """The signed value of the session cookie for ``admin``."""
    return str(_serializer(settings, "dealbridge.admin.session").dumps(admin.model_dump()))


def new_admin(username: str, name: str, object_id: str, *, at: float | None = None) -> Admin:
    return Admin(
        username=username.lower(),
        name=name,
        object_id=object_id,
        at=time.time() if at is None else at,
        csrf=secrets.token_urlsafe(24),
    )


def signed_in_admin(settings: Settings, now: float | None = None) -> Admin | None:
    """The admin of this request's session cookie, if it is ours and not expired."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw or settings.admin_session_key is None:
        return None
    try:
        data = _serializer(settings, "dealbridge.admin.session").loads(raw)
        admin = Admin.model_validate(data)
    except (BadSignature, ValidationError, TypeError):
        return None
    now = time.time() if now is None else now
    if now - admin.at > settings.admin_session_minutes * 60 or admin.at > now + 60:
        return None
    return admin


def may_enter(settings: Settings, username: str, roles: tuple[str, ...]) -> bool:
    """Holds the app role, or is listed in DEALBRIDGE_ADMINS."""
    listed = {a.strip().lower() for a in settings.admins}
    return ADMIN_ROLE in roles or username.lower() in listed


def _secure() -> bool:
    """Secure cookies, except plain http on this machine (the demo, the tests)."""
    host = (urlsplit(request.host_url).hostname or "").lower()
    return request.scheme == "https" or host not in _LOCAL_HOSTS


def _set_cookie(answer: Response, name: str, value: str, max_age: int) -> None:
    answer.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/admin",
        httponly=True,
        secure=_secure(),
        samesite="Lax",
    )


def _sign_in_client(app: Flask) -> AuthCodeSignIn:
    client: AuthCodeSignIn | None = app.extensions.get(_EXTENSION)
    if client is None:
        settings: Settings = app.extensions[SETTINGS_EXTENSION]
        assert settings.tenant_id
        assert settings.client_id
        assert settings.client_secret
        client = AuthCodeSignIn(
            settings.tenant_id,
            settings.client_id,
            settings.client_secret,
            login_base_url=settings.login_base_url,
        )
        app.extensions[_EXTENSION] = client
    return client


def sign_in_problems(settings: Settings) -> list[str]:
    """What is missing before anyone can sign in to the console."""
    problems = []
    if settings.admin_session_key is None:
        problems.append(
            f"{ENV_PREFIX}ADMIN_SESSION_KEY: missing; 32 or more random characters that sign "
            "the console's session cookie"
        )
    elif len(settings.admin_session_key.get_secret_value()) < 32:
        problems.append(f"{ENV_PREFIX}ADMIN_SESSION_KEY: too short; use 32 or more characters")
    for name, value in (("TENANT_ID", settings.tenant_id), ("CLIENT_ID", settings.client_id)):
        if not value:
            problems.append(f"{ENV_PREFIX}{name}: missing; the console signs in with Entra ID")
    if settings.client_secret is None:
        problems.append(
            f"{ENV_PREFIX}CLIENT_SECRET: missing; the console's sign-in redeems codes with the "
            "app's client secret"
        )
    return problems


def _redirect_uri(settings: Settings) -> str:
    base = settings.public_url or request.host_url.rstrip("/")
    return f"{base}/admin/signed-in"


def _safe_next(value: str | None) -> str:
    """Only a path of the console: never another site after sign-in."""
    if value and value.startswith("/admin") and not value.startswith("//"):
        return value
    return "/admin/"


def redirect(location: str, code: int = 302) -> Response:
    """A redirect as Flask's Response (flask.redirect is typed as werkzeug's)."""
    return Response(status=code, headers={"Location": location})


def _page(template: str, status: int, **context: Any) -> Response:
    return Response(render_template(template, **context), status=status, mimetype="text/html")


console = Blueprint(
    "console",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
"""The console's blueprint: the sign-in routes here, the pages in ``pages``."""


@console.before_request
def _guard() -> Response | None:
    settings = current_settings()
    g.admin = signed_in_admin(settings)
    g.csrf_field = CSRF_FIELD
    if request.endpoint in _PUBLIC:
        return None
    if g.admin is None:
        if request.method == "GET":
            return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
        return _page("console/refused.html", 401, reason="signed_out")
    if request.method == "POST":
        sent = request.form.get(CSRF_FIELD, "")
        if not sent or not secrets.compare_digest(sent, g.admin.csrf):
            return _page("console/refused.html", 400, reason="csrf")
    return None


@console.get("/sign-in")
def sign_in() -> Response:
    settings = current_settings()
    problems = sign_in_problems(settings)
    if problems:
        return _page("console/refused.html", 503, reason="not_configured", problems=problems)
    client = _sign_in_client(current_app._get_current_object())  # type: ignore[attr-defined]
    try:
        flow, url = client.begin(_redirect_uri(settings), request.args.get("login_hint"))
    except SignInError as exc:
        return _page("console/refused.html", 502, reason="entra", error=exc.description)
    kept = _serializer(settings, "dealbridge.admin.flow").dumps(
        {"flow": flow, "next": _safe_next(request.args.get("next"))}
    )
    answer = redirect(url)
    _set_cookie(answer, FLOW_COOKIE, str(kept), FLOW_MINUTES * 60)
    return answer


@console.get("/signed-in")
def signed_in() -> Response:
    settings = current_settings()
    if sign_in_problems(settings):
        return redirect(url_for("console.sign_in"))
    raw = request.cookies.get(FLOW_COOKIE, "")
    try:
        kept = _serializer(settings, "dealbridge.admin.flow").loads(raw, max_age=FLOW_MINUTES * 60)
        flow, next_path = dict(kept["flow"]), _safe_next(kept.get("next"))
    except (BadSignature, KeyError, TypeError):
        return _page("console/refused.html", 400, reason="flow")
    if "error" in request.args:
        error = request.args.get("error_description") or request.args["error"]
        return _page("console/refused.html", 401, reason="entra", error=error)
    try:
        client = _sign_in_client(current_app._get_current_object())  # type: ignore[attr-defined]
        person = client.finish(flow, request.args.to_dict())
    except SignInError as exc:
        return _page("console/refused.html", 401, reason="entra", error=exc.description)
    if not may_enter(settings, person.username, person.roles):
        answer = _page("console/refused.html", 403, reason="role", username=person.username)
        answer.delete_cookie(FLOW_COOKIE, path="/admin")
        return answer
    admin = new_admin(person.username, person.name, person.object_id)
    answer = redirect(next_path)  # at once: the code leaves the address bar and history
    answer.delete_cookie(FLOW_COOKIE, path="/admin")
    _set_cookie(
        answer,
        SESSION_COOKIE,
        session_cookie(settings, admin),
        settings.admin_session_minutes * 60,
    )
    return answer


@console.post("/sign-out")
def sign_out() -> Response:
    answer = redirect(url_for("console.signed_out"))
    answer.delete_cookie(SESSION_COOKIE, path="/admin")
    return answer


@console.get("/signed-out")
def signed_out() -> Response:
    return _page("console/refused.html", 200, reason="signed_out_now")


@console.app_context_processor
def _admin_context() -> dict[str, Any]:
    return {"csrf_field": CSRF_FIELD}
