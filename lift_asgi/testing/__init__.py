"""Testing utilities: the pytest plugin's fixtures, the fault proxy, Lambda event builders."""

from lift_asgi.testing.events import (
    FakeLambdaContext,
    alb_event,
    api_gateway_v1_event,
    api_gateway_v2_event,
    function_url_event,
    lambda_context,
)
from lift_asgi.testing.faults import Call, Fault, FaultProxy

__all__ = [
    "Call",
    "FakeLambdaContext",
    "Fault",
    "FaultProxy",
    "alb_event",
    "api_gateway_v1_event",
    "api_gateway_v2_event",
    "function_url_event",
    "lambda_context",
]
