"""Tenants: who is calling and what they may spend.

* ``principal`` — :class:`Principal`, the one caller type routes and services see.
* ``tokens`` — managed tokens (hashed, in the database every replica shares) and the
  :class:`TokenService` behind both ``python -m app tokens …`` and ``/v1/admin/tokens``.
* ``limits`` — the request rate per token (the ``limits`` library, memory or Redis).
* ``quotas`` — active tasks and tasks per day, counted in the task store.
"""
