"""Sign an in-process httpx client into the web console, as a browser does (for tests).

The console's cookie holds a session id, never the key (services/console/session.py): the
sign-in page gives a login token (in the form and in a cookie), the form posts it with the
key, and the answer sets the session cookie. The cookies are set on the client by hand, so
this works whatever host the client uses (a `Secure` cookie is kept but not sent back over
http by the jar)."""
from __future__ import annotations

import re
from http.cookies import SimpleCookie

import httpx

from services.console.session import COOKIE, LOGIN_COOKIE


async def sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    """Sign `client` in with `key`; the login's answer (a 303 to the console)."""
    page = await client.get("/console/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
    answer = await client.post("/console/login", data={"api_key": key, "login_token": token},
                               headers={"Cookie": f"{LOGIN_COOKIE}={token}"}, follow_redirects=False)
    for header in answer.headers.get_list("set-cookie"):
        cookie = SimpleCookie(header)
        if COOKIE in cookie and cookie[COOKIE].value:
            client.cookies.set(COOKIE, cookie[COOKIE].value)
    return answer
