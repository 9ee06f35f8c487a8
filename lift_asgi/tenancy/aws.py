"""Tenant resolvers for AWS Lambda: what API Gateway and Lambda hand to the function.

Mangum puts the Lambda event in ``scope["aws.event"]`` and the Lambda context in
``scope["aws.context"]``. API Gateway has already verified its authorizer before the
function runs, so the authorizer context is a trusted source; so is Lambda's tenant
isolation ``context.tenant_id``. Outside Lambda (under uvicorn) neither answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.types import Scope

from lift_asgi.errors import ConfigurationError, InvalidTenant
from lift_asgi.tenancy.memo import source_name
from lift_asgi.tenancy.tenant import Tenant, as_text

__all__ = ["AuthorizerResolver", "LambdaTenantResolver"]


class AuthorizerResolver:
    """The tenant from the API Gateway authorizer context of the Lambda event.

    Looks, in this order, for ``tenant_claim`` in:

    - HTTP API (v2) JWT authorizer: ``requestContext.authorizer.jwt.claims``;
    - HTTP API (v2) Lambda authorizer: ``requestContext.authorizer.lambda``;
    - REST API (v1) Cognito authorizer: ``requestContext.authorizer.claims``;
    - REST API (v1) Lambda authorizer: ``requestContext.authorizer`` itself.

    ``user_claim`` and ``plan_claim`` are read from the same place; a v1 Lambda
    authorizer's ``principalId`` stands in for a missing user. Without an
    ``aws.event`` (local runs under uvicorn) this resolver gives no answer.
    """

    def __init__(
        self,
        *,
        tenant_claim: str = "tenant_id",
        user_claim: str | None = "sub",
        plan_claim: str | None = "plan",
        name: str = "authorizer",
    ) -> None:
        for option, claim in (
            ("tenant_claim", tenant_claim),
            ("user_claim", user_claim),
            ("plan_claim", plan_claim),
        ):
            if (claim is not None or option == "tenant_claim") and (
                not isinstance(claim, str) or not claim
            ):
                raise ConfigurationError(option, "must be a non-empty claim name")
        self.tenant_claim = tenant_claim
        self.user_claim = user_claim
        self.plan_claim = plan_claim
        self.name = source_name("name", name)

    async def resolve(self, scope: Scope) -> Tenant | None:
        event = scope.get("aws.event")
        if not isinstance(event, Mapping):
            return None
        context = event.get("requestContext")
        authorizer = context.get("authorizer") if isinstance(context, Mapping) else None
        if not isinstance(authorizer, Mapping):
            return None
        claim = self.tenant_claim
        jwt_context = authorizer.get("jwt")
        candidates = (
            jwt_context.get("claims") if isinstance(jwt_context, Mapping) else None,
            authorizer.get("lambda"),
            authorizer.get("claims"),
            authorizer,
        )
        for found in candidates:
            if isinstance(found, Mapping) and found.get(claim) is not None:
                return self._tenant(found, authorizer)
        return None

    def _tenant(self, found: Mapping[str, Any], authorizer: Mapping[str, Any]) -> Tenant:
        user = as_text(found.get(self.user_claim)) if self.user_claim else None
        if user is None and found is authorizer:
            user = as_text(authorizer.get("principalId"))
        plan = as_text(found.get(self.plan_claim)) if self.plan_claim else None
        tenant_id = as_text(found[self.tenant_claim])
        if tenant_id is None:
            raise InvalidTenant("The tenant id is malformed.")
        return Tenant(tenant_id, user, plan, found, self.name)


class LambdaTenantResolver:
    """The tenant Lambda's tenant isolation mode gives the invocation (``context.tenant_id``).

    No answer outside Lambda or for a function not in tenant isolation mode.
    """

    def __init__(self, *, name: str = "lambda-tenant") -> None:
        self.name = source_name("name", name)

    async def resolve(self, scope: Scope) -> Tenant | None:
        context = scope.get("aws.context")
        if context is None:
            return None
        if isinstance(context, Mapping):
            raw = context.get("tenant_id")
        else:
            raw = getattr(context, "tenant_id", None)
        if raw is None or raw == "":
            return None
        tenant_id = as_text(raw)
        if tenant_id is None:
            raise InvalidTenant("The tenant id is malformed.")
        return Tenant(tenant_id, source=self.name)
