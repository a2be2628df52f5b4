"""The database: one SQLAlchemy ``MetaData`` for every table, engines, and Alembic migrations.

Tables are declared next to the code that owns them (``app/tasks/store.py``,
``app/tasks/outbox.py``, …) on :data:`metadata`; the schema itself is changed only by the
migrations in ``app/db/migrations/versions`` (``python -m app db upgrade``, also run at start-up
under a lock). A test keeps the two in step.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
