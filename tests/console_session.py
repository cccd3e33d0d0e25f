"""Sign an httpx client into the web console, as a browser does (for tests).

The console's cookie holds a session id, never the key (services/console/session.py): the
sign-in page gives a login token (in the form and in a cookie), the form posts it with the
key, and the answer sets the session cookie. The cookies are set on the client by hand, so
this works whatever host the client uses (a `Secure` cookie is kept but not sent back over
http by the jar)."""
from __future__ import annotations

import contextlib
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


def login_form(client: httpx.Client) -> str:
    """Open the sign-in page (its token goes in the form and in a cookie); the form's token."""
    page = client.get("/console/login")
    return re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)


def sign_in_sync(client: httpx.Client, key: str, **headers) -> httpx.Response:
    """`sign_in` for a blocking client (a server process): the token in the form and in its
    cookie (sent even where the jar would keep a Secure cookie back over http)."""
    token = login_form(client)
    return client.post("/console/login", data={"api_key": key, "login_token": token},
                       headers={"Cookie": f"{LOGIN_COOKIE}={token}", **headers})


@contextlib.contextmanager
def signed_in(url: str, key: str):
    """A blocking client of the console at `url`, signed in with `key`."""
    with httpx.Client(base_url=url, timeout=30) as client:
        assert sign_in_sync(client, key).status_code == 303
        yield client
