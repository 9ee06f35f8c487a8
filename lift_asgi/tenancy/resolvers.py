"""The resolvers that read the request itself: a header, the host's subdomain, the path.

Each returns ``None`` when its source is absent and hands out one :class:`Tenant` object
per distinct input (a memo), so the middleware validates a hot tenant id once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from starlette.types import Scope

from lift_asgi._paths import route_path
from lift_asgi.errors import ConfigurationError
from lift_asgi.tenancy.memo import first_header, header_name, remember, source_name
from lift_asgi.tenancy.tenant import EMPTY_CLAIMS, Tenant

__all__ = ["HeaderResolver", "PathResolver", "SubdomainResolver"]

_MISSING: Any = object()


class HeaderResolver:
    """The tenant id from a request header (default ``X-Tenant-Id``).

    Any client can set a header. Trust this resolver only behind a gateway that strips
    the header from client requests and sets it itself; otherwise put a verified source
    (JWT, authorizer) first, or use it with ``require_consistent=True``.
    """

    def __init__(self, name: str = "x-tenant-id", *, source: str = "header") -> None:
        self.header = header_name("name", name)
        self.name = source_name("source", source)
        self._memo: dict[bytes, Tenant] = {}

    async def resolve(self, scope: Scope) -> Tenant | None:
        header = self.header
        for key, value in scope["headers"]:
            if key == header:
                tenant = self._memo.get(value)
                if tenant is None:
                    tenant = Tenant(value.decode("latin-1"), None, None, EMPTY_CLAIMS, self.name)
                    remember(self._memo, bytes(value), tenant)
                return tenant
        return None


class SubdomainResolver:
    """The tenant id from the first label of the ``Host`` header under ``base_domain``.

    ``acme.example.com`` gives ``acme`` with ``base_domain="example.com"``; the bare base
    domain, hosts outside it, deeper names (``a.b.example.com``) and labels in
    ``exclude`` (default ``www``) give no answer. Host names are case-insensitive, so the
    id is lower-cased.
    """

    def __init__(
        self,
        base_domain: str,
        *,
        exclude: Iterable[str] = ("www",),
        name: str = "subdomain",
    ) -> None:
        domain = base_domain.strip().strip(".").lower() if isinstance(base_domain, str) else ""
        if not domain or not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*", domain):
            raise ConfigurationError("base_domain", f"{base_domain!r} is not a domain name")
        self._suffix = "." + domain
        self._exclude = _labels(exclude)
        self.name = source_name("name", name)
        self._memo: dict[bytes, Tenant | None] = {}

    async def resolve(self, scope: Scope) -> Tenant | None:
        raw = first_header(scope, b"host")
        if raw is None:
            return None
        tenant: Tenant | None = self._memo.get(raw, _MISSING)
        if tenant is _MISSING:
            tenant = remember(self._memo, raw, self._parse(raw))
        return tenant

    def _parse(self, raw: bytes) -> Tenant | None:
        if raw.startswith(b"["):  # an IPv6 literal is never a tenant's host name
            return None
        host = raw.partition(b":")[0].decode("latin-1").lower().rstrip(".")
        suffix = self._suffix
        if not host.endswith(suffix):
            return None
        label = host[: -len(suffix)]
        if not label or "." in label or label in self._exclude:
            return None
        return Tenant(label, None, None, EMPTY_CLAIMS, self.name)


def _labels(exclude: Any) -> frozenset[str]:
    """``exclude`` as lower-case labels: one string is one label (``"www"``, not the
    letters ``w``), ``None`` is none."""
    if exclude is None:
        return frozenset()
    if isinstance(exclude, str):
        exclude = (exclude,)
    elif not isinstance(exclude, Iterable):
        raise ConfigurationError("exclude", f"must be a list of labels, not {exclude!r}")
    labels = tuple(exclude)
    for label in labels:
        if not isinstance(label, str):
            raise ConfigurationError("exclude", f"{label!r} is not a label such as 'www'")
    return frozenset(label.lower() for label in labels)


class PathResolver:
    """The tenant id from a path template such as ``"/tenants/{tenant_id}"``.

    The template matches a prefix of the path on a segment boundary, so
    ``/tenants/acme/items`` gives ``acme``. Other ``{name}`` placeholders match any one
    segment. The path is taken without the app's ``root_path``.
    """

    def __init__(
        self,
        template: str = "/tenants/{tenant_id}",
        *,
        param: str = "tenant_id",
        name: str = "path",
    ) -> None:
        if not isinstance(template, str) or not template.startswith("/"):
            raise ConfigurationError("template", f"{template!r} must start with '/'")
        if not isinstance(param, str) or not param.isidentifier():
            raise ConfigurationError("param", f"{param!r} must be a placeholder name")
        placeholders = re.findall(r"{([^{}]*)}", template)
        if placeholders.count(param) != 1:
            raise ConfigurationError(
                "template", f"{template!r} must contain {{{param}}} exactly once"
            )
        if not all(placeholder.isidentifier() for placeholder in placeholders) or re.search(
            r"[{}]", re.sub(r"{[^{}]*}", "", template)
        ):
            raise ConfigurationError("template", f"{template!r} has a malformed placeholder")
        pattern = ["^"]
        # A trailing "/" would demand a second one before the rest of the path.
        for literal, placeholder in re.findall(r"([^{}]*)(?:{([^{}]*)})?", template.rstrip("/")):
            pattern.append(re.escape(literal))
            if placeholder == param:
                pattern.append("(?P<tenant>[^/]*)")
            elif placeholder:
                pattern.append("[^/]+")
        pattern.append("(?:/|$)")
        self._regex = re.compile("".join(pattern))
        self.template = template
        self.name = source_name("name", name)
        self._memo: dict[str, Tenant] = {}

    async def resolve(self, scope: Scope) -> Tenant | None:
        match = self._regex.match(route_path(scope))
        if match is None:
            return None
        tenant_id = match.group("tenant")
        tenant = self._memo.get(tenant_id)
        if tenant is None:
            tenant = Tenant(tenant_id, None, None, EMPTY_CLAIMS, self.name)
            remember(self._memo, tenant_id, tenant)
        return tenant
