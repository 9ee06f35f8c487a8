"""``python -m examples.saas.setup`` creates both tables, and running it again is harmless."""

from __future__ import annotations

from lift_asgi.local import dynamodb_request
from lift_asgi.testing.plugin import delete_local_table

from .conftest import child_env, run_module, unique_name


def test_setup_is_idempotent(dynamodb_endpoint: str) -> None:
    data, rate = unique_name("data"), unique_name("rate")
    env = child_env(dynamodb_endpoint, SAAS_TABLE=data, SAAS_RATE_TABLE=rate)
    try:
        first = run_module("examples.saas.setup", env=env)
        assert first.returncode == 0, first.stdout + first.stderr
        for name in (data, rate):
            table = dynamodb_request(dynamodb_endpoint, "DescribeTable", {"TableName": name})
            assert table["Table"]["TableStatus"] == "ACTIVE"
        indexes = {
            index["IndexName"]
            for index in dynamodb_request(dynamodb_endpoint, "DescribeTable", {"TableName": data})[
                "Table"
            ].get("GlobalSecondaryIndexes", [])
        }
        assert indexes >= {"gsi1", "gsi2"}

        item = {"pk": {"S": "kept#x"}, "sk": {"S": "y"}, "note": {"S": "survives"}}
        dynamodb_request(dynamodb_endpoint, "PutItem", {"TableName": data, "Item": item})
        second = run_module("examples.saas.setup", env=env)
        assert second.returncode == 0, second.stdout + second.stderr
        kept = dynamodb_request(
            dynamodb_endpoint,
            "GetItem",
            {"TableName": data, "Key": {"pk": item["pk"], "sk": item["sk"]}},
        )
        assert kept.get("Item") == item  # the second run neither failed nor recreated
        tables = dynamodb_request(dynamodb_endpoint, "ListTables", {})["TableNames"]
        assert {data, rate} <= set(tables)
    finally:
        for name in (data, rate):
            delete_local_table(dynamodb_endpoint, name)
