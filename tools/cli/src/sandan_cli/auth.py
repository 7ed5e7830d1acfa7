"""Whose token a command carries, and `sandan login|logout|whoami`.

In order: `--token` / SANDAN_TOKEN (a token the caller already has); client credentials when
SANDAN_OIDC_CLIENT_ID and SANDAN_OIDC_CLIENT_SECRET (or _FILE) are set (a job acting as itself, through
`OidcSettings.identity()`, as the services do); else the token `sandan login` cached for the issuer, refreshed
with its refresh token while the session lasts. The services verify it and decide what the caller may see.

`sandan login` uses the local realm's `sandan-cli` client with the password grant (deploy/keycloak/realm.py):
local stacks only. A county's realm has no such client; there, operators bring a token (`--token`) or a client.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
import typer

from sandan_cli.common import EXIT_NOT_ALLOWED, JSON_HELP, cli_of, emit_json, err, fail, table
from sandan_eventbus.auth.client import StaticToken, TokenSource, TokenUnavailable
from sandan_eventbus.auth.principal import BINDING_CLAIMS, PLACE_CLAIMS, Principal

CLI_CLIENT = "sandan-cli"
EARLY_SECONDS = 30.0  # refresh this long before the access token expires


def cache_dir() -> Path:
    return Path(os.environ.get("SANDAN_CACHE", "").strip() or Path.home() / ".cache" / "sandan")


def cache_file() -> Path:
    return cache_dir() / "cli-tokens.json"


def _load() -> dict[str, Any]:
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(data: dict[str, Any]) -> None:
    path = cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # readable by this user only: the tokens are the user's sign-in
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def _token_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/protocol/openid-connect/token"


def _grant(issuer: str, form: dict[str, str], timeout: float = 15.0) -> dict[str, Any]:
    try:
        reply = httpx.post(_token_url(issuer), data=form, timeout=timeout)
    except httpx.HTTPError as exc:
        raise TokenUnavailable(f"the issuer {issuer} is not reachable ({type(exc).__name__})") from None
    if reply.status_code != 200:
        try:
            body = reply.json()
            why = body.get("error_description") or body.get("error") or reply.text[:200]
        except ValueError:
            why = reply.text[:200]
        raise TokenUnavailable(f"the issuer refused: {why}")
    body = reply.json()
    now = time.time()
    return {"access_token": body["access_token"], "refresh_token": body.get("refresh_token", ""),
            "expires_at": now + float(body.get("expires_in", 60)),
            "refresh_expires_at": now + float(body.get("refresh_expires_in", 0) or 0),
            "client_id": form["client_id"]}


def sign_in(issuer: str, username: str, password: str, client_id: str = CLI_CLIENT) -> dict[str, Any]:
    """The password grant on the local-only client; the tokens are cached for this issuer."""
    entry = _grant(issuer, {"grant_type": "password", "client_id": client_id, "username": username,
                            "password": password, "scope": "openid"})
    entry["username"] = username
    data = _load()
    data[issuer.rstrip("/")] = entry
    _save(data)
    return entry


class CachedLogin:
    """The token `sandan login` cached for an issuer, refreshed with the refresh token when it is about to expire."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer.rstrip("/")
        self._lock = threading.Lock()

    def available(self) -> bool:
        return self.issuer in _load()

    @property
    def username(self) -> str:
        return str(_load().get(self.issuer, {}).get("username", ""))

    def token(self) -> str:
        with self._lock:
            data = _load()
            entry = data.get(self.issuer)
            if not entry:
                raise TokenUnavailable(f"not signed in to {self.issuer}: sandan login")
            if time.time() < float(entry["expires_at"]) - EARLY_SECONDS:
                return str(entry["access_token"])
            if not entry.get("refresh_token") or time.time() >= float(entry.get("refresh_expires_at", 0)):
                raise TokenUnavailable(f"the session with {self.issuer} has ended: sandan login again")
            fresh = _grant(self.issuer, {"grant_type": "refresh_token", "client_id": entry.get("client_id", CLI_CLIENT),
                                         "refresh_token": entry["refresh_token"]})
            fresh["username"] = entry.get("username", "")
            data[self.issuer] = fresh
            _save(data)
            return str(fresh["access_token"])


def token_source(token: str, issuer: str) -> TokenSource:
    if token:
        return StaticToken(token)
    if os.environ.get("SANDAN_OIDC_CLIENT_ID", "").strip():
        from sandan_eventbus.security import OidcSettings

        return OidcSettings(issuer=issuer).identity()  # client secret (or its file), token URL, CA: as services
    login = CachedLogin(issuer)
    if login.available():
        return login
    raise TokenUnavailable("no token: give --token (or SANDAN_TOKEN), set SANDAN_OIDC_CLIENT_ID and "
                           "SANDAN_OIDC_CLIENT_SECRET, or sign in with `sandan login`")


def claims_of(token: str) -> dict[str, Any]:
    """The token's claims, NOT verified (for showing who the token names; the services verify it)."""
    try:
        return dict(jwt.decode(token, options={"verify_signature": False}))
    except jwt.PyJWTError as exc:
        raise TokenUnavailable(f"not a JWT: {exc}") from None


def username_of(source: TokenSource, claims: dict[str, Any]) -> str:
    """A name for who the token is: its user name claim, or the name `sandan login` was given, or its subject."""
    name = claims.get("preferred_username") or (source.username if isinstance(source, CachedLogin) else "")
    return str(name or getattr(source, "client_id", "") or claims.get("sub", ""))


def describe(token: str) -> dict[str, Any]:
    from sandan_contracts.access import ROLES

    claims = claims_of(token)
    principal = Principal.from_claims(claims, frozenset(ROLES))
    places = {name: getattr(principal, name) for name in (*PLACE_CLAIMS, *BINDING_CLAIMS)
              if getattr(principal, name)}
    return {"subject": principal.subject, "username": claims.get("preferred_username", ""),
            "roles": sorted(principal.roles), "client_id": principal.client_id, "issuer": claims.get("iss", ""),
            "places": places, "expires_at": claims.get("exp"),
            "expires_in": int(float(claims.get("exp", 0)) - time.time()) if claims.get("exp") else None}


# ---- commands -------------------------------------------------------------------------------------------------

def login(ctx: typer.Context,
          user: Annotated[str, typer.Option("--user", "-u", help="the account's user name")],
          password: Annotated[str, typer.Option(prompt=True, hide_input=True, envvar="SANDAN_PASSWORD",
                                                help="its password (prompted when not given)")],
          client_id: Annotated[str, typer.Option(help="the realm's password-grant client (local only)")] = CLI_CLIENT,
          ) -> None:
    """Sign in to the (local) issuer with a user name and password; the token is cached under ~/.cache/sandan."""
    issuer = cli_of(ctx).issuer
    try:
        entry = sign_in(issuer, user, password, client_id)
    except TokenUnavailable as exc:
        fail(f"login: {exc}", EXIT_NOT_ALLOWED)
    who = describe(entry["access_token"])
    err.print(f"signed in to {issuer} as {user} (roles: {', '.join(who['roles']) or 'none'}); "
              f"token cached in {cache_file()}", markup=False)


def logout(ctx: typer.Context) -> None:
    """Forget the cached sign-in for the issuer."""
    issuer = cli_of(ctx).issuer.rstrip("/")
    data = _load()
    if data.pop(issuer, None) is None:
        err.print(f"not signed in to {issuer}", markup=False)
        return
    _save(data)
    err.print(f"signed out of {issuer}", markup=False)


def whoami(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """Who the token the commands would send names: subject, roles, places (read from the token, not verified)."""
    cli = cli_of(ctx)
    try:
        source = cli.token_source()
        token = source.token()
        who = describe(token)
    except TokenUnavailable as exc:
        fail(str(exc), EXIT_NOT_ALLOWED)
    who["username"] = username_of(source, claims_of(token))
    who["source"] = type(source).__name__
    if as_json:
        emit_json(who)
        return
    rows = [[k, v if not isinstance(v, list | dict) else json.dumps(v, ensure_ascii=False)] for k, v in who.items()]
    table("token", ["claim", "value"], rows)
    if who["expires_in"] is not None and who["expires_in"] < 0:
        err.print("the token has expired", markup=False)
