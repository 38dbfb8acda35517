from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chatforge.context import AppContext, build_context
from chatforge.settings import Settings


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[AppContext]:
    """The app's services on a fresh migrated SQLite database, without HTTP in between."""
    context = build_context(settings)
    try:
        yield context
    finally:
        await context.close()
