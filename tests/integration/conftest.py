from __future__ import annotations

import pytest

from projections.database import make_engine, prepare_schema


@pytest.fixture
async def engine(database_url):
    """The read model as production builds it: SQLite created in place, PostgreSQL by migrations."""
    engine = make_engine(database_url)
    await prepare_schema(database_url, engine)
    yield engine
    await engine.dispose()
