"""Sign in with an API key, sign out."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse

from ...api.context import Ctx
from ..render import render
from ..session import COOKIE, checked_form, console_ctx, form_fields, key_record, signed_in, signed_out

router = APIRouter()


@router.get("/console")
async def console_home(request: Request):
    return RedirectResponse("/console/runs" if request.cookies.get(COOKIE) else "/console/login", 303)


@router.get("/console/login")
async def login_page(request: Request):
    return render(request, "login.html", caller=None)


@router.post("/console/login")
async def login(request: Request):
    secret = (await form_fields(request)).get("api_key", "").strip()
    if not secret or await key_record(request, secret) is None:
        message = "Enter an API key." if not secret else "That API key is not valid (unknown or revoked)."
        return render(request, "login.html", status=401, caller=None, error=message)
    return signed_in(request, secret, "/console/runs")


@router.post("/console/logout")
async def logout(request: Request, ctx: Ctx = Depends(console_ctx)):
    await checked_form(request)
    return signed_out("/console/login")
