"""Jinja2 templates, their filters, and the headers every console page carries."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from . import charts

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def when(value: Any) -> str:
    if not value:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.utcoffset() is not None else "")


def when_short(value: Any) -> str:
    """Month-day and minutes, for dense tables (the full time is in the title)."""
    if not value:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%b %d, %H:%M")


def duration(ms: int | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def json_text(value: Any, indent: int | None = None, sort_keys: bool = False, **_: Any) -> str:
    """`tojson`: indented by orjson (the stdlib's encoder with `indent` runs in Python, and
    a page of the timeline shows hundreds of payloads: it was ~80 % of that page's time);
    compact as the stdlib writes it (`", "`, `": "`), and values orjson refuses (an integer
    beyond 64 bits) by the stdlib too."""
    if indent:
        try:
            return orjson.dumps(value, option=orjson.OPT_INDENT_2 | (orjson.OPT_SORT_KEYS if sort_keys else 0)).decode()
        except TypeError:
            pass
    return json.dumps(value, indent=indent, sort_keys=sort_keys, ensure_ascii=False, default=str)


templates.env.filters.update(when=when, when_short=when_short, duration=duration, pct=pct)
templates.env.policies["json.dumps_function"] = json_text  # Jinja still makes the text HTML-safe
templates.env.globals.update(charts=charts)


def render(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    caller = getattr(request.state, "caller", None)
    values.setdefault("caller", caller)
    values.setdefault("csrf", getattr(request.state, "csrf", None))
    response = templates.TemplateResponse(request, name, values, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


async def html_page(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    """`render`, with the template rendered in a thread: a large page (a timeline of
    hundreds of payloads) then holds the event loop a GIL switch interval at a time, not
    for the whole render, and other organisations' requests go on meanwhile."""
    values.setdefault("caller", getattr(request.state, "caller", None))
    values.setdefault("csrf", getattr(request.state, "csrf", None))
    template = templates.get_template(name)
    html = await asyncio.to_thread(template.render, {"request": request, **values})
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", status=status, status_code=status, message=message)
