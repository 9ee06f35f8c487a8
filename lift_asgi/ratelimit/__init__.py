"""DynamoDB-backed rate limiting: :class:`RateLimitMiddleware`, its rules and keys, and
``limits`` storages on DynamoDB (``async+dynamodb://``, ``dynamodb://``), registered with
``limits`` when this package is imported."""

from lift_asgi.ratelimit.backends import Backend, LimitsBackend, MemoryBackend
from lift_asgi.ratelimit.client_ip import ClientIP
from lift_asgi.ratelimit.core import Decision, Window
from lift_asgi.ratelimit.keys import api_key_digest
from lift_asgi.ratelimit.middleware import RateLimitMiddleware
from lift_asgi.ratelimit.report import RateLimitStats
from lift_asgi.ratelimit.rules import Rule
from lift_asgi.ratelimit.storage import AsyncDynamoDBStorage
from lift_asgi.ratelimit.sync_storage import DynamoDBStorage
from lift_asgi.ratelimit.table import create_rate_limit_table, rate_limit_table_spec

__all__ = [
    "AsyncDynamoDBStorage",
    "Backend",
    "ClientIP",
    "Decision",
    "DynamoDBStorage",
    "LimitsBackend",
    "MemoryBackend",
    "RateLimitMiddleware",
    "RateLimitStats",
    "Rule",
    "Window",
    "api_key_digest",
    "create_rate_limit_table",
    "rate_limit_table_spec",
]
