from __future__ import annotations

import pytest

from projections.database import create_schema, make_engine


@pytest.fixture
async def engine(database_url):
    engine = make_engine(database_url)
    await create_schema(engine)
    yield engine
    await engine.dispose()
