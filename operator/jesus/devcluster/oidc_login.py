"""The dev OIDC provider's login and consent app: Hydra keeps no users by design and sends the browser
here (ADR 0026). It knows the dev users (`oidc.write_users`), checks a user's password, tells Hydra's
admin API who logged in, and grants consent with the user's groups and verified email in the ID token.

Run as `python -m jesus.devcluster.oidc_login --users FILE --admin URL --ca FILE --port N --cert FILE
--key FILE`; the dev control plane starts it next to Hydra.
"""

from __future__ import annotations

import argparse
import hmac
import html
import ssl
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from jesus.devcluster.oidc import read_users

_FORM = """<!doctype html>
<title>jesus dev login</title>
<h1>Log in to the jesus dev control plane</h1>
<p>{message}</p>
<form method="post" action="/login">
  <input type="hidden" name="login_challenge" value="{challenge}">
  <label>Email <input name="username" autocomplete="username"></label>
  <label>Password <input name="password" type="password" autocomplete="current-password"></label>
  <button type="submit">Log in</button>
</form>
"""


def _form(challenge: str, message: str = "", status: int = 200) -> HTMLResponse:
    body = _FORM.format(challenge=html.escape(challenge, quote=True), message=html.escape(message))
    return HTMLResponse(body, status_code=status)


class HydraRefusedError(Exception):
    """Hydra's admin API did not accept what the app asked (an unknown or used challenge)."""


def login_app(
    users: dict[str, dict[str, Any]],
    admin: str,
    ca_file: str | None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The app: GET/POST /login, GET /consent, GET /healthz. `transport` stands in for Hydra in tests."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True

    async def hydra(method: str, path: str, challenge_name: str, challenge: str, **body: Any) -> Any:
        async with httpx.AsyncClient(verify=verify, timeout=10, transport=transport) as http:
            url = f"{admin}/admin/oauth2/auth/requests/{path}"
            response = await http.request(method, url, params={challenge_name: challenge}, **body)
        if response.status_code != 200:
            raise HydraRefusedError(f"Hydra's admin API answered {path} with HTTP {response.status_code}")
        return response.json()

    async def accept_login(challenge: str, subject: str) -> Response:
        accepted = await hydra(
            "PUT", "login/accept", "login_challenge", challenge, json={"subject": subject, "remember": False}
        )
        return RedirectResponse(accepted["redirect_to"], status_code=303)

    async def login_page(request: Request) -> Response:
        challenge = request.query_params.get("login_challenge", "")
        if not challenge:
            return PlainTextResponse("no login_challenge: start at the OIDC provider", status_code=400)
        asked = await hydra("GET", "login", "login_challenge", challenge)
        if asked.get("skip"):  # Hydra already knows who this is
            return await accept_login(challenge, asked["subject"])
        return _form(challenge)

    async def login_submit(request: Request) -> Response:
        form = await request.form()
        challenge, user, password = (
            str(form.get(key, "")) for key in ("login_challenge", "username", "password")
        )
        if not challenge:
            return PlainTextResponse("no login_challenge: start at the OIDC provider", status_code=400)
        known = users.get(user)
        # Compared in constant time, and an unknown user costs the same comparison as a wrong password.
        expected = str(known["password"]) if known else "-" * 24
        if not hmac.compare_digest(password.encode(), expected.encode()) or known is None:
            return _form(challenge, "Unknown user or wrong password.", status=401)
        return await accept_login(challenge, user)

    async def consent(request: Request) -> Response:
        challenge = request.query_params.get("consent_challenge", "")
        if not challenge:
            return PlainTextResponse("no consent_challenge: start at the OIDC provider", status_code=400)
        asked = await hydra("GET", "consent", "consent_challenge", challenge)
        subject = asked["subject"]
        known = users.get(subject)
        if known is None:  # Hydra only asks about people this app logged in; refuse anything else
            return PlainTextResponse(f"no dev user {subject!r}", status_code=403)
        accepted = await hydra(
            "PUT",
            "consent/accept",
            "consent_challenge",
            challenge,
            json={
                "grant_scope": asked.get("requested_scope", []),
                "grant_access_token_audience": asked.get("requested_access_token_audience", []),
                "remember": False,
                "session": {
                    "id_token": {"email": subject, "email_verified": True, "groups": list(known["groups"])}
                },
            },
        )
        return RedirectResponse(accepted["redirect_to"], status_code=303)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def refused(_: Request, exc: Exception) -> Response:
        return PlainTextResponse(str(exc), status_code=502)

    return Starlette(
        routes=[
            Route("/login", login_page, methods=["GET"]),
            Route("/login", login_submit, methods=["POST"]),
            Route("/consent", consent, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        exception_handlers={HydraRefusedError: refused},
    )


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - runs as the plane's process
    parser = argparse.ArgumentParser(prog="python -m jesus.devcluster.oidc_login", description=__doc__)
    for name in ("--users", "--admin", "--ca", "--cert", "--key"):
        parser.add_argument(name, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = login_app(read_users(Path(args.users)), args.admin, args.ca)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        ssl_certfile=args.cert,
        ssl_keyfile=args.key,
        log_level="info",
        access_log=False,
    )


if __name__ == "__main__":  # pragma: no cover
    main()
