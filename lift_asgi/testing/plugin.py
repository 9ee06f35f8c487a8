"""pytest plugin (entry point ``pytest11``): a local DynamoDB server and faults.

Installed with ``lift-asgi[testing]``; nothing to import or configure. Fixtures:

``dynamodb_server``       session: the local engine (:class:`LocalDynamoDB`), started
                          once per test session, stopped at its end.
``dynamodb_endpoint``     session: its URL (``http://127.0.0.1:PORT``).
``dynamodb_env``          function: ``AWS_ENDPOINT_URL_DYNAMODB`` and dummy credentials
                          set in the environment for the test.
``dynamodb_table``        function: a fresh, uniquely named table with the standard schema
                          (``pk``/``sk`` strings, GSI ``gsi1`` on ``gsi1pk``/``gsi1sk``,
                          TTL on ``ttl``), deleted after the test. Yields its TableSpec.
``dynamodb_table_factory`` function: ``make(pk="pk", sk="sk", gsis=..., ttl_attribute=...)``
                          for other schemas; every table it made is deleted after the test.
``dynamodb_rate_limit_table`` function: a fresh rate-limit table (pk/sk strings, TTL on
                          ``ttl``, no index) for ``async+dynamodb://`` storages.
``dynamodb_fault_proxy``  function: a :class:`FaultProxy` in front of the server; point the
                          code under test at ``proxy.endpoint`` and inject faults.

The engine is ``LIFT_ASGI_DYNAMODB_ENGINE`` (``moto`` or ``ministack``; see
:mod:`lift_asgi.local.engines` for the default). Set ``LIFT_ASGI_DYNAMODB_ENDPOINT`` to use
an already running server instead of starting one (requests to it are signed with the
environment's credentials, dummy ones when there are none): ``dynamodb_server`` is then
:meth:`LocalDynamoDB.attach`'s, with the same type and methods (``create_tables``,
``create_table``, ``delete_table``, ``endpoint``).

A failed test that used the local server gets a report section with the lines the server
logged during it (the traceback of each request it answered 500, its own errors).

The fixtures are synchronous (the fault proxy runs its own loop in a thread), so they work
whatever event loop scope pytest-asyncio gives a test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lift_asgi.dynamo.tables import GSISpec, TableSpec
from lift_asgi.local import LocalDynamoDB
from lift_asgi.testing.faults import FaultProxy

_DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


ENDPOINT_VARIABLE = "LIFT_ASGI_DYNAMODB_ENDPOINT"


@pytest.fixture(scope="session")
def dynamodb_server() -> Iterator[LocalDynamoDB]:
    for name, value in _DUMMY_ENV.items():
        os.environ.setdefault(name, value)
    external = os.environ.get(ENDPOINT_VARIABLE)
    if external:
        yield LocalDynamoDB.attach(external, region=_region())
        return
    server = LocalDynamoDB().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dynamodb_endpoint(dynamodb_server: LocalDynamoDB) -> str:
    return dynamodb_server.endpoint


@pytest.fixture
def dynamodb_env(dynamodb_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint)
    for name, value in _DUMMY_ENV.items():
        monkeypatch.setenv(name, value)
    return dynamodb_endpoint


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def create_local_table(endpoint: str, spec: TableSpec) -> TableSpec:
    """Create ``spec`` at ``endpoint``, TTL included, once it is ACTIVE (signed with the
    environment's credentials, so it also serves real DynamoDB and Alternator)."""
    return LocalDynamoDB.attach(endpoint, region=_region()).create_table(spec)


def delete_local_table(endpoint: str, name: str) -> None:
    """Delete table ``name``; one already gone (or a server gone) is not an error."""
    LocalDynamoDB.attach(endpoint, region=_region()).delete_table(name)


@pytest.fixture
def dynamodb_table_factory(dynamodb_endpoint: str) -> Iterator[Callable[..., TableSpec]]:
    made: list[str] = []

    def make(
        *,
        name: str | None = None,
        pk: str = "pk",
        sk: str | None = "sk",
        gsis: tuple[GSISpec, ...] = (GSISpec("gsi1", "gsi1pk", "gsi1sk"),),
        ttl_attribute: str | None = "ttl",
    ) -> TableSpec:
        spec = TableSpec(
            name=name or f"test-{uuid.uuid4().hex[:12]}",
            pk=pk,
            sk=sk,
            gsis=gsis,
            ttl_attribute=ttl_attribute,
        )
        create_local_table(dynamodb_endpoint, spec)
        made.append(spec.name)
        return spec

    yield make
    for table_name in made:
        delete_local_table(dynamodb_endpoint, table_name)


@pytest.fixture
def dynamodb_table(dynamodb_table_factory: Callable[..., TableSpec]) -> TableSpec:
    return dynamodb_table_factory()


@pytest.fixture
def dynamodb_rate_limit_table(dynamodb_table_factory: Callable[..., TableSpec]) -> TableSpec:
    return dynamodb_table_factory(name=f"rl-{uuid.uuid4().hex[:12]}", gsis=())


@pytest.fixture
def dynamodb_fault_proxy(dynamodb_endpoint: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(dynamodb_endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()


FIXTURES = frozenset(
    {
        "dynamodb_server",
        "dynamodb_endpoint",
        "dynamodb_env",
        "dynamodb_table",
        "dynamodb_table_factory",
        "dynamodb_rate_limit_table",
        "dynamodb_fault_proxy",
    }
)


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers",
        "dynamodb: the test talks to the local DynamoDB server (lift-asgi plugin); set "
        "on every test that uses one of its fixtures, so `-m dynamodb` with "
        "LIFT_ASGI_DYNAMODB_ENGINE=... reruns the integration tests on another engine",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.dynamodb)


_LOG_OFFSET = pytest.StashKey[int]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report carries what the local server logged while it ran."""
    outcome = yield
    server = getattr(item, "funcargs", {}).get("dynamodb_server")  # the fixture closure's
    if not isinstance(server, LocalDynamoDB):
        return
    if call.when == "setup":
        item.stash[_LOG_OFFSET] = server.log_offset
    report = outcome.get_result()
    if report.failed:
        tail = server.log_tail(100, since=item.stash.get(_LOG_OFFSET, 0))
        if tail:
            report.sections.append(("the local DynamoDB server's log", tail))
