"""Create the example's two tables if they are missing: python -m examples.saas.setup

Idempotent. Talks to ``AWS_ENDPOINT_URL_DYNAMODB`` when it is set, else to AWS.
"""

from __future__ import annotations

import asyncio

from examples.saas.settings import Settings
from lift_asgi.dynamo import AiodynamoTransport, GSISpec, TableSpec, create_table
from lift_asgi.ratelimit import rate_limit_table_spec


def data_table_spec(name: str) -> TableSpec:
    """pk/sk, plus two indexes: tasks of a project by status (gsi1) and by time (gsi2)."""
    return TableSpec(
        name=name,
        gsis=(GSISpec("gsi1", "gsi1pk", "gsi1sk"), GSISpec("gsi2", "gsi2pk", "gsi2sk")),
    )


async def create_tables(settings: Settings) -> list[tuple[str, bool]]:
    transport = AiodynamoTransport(settings.endpoint, settings.region)
    try:
        results = []
        for spec in (data_table_spec(settings.table), rate_limit_table_spec(settings.rate_table)):
            results.append((spec.name, await create_table(transport, spec)))
        return results
    finally:
        await transport.close()


def main() -> int:
    settings = Settings.from_env({"SAAS_ENV": "dev"} | dict(__import__("os").environ))
    for name, created in asyncio.run(create_tables(settings)):
        print(f"{name}: {'created' if created else 'already exists'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
