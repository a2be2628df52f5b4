"""Bearer-token auth with the seed's semantics: no/non-Bearer header → 401, unknown → 403."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from app.errors import ForbiddenError, UnauthorizedError
from app.tasks.service import owner_of

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Principal:
    owner: str


class TokenVerifier:
    def __init__(self, tokens: list[str]) -> None:
        self._tokens = [token.encode() for token in tokens]

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise UnauthorizedError("missing Authorization header", headers=_CHALLENGE)
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise UnauthorizedError("the Authorization scheme must be Bearer", headers=_CHALLENGE)
        given = token.encode()
        # Compare against every token, always: timing must not reveal which one is close.
        matched = False
        for known in self._tokens:
            matched |= hmac.compare_digest(given, known)
        if not matched:
            raise ForbiddenError("invalid or expired token")
        return Principal(owner=owner_of(token))
