"""The one structured record of a request, built from what the stages left in the scope.

Fields (``None`` when the stage did not run or had nothing to say): ``method``, ``route``
(the route template, never the path: a path can carry ids and tokens), ``status``,
``duration_ms``, ``rate_limit`` (``{"outcome", "rule"}``), ``commit`` (the unit of work's
outcome), ``dynamodb`` (:meth:`~lift_asgi.observe.cost.RequestCost.summary`), and under
Lambda ``lambda_request_id`` and ``trace_id``. ``request_id`` and ``tenant`` travel as the
log record's own attributes, as on every other record. Nothing from the headers but
the ids, nothing from the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lift_asgi.observe.cost import RequestCost
from lift_asgi.observe.ids import RequestIds

__all__ = ["rate_limit_fields", "request_fields"]


def rate_limit_fields(decision: Any) -> tuple[str | None, str | None]:
    """(outcome, rule) of the rate-limit stage's ``context(scope).rate_limit``.

    The stage's decision is read by its public names: ``outcome`` (``"admitted"``,
    ``"refused"``, ``"blocked"``, ``"degraded"``, ``"unavailable"``...) and ``rule``; a
    mapping with those keys and a plain outcome string are read too, and a bare
    :class:`~lift_asgi.ratelimit.core.Decision` (``allowed``) gives admitted/refused.
    """
    if decision is None:
        return None, None
    if isinstance(decision, str):
        return decision, None
    if isinstance(decision, Mapping):
        outcome, rule = decision.get("outcome"), decision.get("rule")
    else:
        outcome, rule = getattr(decision, "outcome", None), getattr(decision, "rule", None)
        if outcome is None:
            allowed = getattr(decision, "allowed", None)
            if isinstance(allowed, bool):
                outcome = "admitted" if allowed else "refused"
    rule_name = getattr(rule, "name", rule)
    return (
        str(outcome) if outcome is not None else None,
        str(rule_name) if rule_name is not None else None,
    )


def request_fields(
    ids: RequestIds,
    method: str,
    route: str | None,
    status: int | None,
    seconds: float,
    decision: Any,
    commit: str | None,
    cost: RequestCost | None,
    error: BaseException | None,
) -> dict[str, Any]:
    """The request record's fields (see the module's docstring)."""
    outcome, rule = rate_limit_fields(decision)
    fields: dict[str, Any] = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "rate_limit": {"outcome": outcome, "rule": rule} if outcome is not None else None,
        "commit": commit,
        "dynamodb": cost.summary() if cost is not None else None,
    }
    if ids.lambda_request_id is not None:
        fields["lambda_request_id"] = ids.lambda_request_id
    if ids.trace_id is not None:
        fields["trace_id"] = ids.trace_id
    if error is not None:
        fields["error"] = type(error).__name__
    return fields
