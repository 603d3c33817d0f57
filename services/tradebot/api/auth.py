"""Bearer-token checks of the API's routes (a minimal stand-in until the security work lands).

`require_write` guards every mutating route: the request must carry
`Authorization: Bearer <AUTH_TOKEN>`; without AUTH_TOKEN set, writes are refused.
It returns who is acting, for the audit table.
"""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request


def _token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def require_read(request: Request) -> None:
    """Reads are open in this stand-in."""


async def require_write(request: Request) -> str:
    """The actor of an authenticated request ("token@<client address>"); 401 otherwise."""
    expected = request.app.state.api.settings.auth_token
    if not expected:
        raise HTTPException(401, "AUTH_TOKEN is not set: mutating routes are refused")
    if not secrets.compare_digest(_token(request).encode(), expected.encode()):
        raise HTTPException(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})
    client = request.client.host if request.client else "unknown"
    return f"token@{client}"
