"""Identity and authorisation: verified bearer tokens, the role matrix, scope, and service identities.

- `principal`: who is calling (`current()`), `PermissionDenied`, `SYSTEM` for internal work;
- `tokens`: JWT verification against an OIDC issuer's JWKS;
- `interceptor`: the gRPC server interceptor (authenticate, allow by role, name the caller);
- `scopes`: where a caller may act (community, grid, town, county, unit, own records);
- `client`: calling another service as this service (client credentials) or as a person;
- `devissuer`: a local issuer for unit tests (not for production use).
"""

from sandan_eventbus.auth.principal import SYSTEM, PermissionDenied, Principal, acting_as, current

__all__ = ["SYSTEM", "PermissionDenied", "Principal", "acting_as", "current"]
