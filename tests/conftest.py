"""Shared test configuration. The DynamoDB fixtures come from lift-asgi's own pytest
plugin (``lift_asgi.testing.plugin``), loaded through its entry point exactly as in a
user's test suite."""

pytest_plugins = ["pytester"]
