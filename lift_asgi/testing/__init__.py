"""Testing utilities: the pytest plugin's fixtures, the fault proxy, Lambda event builders."""

from lift_asgi.testing.faults import Call, Fault, FaultProxy

__all__ = ["Call", "Fault", "FaultProxy"]
