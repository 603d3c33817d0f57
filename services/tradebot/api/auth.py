"""Who may read and who may change a stack: the bearer token AUTH_TOKEN, or a dashboard session.

The dashboard exchanges the token at its login page for a session cookie (HttpOnly,
SameSite=Strict) signed with a key derived from the token, so the API and the dashboard
both check it without sharing state, and rotating AUTH_TOKEN ends every session. Reads are
open only with AUTH=read-open; a mutation always needs the token (or a session), and one a
browser sends from another site (its Origin) is refused: cross-site request forgery.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.requests import HTTPConnection

from tradebot.common.settings import AuthMode, Settings

SESSION_COOKIE = "tradebot_session"
bearer = HTTPBearer(auto_error=False, description="AUTH_TOKEN", scheme_name="token")
session_cookie = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="the dashboard's login", scheme_name="session"
)


class Credential(StrEnum):
    """What a request proved (a session may also have ended, which the login page says)."""

    NONE = "none"
    TOKEN = "token"
    SESSION = "session"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Access:
    """The access rules of one app, from its settings; kept on `app.state.access`."""

    token: SecretStr
    mode: AuthMode
    session_seconds: float

    @classmethod
    def of(cls, settings: Settings) -> Access:
        """ValueError when AUTH_TOKEN is missing: a server anyone can change never starts."""
        if settings.auth_token is None:
            raise ValueError(
                "AUTH_TOKEN is not set: the API and the dashboard need it (`tradebot up` makes one; "
                "otherwise e.g. AUTH_TOKEN=$(openssl rand -hex 32))"
            )
        return cls(settings.auth_token, settings.auth, settings.session_seconds)

    def token_matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.token.get_secret_value().encode())

    @cached_property
    def _session_key(self) -> bytes:
        """The key sessions are signed with, derived from the token (never the token itself)."""
        return hmac.new(self.token.get_secret_value().encode(), b"tradebot-session", hashlib.sha256).digest()

    def _signature(self, payload: str) -> str:
        return hmac.new(self._session_key, payload.encode(), hashlib.sha256).hexdigest()

    def new_session(self, now: float | None = None) -> str:
        """A cookie value: its expiry, a nonce, and their signature."""
        expires = int((now or time.time()) + self.session_seconds)
        payload = f"{expires}.{secrets.token_urlsafe(12)}"
        return f"{payload}.{self._signature(payload)}"

    def _expiry(self, value: str) -> int | None:
        """Pure: when a cookie value signed with this token ends; None if it is not one."""
        payload, _, signature = value.rpartition(".")
        expires = payload.partition(".")[0]
        if not (signature and expires.isdigit()):
            return None
        return int(expires) if hmac.compare_digest(signature, self._signature(payload)) else None

    def session_state(self, value: str, now: float | None = None) -> Credential:
        """Pure: whether a cookie value is a live session of this token, an ended one, or neither."""
        expires = self._expiry(value)
        if expires is None:
            return Credential.NONE
        return Credential.SESSION if expires > (now or time.time()) else Credential.EXPIRED

    def session_ends(self, connection: HTTPConnection) -> float | None:
        """When a connection loses its right to read: its session's end, or None (token, read-open)."""
        if self.mode is AuthMode.READ_OPEN or self.credential(connection) is not Credential.SESSION:
            return None
        return self._expiry(connection.cookies[SESSION_COOKIE])

    def credential(self, connection: HTTPConnection) -> Credential:
        """What a request or WebSocket carries: the bearer token first, then the session cookie."""
        scheme, _, given = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and given:
            return Credential.TOKEN if self.token_matches(given.strip()) else Credential.NONE
        cookie = connection.cookies.get(SESSION_COOKIE)
        return self.session_state(cookie) if cookie else Credential.NONE

    def may_read(self, connection: HTTPConnection) -> bool:
        return self.mode is AuthMode.READ_OPEN or self.authenticated(connection)

    def authenticated(self, connection: HTTPConnection) -> bool:
        return self.credential(connection) in (Credential.TOKEN, Credential.SESSION)


def same_origin(connection: HTTPConnection) -> bool | None:
    """Whether the browser's Origin is this server (host and port as the request names them);
    None when there is no Origin (not a browser, or a same-origin GET)."""
    origin = connection.headers.get("origin")
    if origin is None:
        return None
    host = connection.headers.get("host", "")
    parts = urlsplit(origin)
    return bool(parts.scheme in ("http", "https") and parts.netloc and parts.netloc == host)


def access_of(connection: HTTPConnection) -> Access:
    return connection.app.state.access


ACTOR_HEADER = "x-tradebot-actor"

NOT_AUTHENTICATED = HTTPException(
    401, "authentication required: Authorization: Bearer <AUTH_TOKEN>, or log in at the dashboard",
    headers={"WWW-Authenticate": "Bearer"},
)  # fmt: skip


async def require_read(
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    _session: Annotated[str | None, Depends(session_cookie)],
) -> None:
    """A read: open with AUTH=read-open, else the token or a session (401 otherwise)."""
    if not access_of(request).may_read(request):
        raise NOT_AUTHENTICATED


async def require_write(
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    _session: Annotated[str | None, Depends(session_cookie)],
) -> str:
    """A mutation: always the token or a session (401), and never from another site (403).
    Returns who made it, for the audit: "token@<client>" or "session@<client>" (a change the
    dashboard passes on with the token names the person's too: "session@<browser> via token@...").

    A session is a cookie the browser attaches by itself, so a mutation carried by one must
    also show the browser's Origin, and it must be this server.
    """
    credential = access_of(request).credential(request)
    if credential not in (Credential.TOKEN, Credential.SESSION):
        raise NOT_AUTHENTICATED
    origin = same_origin(request)
    if origin is False or (origin is None and credential is Credential.SESSION):
        raise HTTPException(403, "cross-site request refused: the Origin is not this server")
    client = request.client.host if request.client else "unknown"
    who = f"{credential.value}@{client}"
    on_behalf = request.headers.get(ACTOR_HEADER)  # the dashboard, passing a person's change on
    return f"{on_behalf[:100]} via {who}" if on_behalf and credential is Credential.TOKEN else who


def websocket_refusal(connection: HTTPConnection) -> str | None:
    """Why a WebSocket may not open (a foreign Origin, or no right to read), or None."""
    if same_origin(connection) is False:
        return "cross-site WebSocket refused: the Origin is not this server"
    if not access_of(connection).may_read(connection):
        return "authentication required"
    return None
