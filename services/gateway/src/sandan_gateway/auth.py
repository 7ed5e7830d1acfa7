"""Signing people in (OpenID Connect, authorisation code + PKCE S256, Authlib's Starlette client), their sessions,
token refresh, CSRF, and RP-initiated logout.

- `/login` sends the browser to the issuer; the state, nonce and PKCE verifier ride in a short-lived signed
  cookie (Starlette's SessionMiddleware, itsdangerous) that holds nothing else.
- `/auth/callback` exchanges the code (the client authenticates with its secret), verifies the access token
  like every service does (JWKS, issuer, audience, expiry), and opens a server-side session (sessions.py).
- Every request with a session refreshes the access token with the refresh token when it has less than a
  minute left; a refused refresh ends the session (the person signs in again).
- State-changing requests carry the session's CSRF token (a synchronizer token): the form field `csrf_token` or
  the header `X-CSRF-Token`. Callers with their own bearer token (a mini-program) send no cookie and need none.
- `/logout` (POST, CSRF-checked) deletes the session and sends the browser to the issuer's end_session_endpoint.
- The issuer's discovery document is read at `discovery_url` (SANDAN_OIDC_DISCOVERY_URL; default: under the
  issuer), e.g. an internal address of the issuer whose document names the public issuer and authorization
  endpoint (for the browser) and internal token and keys endpoints (for the gateway). The document must name
  SANDAN_OIDC_ISSUER as its `issuer`; otherwise sign-in is refused (503) and the mismatch is logged.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import HTTPException, Request

from sandan_contracts.access import ACCESS
from sandan_eventbus.auth.principal import Principal
from sandan_eventbus.auth.tokens import InvalidToken, TokenVerifier
from sandan_gateway.sessions import Session, SessionStore

log = logging.getLogger(__name__)

SESSION_COOKIE = "sandan_session"
LOGIN_COOKIE = "sandan_login"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
REFRESH_EARLY = 60.0  # refresh when the access token has less than this many seconds left
KNOWN_ROLES = frozenset(ACCESS.roles)


class NotSignedIn(Exception):
    """No session (or it ended): pages send the person to /login, the API answers 401."""


@dataclass
class Caller:
    """Who is asking: a verified principal and the token to forward. `session` is None for bearer callers."""

    principal: Principal
    token: str
    session: Session | None = None

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""


class Auth:
    def __init__(self, issuer: str, client_id: str, client_secret: str, verifier: TokenVerifier,
                 store: SessionStore, public_url: str, secure_cookies: bool, *, discovery_url: str = "",
                 verify_tls: bool | str = True) -> None:
        self.issuer = issuer.rstrip("/")
        self.discovery_url = discovery_url or self.issuer + "/.well-known/openid-configuration"
        self.verifier = verifier
        self.store = store
        self.public_url = public_url
        self.secure_cookies = secure_cookies
        self.client_id = client_id
        self.oauth = OAuth()
        self.oauth.register(
            "sandan", client_id=client_id, client_secret=client_secret,
            server_metadata_url=self.discovery_url,
            client_kwargs={"scope": "openid profile", "code_challenge_method": "S256", "verify": verify_tls},
        )
        self._refreshing: dict[str, asyncio.Lock] = {}

    @property
    def client(self) -> Any:
        return self.oauth.sandan

    async def metadata(self) -> dict[str, Any]:
        """The issuer's discovery document (read once, then cached by authlib), provided it names this issuer;
        HTTPException 503 otherwise (logged), since a sign-in against another issuer could never verify."""
        try:
            metadata = await self.client.load_server_metadata()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("cannot read the issuer's discovery document",
                        extra={"fields": {"discovery_url": self.discovery_url, "error": str(exc)[:200]}})
            raise HTTPException(503, "sign-in is not available now: the identity provider cannot be reached") from None
        named = str(metadata.get("issuer", "")).rstrip("/")
        if named != self.issuer:
            log.error("sign-in refused: the discovery document names another issuer than SANDAN_OIDC_ISSUER "
                      "(check SANDAN_OIDC_ISSUER and SANDAN_OIDC_DISCOVERY_URL, and the issuer's hostname setting)",
                      extra={"fields": {"discovery_url": self.discovery_url, "issuer": self.issuer,
                                        "named": named}})
            raise HTTPException(503, "sign-in is not available: the identity provider is misconfigured")
        return dict(metadata)

    # ---- the flow -------------------------------------------------------------------------------------------
    async def login(self, request: Request, next_path: str = "/") -> Any:
        await self.metadata()
        request.session["next"] = safe_next(next_path)
        return await self.client.authorize_redirect(request, self.public_url + "/auth/callback")

    async def callback(self, request: Request) -> tuple[Session, str]:
        """Open a session from the issuer's answer; returns it and where to go next."""
        await self.metadata()
        try:
            token = await self.client.authorize_access_token(request)
        except OAuthError as exc:
            log.info("sign-in refused", extra={"fields": {"error": exc.error}})
            raise NotSignedIn(exc.error or "sign-in failed") from None
        claims = await self._verified(str(token["access_token"]))
        session = self.store.create(Session(
            access_token=str(token["access_token"]), refresh_token=str(token.get("refresh_token", "")),
            id_token=str(token.get("id_token", "")), access_expires_at=_expires_at(token), claims=dict(claims)))
        return session, safe_next(request.session.pop("next", "/"))

    async def logout_url(self, session: Session | None) -> str:
        """Where to send the browser after the session is deleted: the issuer's end_session_endpoint (ends the
        single sign-on too) when it has one, else the home page."""
        home = self.public_url + "/"
        try:
            metadata = await self.metadata()
        except HTTPException:  # logged; the session is gone either way
            return home
        endpoint = metadata.get("end_session_endpoint")
        if not endpoint:
            return home
        from urllib.parse import urlencode

        params = {"post_logout_redirect_uri": home, "client_id": self.client_id}
        if session and session.id_token:
            params["id_token_hint"] = session.id_token
        return f"{endpoint}?{urlencode(params)}"

    # ---- who is asking ----------------------------------------------------------------------------------------
    async def caller(self, request: Request) -> Caller:
        """The signed-in person (session cookie) or the holder of a bearer token; NotSignedIn otherwise."""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            try:
                claims = await self.verifier.verify_async(value.strip())
            except InvalidToken as exc:
                raise NotSignedIn(str(exc)) from None
            return Caller(Principal.from_claims(claims, KNOWN_ROLES), value.strip())
        session = await self.session(request)
        if session is None:
            raise NotSignedIn("no session")
        return Caller(Principal.from_claims(session.claims, KNOWN_ROLES), session.access_token, session)

    async def optional_caller(self, request: Request) -> Caller | None:
        try:
            return await self.caller(request)
        except NotSignedIn:
            return None

    async def session(self, request: Request) -> Session | None:
        session_id = request.cookies.get(SESSION_COOKIE, "")
        if not session_id:
            return None
        session = await asyncio.to_thread(self.store.get, session_id)
        if session is None:
            return None
        return await self.fresh(session)

    async def fresh(self, session: Session) -> Session | None:
        """The session with an access token valid for at least REFRESH_EARLY seconds, or None if it ended."""
        if session.access_expires_at - time.time() > REFRESH_EARLY:
            return session
        lock = self._refreshing.setdefault(session.session_id, asyncio.Lock())
        async with lock:
            latest = await asyncio.to_thread(self.store.get, session.session_id)
            if latest is None:
                return None
            if latest.access_expires_at - time.time() > REFRESH_EARLY:  # another request refreshed it
                return latest
            try:
                token = await self.client.fetch_access_token(grant_type="refresh_token",
                                                             refresh_token=latest.refresh_token)
                claims = await self._verified(str(token["access_token"]))
            except (OAuthError, NotSignedIn, KeyError) as exc:
                log.info("session ended: refresh refused", extra={"fields": {"error": type(exc).__name__}})
                await asyncio.to_thread(self.store.delete, latest.session_id)
                return None
            except Exception as exc:  # the issuer unreachable: keep the session, the call may still pass
                log.warning("cannot refresh now", extra={"fields": {"error": type(exc).__name__}})
                return latest
            finally:
                self._refreshing.pop(session.session_id, None)
            latest.access_token = str(token["access_token"])
            latest.refresh_token = str(token.get("refresh_token") or latest.refresh_token)
            latest.id_token = str(token.get("id_token") or latest.id_token)
            latest.access_expires_at = _expires_at(token)
            latest.claims = dict(claims)
            await asyncio.to_thread(self.store.save, latest)
            return latest

    async def _verified(self, access_token: str) -> dict[str, Any]:
        try:
            return dict(await self.verifier.verify_async(access_token))
        except InvalidToken as exc:
            log.warning("the issuer's access token does not verify", extra={"fields": {"error": str(exc)}})
            raise NotSignedIn("the access token does not verify") from None

    # ---- cookies and CSRF -----------------------------------------------------------------------------------
    def set_cookie(self, response: Any, session: Session) -> None:
        response.set_cookie(SESSION_COOKIE, session.session_id, httponly=True, samesite="lax",
                            secure=self.secure_cookies, path="/")

    def clear_cookie(self, response: Any) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=self.secure_cookies)


async def check_csrf(request: Request, caller: Caller) -> None:
    """Refuse a state-changing request from a session without its CSRF token (403)."""
    if caller.session is None:  # a bearer caller: no ambient credentials, nothing to forge
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        sent = str(form.get(CSRF_FIELD, ""))
    if not sent or not hmac.compare_digest(sent, caller.session.csrf):
        raise HTTPException(403, "the form is out of date or did not come from this site (CSRF token missing "
                                 "or wrong): reload the page and try again")


def safe_next(path: str) -> str:
    """Only a path on this site (no scheme, no host, no //): an open redirect is refused."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def _expires_at(token: dict[str, Any]) -> float:
    if token.get("expires_at"):
        return float(token["expires_at"])
    return time.time() + float(token.get("expires_in", 60))
