"""Who may read a tenant: the bearer token named by the tenant's `api.read_token_env`.

Rules it keeps:
- `Authorization: Bearer <token>` reads the tenant in the path and no other.
- Every refusal is the same 401 (same body, same header, same work): no token, a malformed
  header, a wrong token, another tenant's token, a tenant without an `api` block or whose
  variable is unset, and a tenant that does not exist. A caller learns nothing about which
  tenants exist. The reason is logged server-side (names, never a token).
- The comparison is timing-safe: SHA-256 digests of the presented and the expected token are
  compared with `hmac.compare_digest`, and a tenant without a token is compared against a
  random value all the same, so neither the token's length nor the tenant's existence shows
  in the time taken.
- The token is read from the environment at each request (rotation without a restart) and is
  never logged, echoed or kept.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from ingest_pipeline.api.config import TenantsView, token_value
from ingest_pipeline.domain.tenants import NAME_PATTERN

log = logging.getLogger(__name__)

UNAUTHORIZED_BODY = {"error": "unauthorized", "detail": "a valid bearer token of this tenant"}
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ingest-pipeline"'}
_NO_TOKEN = secrets.token_bytes(32)  # what a tenant without a token is compared against


class Unauthorized(Exception):
    """The one answer to every refused request (401); `reason` is for the log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def authenticate(tenants: TenantsView, tenant: str, authorization: str | None) -> None:
    """Return if the header's token reads `tenant`; raise Unauthorized otherwise.
    TenantsFileError propagates (the service cannot tell, and says 503)."""
    token = bearer_token(authorization)
    env_name = tenants.read_token_env(tenant) if NAME_PATTERN.fullmatch(tenant) else None
    expected = token_value(env_name) if env_name else ""
    presented = hashlib.sha256((token or "").encode()).digest()
    reference = hashlib.sha256(expected.encode()).digest() if expected else _NO_TOKEN
    matches = hmac.compare_digest(presented, reference)
    if matches and token and expected:
        return
    if token is None:
        raise Unauthorized("no bearer token")
    if not env_name:
        raise Unauthorized("no such tenant, or no api.read_token_env for it")
    if not expected:
        raise Unauthorized(f"read-token env var {env_name} is not set")
    raise Unauthorized("token does not match")
