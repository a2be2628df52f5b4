"""Bearer-token auth with the seed's semantics: no/non-Bearer header → 401, unknown → 403.

Two kinds of token, one :class:`Principal`:

* ``[auth] valid_tokens`` (and the dev token): the operator's own. They are admins, use the
  ``[limits]`` defaults, and own their tasks under the token's hash, as they always have.
* managed tokens (``python -m app tokens …``): looked up by their hash in the shared database.
  What a replica read is trusted for ``[auth] cache_s`` seconds (5 by default; also for
  unknown tokens, in a bounded cache), so a revoke or rotate reaches every replica within that
  time without a database query per request.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import logging
import time
from dataclasses import dataclass

from app.errors import ForbiddenError, UnauthorizedError
from app.tasks.models import utcnow
from app.tasks.service import owner_of
from app.tenants.principal import Principal, TokenLimits
from app.tenants.tokens import TokenHasher, TokenRecord, TokenStore

__all__ = ["Principal", "TokenVerifier"]

logger = logging.getLogger(__name__)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_CACHE_SIZE = 10_000
_TOUCH_EVERY_S = 60.0


@dataclass(frozen=True)
class _Cached:
    expires: float
    record: TokenRecord | None
    previous_until: float | None  # a previous token's grace, as a wall-clock deadline


def static_name(owner: str) -> str:
    """The display name of a configured token's tenant (its owner hash, shortened)."""
    return f"config-{owner[:12]}"


class TokenVerifier:
    def __init__(
        self,
        tokens: list[str],
        *,
        store: TokenStore | None = None,
        hasher: TokenHasher | None = None,
        defaults: TokenLimits | None = None,
        cache_s: float = 5.0,
    ) -> None:
        self._tokens = [token.encode() for token in tokens]
        self._store = store
        self._hash = hasher or TokenHasher()
        self._defaults = defaults or TokenLimits()
        self._cache_s = cache_s
        self._cache: collections.OrderedDict[str, _Cached] = collections.OrderedDict()
        self._touched: dict[str, float] = {}
        self._background: set[asyncio.Task[None]] = set()
        #: display name → owner of each configured token (admins list tasks by name)
        self.static_owners = {static_name(owner_of(token)): owner_of(token) for token in tokens}

    async def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise UnauthorizedError("missing Authorization header", headers=_CHALLENGE)
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise UnauthorizedError("the Authorization scheme must be Bearer", headers=_CHALLENGE)
        return await self.verify_token(token)

    async def verify_token(self, token: str) -> Principal:
        """The principal for a bare token (also for ``?token=`` on WebSockets, MCP)."""
        given = token.encode()
        # Compare against every configured token, always: timing must not reveal which is close.
        matched = False
        for known in self._tokens:
            matched |= hmac.compare_digest(given, known)
        if matched:
            owner = owner_of(token)
            return Principal(
                owner=owner, name=static_name(owner), admin=True, limits=self._defaults
            )
        record = await self._managed(token)
        if record is None:
            raise ForbiddenError("invalid or expired token")
        self._touch(record.id)
        return record.principal(self._defaults)

    async def tenant_name(self, owner: str) -> str:
        """The name an admin knows ``owner``'s tenant by: its token's name (also once revoked),
        a configured token's display name, or the stored id when no token names it."""
        if owner in self.static_owners.values():
            return static_name(owner)
        record = await self._store.by_tenant(owner) if self._store is not None else None
        return record.name if record is not None else owner

    async def principal_of(self, owner: str) -> Principal | None:
        """The principal of a tenant's tokens, for work done for it without a request (a CSV
        batch fed in the background); None once its token is revoked or unknown."""
        for name, static_owner in self.static_owners.items():
            if static_owner == owner:
                return Principal(owner=owner, name=name, admin=True, limits=self._defaults)
        if self._store is None:
            return None
        record = await self._store.by_tenant(owner)
        if record is None or not record.active:
            return None
        return record.principal(self._defaults)

    async def _managed(self, token: str) -> TokenRecord | None:
        if self._store is None or len(token) > 256:
            return None
        token_hash = self._hash(token)
        cached = self._cache.get(token_hash)
        if (
            cached is None
            or cached.expires <= time.monotonic()
            # It may be a previous token whose grace just ended: ask again.
            or (cached.previous_until is not None and cached.previous_until <= time.time())
        ):
            cached = await self._fetch(token_hash)
        return cached.record

    async def _fetch(self, token_hash: str) -> _Cached:
        assert self._store is not None
        record = await self._store.by_hash(token_hash, now=utcnow())
        grace = None
        if record is not None and record.previous_until is not None:
            deadline = record.previous_until.timestamp()
            # While a grace runs, either token may be the one asked about: the cached entry
            # must end with the grace.
            grace = deadline if deadline > time.time() else None
        cached = _Cached(time.monotonic() + self._cache_s, record, grace)
        if self._cache_s > 0:
            self._cache[token_hash] = cached
            self._cache.move_to_end(token_hash)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return cached

    def _touch(self, token_id: str) -> None:
        """Record ``last_used_at`` at most once a minute per token and replica, off the path."""
        now = time.monotonic()
        if now - self._touched.get(token_id, -_TOUCH_EVERY_S) < _TOUCH_EVERY_S:
            return
        self._touched[token_id] = now
        if self._store is None:
            return
        job = asyncio.create_task(self._record_use(token_id))
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    async def _record_use(self, token_id: str) -> None:
        assert self._store is not None
        try:
            await self._store.touch([token_id], utcnow())
        except Exception as exc:  # bookkeeping only; the request already passed
            logger.warning("could not record a token's last use: %s", type(exc).__name__)

    def forget(self) -> None:
        """Drop what this replica cached (after a change made through this replica)."""
        self._cache.clear()
