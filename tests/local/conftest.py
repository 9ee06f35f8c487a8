"""A moto engine of its own for the tests of lift-asgi's moto front, whichever engine the
plugin's ``dynamodb_server`` runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lift_asgi.local import LocalDynamoDB


@pytest.fixture(scope="module")
def moto_server() -> Iterator[LocalDynamoDB]:
    with LocalDynamoDB(engine="moto") as server:
        yield server
