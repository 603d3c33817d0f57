"""The dashboard's login: the token exchanged for a session cookie, and logout.

`tradebot up` prints the dashboard's URL with `?token=`, as Jupyter does: opening it logs
in and drops the token from the address bar. The cookie is HttpOnly (no script reads it)
and SameSite=Strict (no other site's page sends it).
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tradebot.api.auth import SESSION_COOKIE, Access, Credential, access_of, same_origin

LOGIN_PAGE = (Path(__file__).parent / "static" / "login.html").read_text()
MAX_FORM_BYTES = 4_096
NOTES = {
    "expired": "Your session has ended: log in again.",
    "wrong": "That is not the token of this stack.",
    "out": "You are logged out.",
    "foreign": "A login from another site was refused.",
}

router = APIRouter()


def login_page(note: str | None, status_code: int = 200) -> HTMLResponse:
    text = html.escape(NOTES.get(note or "", ""))
    page = LOGIN_PAGE.replace("<!--note-->", text)
    return HTMLResponse(page, status_code, headers={"Cache-Control": "no-store"})


def to_login(note: str | None = None) -> RedirectResponse:
    return RedirectResponse(f"/login?note={note}" if note else "/login", status_code=303)


def logged_in(request: Request, access: Access) -> RedirectResponse:
    """To the dashboard, with a fresh session cookie."""
    answer = RedirectResponse("/", status_code=303)
    answer.set_cookie(
        SESSION_COOKIE, access.new_session(), max_age=int(access.session_seconds), path="/",
        httponly=True, samesite="strict", secure=request.url.scheme == "https",
    )  # fmt: skip
    return answer


def entry(request: Request) -> Response | None:
    """What GET / answers instead of the page: a login by `?token=`, or the login page; None to serve it."""
    access = access_of(request)
    token = request.query_params.get("token")
    if token is not None:
        return logged_in(request, access) if access.token_matches(token) else to_login("wrong")
    if access.may_read(request):
        return None
    return to_login("expired" if access.credential(request) is Credential.EXPIRED else None)


@router.get("/login", response_class=HTMLResponse)
async def show_login(note: str | None = None) -> HTMLResponse:
    return login_page(note)


@router.post("/login")
async def log_in(request: Request) -> Response:
    if same_origin(request) is False:
        return login_page("foreign", 403)
    form = await small_form(request)
    if form is None:
        return login_page("wrong", 413)
    if not access_of(request).token_matches(form.get("token", "")):
        return login_page("wrong", 401)
    return logged_in(request, access_of(request))


@router.post("/logout")
async def log_out(request: Request) -> Response:
    if same_origin(request) is False:
        return login_page("foreign", 403)
    answer = to_login("out")
    answer.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return answer


async def small_form(request: Request) -> dict[str, str] | None:
    """An urlencoded form of at most MAX_FORM_BYTES (this page is open to anyone); None if larger."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    fields = parse_qs(body.decode(errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}
