"""Sign in with an API key, sign out (services/console/session.py says how it is kept safe)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse

from ...api.context import Ctx
from ..render import render
from ..session import (
    COOKIE, checked_form, checked_login, console_ctx, key_record, new_login_token, remember_login_token, signed_in,
    signed_out
)

router = APIRouter()


@router.get("/console")
async def console_home(request: Request):
    return RedirectResponse("/console/runs" if request.cookies.get(COOKIE) else "/console/login", 303)


@router.get("/console/login")
async def login_page(request: Request):
    return _login_form(request)


@router.post("/console/login")
async def login(request: Request):
    secret = (await checked_login(request)).get("api_key", "").strip()
    record = await key_record(request, secret) if secret else None
    if record is None:
        message = "Enter an API key." if not secret else "That API key is not valid (unknown or revoked)."
        return _login_form(request, status=401, error=message)
    return await signed_in(request, record, "/console/runs")


@router.post("/console/logout")
async def logout(request: Request, ctx: Ctx = Depends(console_ctx)):
    await checked_form(request)
    return await signed_out(request, "/console/login")


def _login_form(request: Request, status: int = 200, error: str | None = None):
    token = new_login_token()
    response = render(request, "login.html", status=status, caller=None, error=error, login_token=token)
    remember_login_token(request, response, token)
    return response
