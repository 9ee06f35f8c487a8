"""The fidelity suite: one test per DynamoDB behaviour the library relies on, stated as
DynamoDB behaves, run against every target.

Targets: ``LIFT_ASGI_FIDELITY_TARGETS`` (comma-separated; default ``moto,ministack``, both
started here). ``dynamodb`` is real DynamoDB (``AWS_ENDPOINT_URL_DYNAMODB`` unset, a
region and credentials from the usual chain); ``alternator`` is ScyllaDB's Alternator at
``AWS_ENDPOINT_URL_DYNAMODB``. What a target is known to get wrong is declared on each test
with ``@pytest.mark.gaps(target="why")`` and becomes a strict xfail there: if the target
starts doing it right, the run says so.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.local import LocalDynamoDB
from tests.fidelity.client import RawClient

TARGETS_VARIABLE = "LIFT_ASGI_FIDELITY_TARGETS"
LOCAL = ("moto", "ministack")
KNOWN = (*LOCAL, "dynamodb", "alternator")


def _targets() -> list[str]:
    chosen = [t.strip() for t in os.environ.get(TARGETS_VARIABLE, ",".join(LOCAL)).split(",")]
    unknown = sorted(set(chosen) - set(KNOWN))
    if unknown:
        raise pytest.UsageError(f"{TARGETS_VARIABLE}: unknown target(s) {unknown}; one of {KNOWN}")
    return [t for t in chosen if t]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gaps(**targets): what each fidelity target gets wrong (strict xfail)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        metafunc.parametrize("target", _targets(), indirect=True, scope="session")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("gaps")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None:
            continue
        reason = marker.kwargs.get(callspec.params.get("target"))
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Iterator[str]:
    """The target's endpoint (``""`` for real DynamoDB's own)."""
    name: str = request.param
    if name in LOCAL:
        with LocalDynamoDB(engine=name) as server:  # type: ignore[arg-type]
            yield server.endpoint
        return
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB", "")
    if name == "alternator" and not endpoint:
        raise pytest.UsageError("the alternator target needs AWS_ENDPOINT_URL_DYNAMODB")
    yield "" if name == "dynamodb" else endpoint


@pytest.fixture(scope="session")
async def client(target: str) -> AsyncIterator[RawClient]:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    raw = RawClient(target or None, region)
    yield raw
    await raw.close()


@pytest.fixture
async def table(client: RawClient) -> AsyncIterator[TableSpec]:
    spec = await client.create_table()
    yield spec
    await client.delete_table(spec.name)
