"""Who is looking: the API key kept in an HttpOnly, SameSite=Strict session cookie.

The cookie holds the key itself (never a URL, never local storage), scoped to
`/console`, so every replica can check it and a revoked key stops working within
the key cache's TTL. Forms that change something carry a CSRF token derived from
the key (an HMAC), checked before anything happens: SameSite=Strict already keeps
other sites' requests from carrying the cookie; the token is the second lock.
"""
from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import RedirectResponse

from ..api.auth import Caller
from ..api.context import Ctx, context
from ..api.errors import ApiError

COOKIE = "runledger_console"
PATH = "/console"
_CSRF_CONTEXT = b"runledger console csrf v1"


class SignInRequired(Exception):
    """Raised by `console_ctx` without a valid session; answered with a redirect."""


async def key_record(request: Request, secret: str):
    record = await request.app.state.keys.get(secret)
    return record if record is not None and record.revoked_at is None else None


async def console_ctx(request: Request) -> Ctx:
    """The caller of a console page, from the session cookie (the API's Ctx)."""
    secret = request.cookies.get(COOKIE)
    record = await key_record(request, secret) if secret else None
    if record is None:
        raise SignInRequired()
    request.state.caller = Caller(record.key_id, record.org_id, record.role)
    request.state.csrf = csrf_token(secret)
    return await context(request)


def csrf_token(secret: str) -> str:
    return hmac.new(secret.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form body (the console posts nothing else)."""
    parsed = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in parsed.items()}


async def checked_form(request: Request) -> dict[str, str]:
    """The form, once its CSRF token matches the session's; else a 403."""
    fields = await form_fields(request)
    expected = getattr(request.state, "csrf", None)
    if not expected or not hmac.compare_digest(fields.get("csrf", ""), expected):
        raise ApiError(403, "csrf_failed", "this form is stale or was not sent by the console; reload and retry")
    return fields


def signed_in(request: Request, secret: str, to: str) -> RedirectResponse:
    response = RedirectResponse(to, status_code=303)
    response.set_cookie(COOKIE, secret, path=PATH, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


def signed_out(to: str) -> RedirectResponse:
    response = RedirectResponse(to, status_code=303)
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
    return response
