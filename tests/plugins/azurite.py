"""A real Azurite for the whole test session, on free loopback ports, in memory."""

from __future__ import annotations

import pytest

from dev.azurite import Azurite, start_azurite


@pytest.fixture(scope="session")
def azurite() -> Azurite:
    instance = start_azurite()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def storage_connection_string(azurite: Azurite) -> str:
    return azurite.connection_string
