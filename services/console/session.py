"""Who is looking: a server-side session; the cookie holds only its random id.

- **Sign-in** (`POST /console/login`) is taken only from the console's own page: the
  browser's `Sec-Fetch-Site`, when sent, must be `same-origin` (or `none`) and its
  `Origin`, when sent, the server's own host; and the form must carry the login token
  that the sign-in page put both in the form and in a `runledger_login` cookie
  (HttpOnly, SameSite=Strict, path `/console/login`): a double submit that another
  site's form can forge neither half of. So a cross-site form cannot sign a victim into
  the attacker's organisation.
- The key is checked, then a **session** is made (session_store.py): the cookie
  `runledger_console` (HttpOnly, SameSite=Strict, path `/console`) carries 32 random
  bytes; the control store keeps only their SHA-256 with the organisation, the key id,
  the times. The key itself is never kept by the browser.
- `Secure` is set on both cookies unless the server is plainly on loopback http (the
  request came over http, to a loopback host, from a loopback client):
  `RUNLEDGER_COOKIE_SECURE=auto` (default), `true` or `false`. Behind a TLS proxy, let
  uvicorn trust its `X-Forwarded-Proto` (`runledger serve --forwarded-allow-ips`), or
  set `true`.
- A session ends at sign-out, when its key is revoked or rotated, after
  `RUNLEDGER_SESSION_IDLE_TIMEOUT` without a request, and `RUNLEDGER_SESSION_MAX_AGE`
  after sign-in whatever happens; every replica sees it within the session cache's TTL
  (2 s).
- Forms that change something carry a CSRF token derived from the session id (an
  HMAC), checked with the same Origin rules before anything happens.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from ..api.auth import Caller
from ..api.context import Ctx, context
from ..api.errors import ApiError
from . import session_store
from .session_store import SessionCache

COOKIE = "runledger_console"
LOGIN_COOKIE = "runledger_login"
PATH, LOGIN_PATH = "/console", "/console/login"
LOGIN_TOKEN_AGE = 3600  # seconds a sign-in page's token stays valid
_CSRF_CONTEXT = b"runledger console csrf v2"
_SAME_SITE = {"same-origin", "none"}  # `none`: the user opened it themselves


class SignInRequired(Exception):
    """Raised by `console_ctx` without a valid session; answered with a redirect."""


def install_sessions(app) -> None:
    """The session cache, on the app (one per process)."""
    runtime = app.state.runtime
    idle = timedelta(seconds=runtime.settings.session_idle_timeout)
    app.state.console_sessions = SessionCache(runtime.control or runtime.engine, idle)


async def key_record(request: Request, secret: str):
    record = await request.app.state.keys.get(secret)
    return record if record is not None and record.revoked_at is None else None


async def console_ctx(request: Request) -> Ctx:
    """The caller of a console page, from the session cookie (the API's Ctx)."""
    session_id = request.cookies.get(COOKIE)
    session = await request.app.state.console_sessions.get(session_id) if session_id else None
    if session is None:
        raise SignInRequired()
    request.state.caller = Caller(session.key_id, session.org_id, session.role)
    request.state.csrf = csrf_token(session_id)
    return await context(request)


def csrf_token(session_id: str) -> str:
    return hmac.new(session_id.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form body (the console posts nothing else)."""
    parsed = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in parsed.items()}


def _refused(what: str) -> ApiError:
    return ApiError(403, "csrf_failed", f"{what} was not sent by this console's own page; reload it and retry")


def check_origin(request: Request) -> None:
    """403 unless the browser says the form came from this site (headers it sends itself,
    which a page cannot forge). `Origin: null` (what a browser sends from our pages, whose
    Referrer-Policy is no-referrer) says nothing; clients that send neither header
    (scripts) rely on the tokens."""
    fetched_from = request.headers.get("sec-fetch-site")
    if fetched_from is not None and fetched_from not in _SAME_SITE:
        raise _refused("this form")
    origin = request.headers.get("origin")
    if origin not in (None, "null") and urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
        raise _refused("this form")


async def checked_form(request: Request) -> dict[str, str]:
    """The form, once its origin and CSRF token match the session's; else a 403."""
    check_origin(request)
    fields = await form_fields(request)
    expected = getattr(request.state, "csrf", None)
    if not expected or not hmac.compare_digest(fields.get("csrf", ""), expected):
        raise ApiError(403, "csrf_failed", "this form is stale or was not sent by the console; reload and retry")
    return fields


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


def remember_login_token(request: Request, response: Response, token: str) -> None:
    """The sign-in form's token, in its cookie too (double submit)."""
    response.set_cookie(LOGIN_COOKIE, token, max_age=LOGIN_TOKEN_AGE, path=LOGIN_PATH, httponly=True,
                        samesite="strict", secure=secure_cookies(request))


async def checked_login(request: Request) -> dict[str, str]:
    """The sign-in form, once its origin and login token are this console's own."""
    check_origin(request)
    fields = await form_fields(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(fields.get("login_token", ""), expected):
        raise _refused("this sign-in")
    return fields


def secure_cookies(request: Request) -> bool:
    setting = request.app.state.runtime.settings.cookie_secure
    if setting != "auto":
        return setting == "true"
    return not plainly_loopback(request)


def plainly_loopback(request: Request) -> bool:
    """http, to a loopback host name or address, from a loopback client: a developer's
    own machine, where a Secure cookie would not be sent back."""
    if request.url.scheme != "http":
        return False
    host = (request.url.hostname or "").strip("[]").lower()
    client = request.client.host if request.client else ""
    return _loopback(host) and _loopback(client)


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def signed_in(request: Request, key, to: str) -> RedirectResponse:
    settings = request.app.state.runtime.settings
    engine = request.app.state.console_sessions.engine
    await session_store.expire(engine, timedelta(seconds=settings.session_idle_timeout))
    session_id = await session_store.start(engine, key, timedelta(seconds=settings.session_max_age))
    response = RedirectResponse(to, status_code=303)
    response.set_cookie(COOKIE, session_id, path=PATH, httponly=True, samesite="strict",
                        secure=secure_cookies(request))
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN_PATH, httponly=True, samesite="strict")
    return response


async def signed_out(request: Request, to: str) -> RedirectResponse:
    session_id = request.cookies.get(COOKIE)
    if session_id:
        await session_store.end(request.app.state.console_sessions.engine, session_id)
        request.app.state.console_sessions.forget(session_id)
    response = RedirectResponse(to, status_code=303)
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
    return response
