"""Rules: what is limited, per what key, by how much. Everything here compiles once.

A :class:`Rule` is plain data; :class:`~lift_asgi.ratelimit.RateLimitMiddleware` compiles
it (:func:`compile_rule`) into matchers, a key function and limit sets with their header
bytes ready.

Keys (``key=``) are a built-in name, a callable ``(scope) -> str | None``, or a tuple of
those (a composite; every part must answer). ``None`` means "this rule does not apply to
this request" (no tenant on an exempt path, no API key header, ...).

================  ============================================================================
``"tenant"``      the tenant id (``context(scope).tenant``, set by TenantMiddleware outside)
``"user"``        ``tenant id:user`` of that tenant (users of two tenants never share a key)
``"ip"``          the client address: ``scope["client"]``; ``X-Forwarded-For`` only when the
                  peer is a trusted proxy (``trusted_proxies``); under Mangum the source IP
                  API Gateway saw, or for an ALB the right-most untrusted hop. IPv6
                  addresses are grouped by ``ipv6_prefix`` (/64) so one host cannot rotate
                  through its subnet; no address at all shares the key ``unknown``.
``"api_key"``     SHA-256 of the ``api_key_header`` (``X-API-Key``); never the key itself
``"route"``       the matched route template (``/projects/{id}``); ``*`` when none matched
``"method"``      the HTTP method
``"global"``      one key for everyone
================  ============================================================================

Limits (``limit=``) are a ``limits`` string (``"100/minute"``, ``"10/second;100/minute"``:
every window must pass), a mapping of plan to limit string (the tenant's ``plan``; the
``"default"`` entry, a limit string or the name of another plan, covers a missing or
unknown plan), or a callable ``(scope) -> str | None``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from limits import parse_many
from starlette.routing import compile_path
from starlette.types import Scope

from lift_asgi._net import forwarded_client
from lift_asgi._paths import compile_prefixes, route_path, under
from lift_asgi.errors import ConfigurationError
from lift_asgi.ratelimit.core import Window, Windows
from lift_asgi.stages import SCOPE_KEY

__all__ = [
    "STRATEGIES",
    "ClientIP",
    "KeyFunc",
    "KeySpec",
    "LimitSet",
    "LimitSpec",
    "RouteTable",
    "Rule",
    "api_key_digest",
]

KeyFunc: TypeAlias = Callable[[Scope], "str | None"]
KeySpec: TypeAlias = "str | KeyFunc | Sequence[str | KeyFunc]"
LimitSpec: TypeAlias = "str | Mapping[str, str] | Callable[[Scope], str | None]"
CostSpec: TypeAlias = "int | Callable[[Scope], int]"

STRATEGIES = ("fixed-window", "sliding-window-counter")
#: Failure policies (``on_failure``): what a rule does when its store cannot answer.
LOCAL: Final = "local"
REFUSE: Final = "refuse"
OPEN: Final = "open"
ON_FAILURE: Final = (LOCAL, REFUSE, OPEN)
#: The ``"ip"`` key of a request with no client address: one shared budget, so a server
#: that hides addresses (a Unix socket without a trusted proxy) limits, visibly.
UNKNOWN_CLIENT = "unknown"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_MAX_KEY = 512


@dataclass(frozen=True)
class Rule:
    """One limit. ``None`` options take the middleware's value.

    - ``limit``: see the module docs (string, plan mapping, or callable).
    - ``key`` (``"ip"``): see the module docs.
    - ``name``: names the counters (``{name}#{key}``) and the ``RateLimit-Policy``; by
      default ``"default"`` for the first rule, ``rule{n}`` for the others. Renaming a
      rule starts its counters afresh.
    - ``methods``: only these HTTP methods (all when ``None``).
    - ``routes``: only these Starlette route templates (``"/projects/{id}"``, convertors
      optional); ``path_prefix``: only paths under these prefixes (segment boundaries).
      Given both, either matches; given neither, every path.
    - ``cost`` (1): units per request, or a callable ``(scope) -> int`` (0 skips the rule).
    - ``strategy``: ``"fixed-window"`` or ``"sliding-window-counter"``.
    - ``on_failure``: ``"local"``, ``"refuse"`` or ``"open"``, when the store fails or is
      slow (see :class:`~lift_asgi.ratelimit.RateLimitMiddleware`).
    - ``fail_open``: removed; giving it raises a ConfigurationError naming ``on_failure``.
    """

    limit: LimitSpec
    key: KeySpec = "ip"
    name: str | None = None
    methods: Iterable[str] | None = None
    routes: Iterable[str] | None = None
    path_prefix: str | Iterable[str] | None = None
    cost: CostSpec = 1
    strategy: str | None = None
    on_failure: str | None = None
    fail_open: Any = None


def removed_fail_open() -> ConfigurationError:
    return ConfigurationError(
        "fail_open",
        "was removed (True let every request through uncounted while the store failed); "
        "use on_failure='local' (the default: count in this process with the same limits), "
        "'refuse' (503 with Retry-After) or 'open' (admit uncounted)",
    )


# ------------------------------------------------------------------------- limit sets


class LimitSet:
    """One parsed limit string for one rule, with its header bytes precomputed."""

    __slots__ = (
        "by_remaining",
        "limit_bytes",
        "limit_headers",
        "policy",
        "policy_header",
        "policy_names",
        "text",
        "windows",
    )

    def __init__(self, text: str, windows: Windows, policy_name: str) -> None:
        self.text = text
        self.windows = windows
        if len(windows) == 1:
            names = [policy_name]
        else:
            names = [f"{policy_name}-{w.seconds}s" for w in windows]
        self.policy_names: tuple[bytes, ...] = tuple(f'"{n}"'.encode() for n in names)
        self.limit_bytes: tuple[bytes, ...] = tuple(str(w.limit).encode() for w in windows)
        self.policy: bytes = b", ".join(
            b"%s;q=%d;w=%d" % (name, w.limit, w.seconds)
            for name, w in zip(self.policy_names, windows, strict=True)
        )
        # Whole header pairs, built once and shared by every response.
        self.limit_headers = tuple((b"x-ratelimit-limit", value) for value in self.limit_bytes)
        self.policy_header = (b"ratelimit-policy", self.policy)
        # Per window, per remaining count (filled as met, up to 4096 counts): the
        # X-RateLimit-Remaining pair and the RateLimit value up to its "t=".
        self.by_remaining: tuple[dict[int, tuple[tuple[bytes, bytes], bytes]], ...] = tuple(
            {} for _ in windows
        )

    def remaining_headers(self, index: int, remaining: int) -> tuple[tuple[bytes, bytes], bytes]:
        """``((b"x-ratelimit-remaining", b"N"), b'"name";r=N;t=')`` for window ``index``."""
        found = self.by_remaining[index].get(remaining)
        if found is None:
            value = b"%d" % remaining
            found = (
                (b"x-ratelimit-remaining", value),
                self.policy_names[index] + b";r=" + value + b";t=",
            )
            if 0 <= remaining < 4096:
                self.by_remaining[index][remaining] = found
        return found


def parse_limit(text: Any, strategy: str, policy_name: str, option: str = "limit") -> LimitSet:
    if not isinstance(text, str):
        raise ConfigurationError(
            option, f"a limit must be a string like '100/minute', not {text!r}"
        )
    try:
        items = parse_many(text)
    except ValueError as exc:
        raise ConfigurationError(option, f"cannot parse {text!r}: {exc}") from None
    sliding = strategy == "sliding-window-counter"
    by_seconds: dict[int, Window] = {}
    for item in items:
        seconds = item.get_expiry()
        known = by_seconds.get(seconds)
        if known is None or item.amount < known.limit:  # the same window twice: the smaller
            by_seconds[seconds] = Window(item.amount, seconds, sliding)
    windows = tuple(sorted(by_seconds.values(), key=lambda w: w.seconds))
    return LimitSet(text, windows, policy_name)


class _Limits:
    """``(scope) -> LimitSet | None`` for one rule."""

    def __init__(self, spec: Any, strategy: str, name: str) -> None:
        self._strategy = strategy
        self._name = name
        self.static: LimitSet | None = None
        self._plans: dict[str, LimitSet] = {}
        self._default: LimitSet | None = None
        self._fn: Callable[[Scope], str | None] | None = None
        self._parsed: dict[str, LimitSet] = {}
        if isinstance(spec, str):
            self.static = parse_limit(spec, strategy, name)
        elif isinstance(spec, Mapping):
            if "default" not in spec:
                raise ConfigurationError(
                    "limit",
                    "a plan mapping needs a 'default' entry (a limit string or a plan name) "
                    "for tenants whose plan is missing or unknown",
                )
            for plan, text in spec.items():
                if plan != "default":
                    self._plans[str(plan)] = parse_limit(text, strategy, name)
            default = spec["default"]
            if isinstance(default, str) and default in self._plans:
                self._default = self._plans[default]
            else:
                self._default = parse_limit(default, strategy, name)
        elif callable(spec):
            self._fn = spec
        else:
            raise ConfigurationError(
                "limit", "a limit string, a mapping of plan to limit string, or a callable"
            )

    @property
    def all_static(self) -> tuple[LimitSet, ...]:
        if self.static is not None:
            return (self.static,)
        sets = list(self._plans.values())
        if self._default is not None:
            sets.append(self._default)
        return tuple(sets)

    def __call__(self, scope: Scope) -> LimitSet | None:
        if self.static is not None:
            return self.static
        if self._fn is None:
            tenant = _tenant(scope)
            plan = getattr(tenant, "plan", None) if tenant is not None else None
            if plan is not None:
                found = self._plans.get(plan)
                if found is not None:
                    return found
            return self._default
        text = self._fn(scope)
        if text is None:
            return None
        parsed = self._parsed.get(text)
        if parsed is None:
            if len(self._parsed) >= 256:
                self._parsed.clear()
            parsed = self._parsed[text] = parse_limit(text, self._strategy, self._name)
        return parsed


# ----------------------------------------------------------------------------- keys


def _tenant(scope: Scope) -> Any:
    ctx = scope.get(SCOPE_KEY)
    return ctx.tenant if ctx is not None else None


def _tenant_key(scope: Scope) -> str | None:
    tenant = _tenant(scope)
    if tenant is None:
        return None
    tenant_id = getattr(tenant, "id", None)
    return tenant_id if isinstance(tenant_id, str) and tenant_id else None


def _user_key(scope: Scope) -> str | None:
    tenant = _tenant(scope)
    if tenant is None:
        return None
    user = getattr(tenant, "user", None)
    if not isinstance(user, str) or not user:
        return None
    return f"{tenant.id}:{user}"


def _method_key(scope: Scope) -> str | None:
    method: str = scope["method"]
    return method


def _global_key(scope: Scope) -> str | None:
    return "*"


def api_key_digest(raw: bytes) -> str:
    """The only form of an API key the rate limiter keeps: its SHA-256, in hex."""
    return hashlib.sha256(raw).hexdigest()


def _api_key(header: bytes) -> KeyFunc:
    def key(scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == header:
                value = bytes(value).strip()
                return api_key_digest(value) if value else None
        return None

    return key


class ClientIP:
    """The client address, trusting ``X-Forwarded-For`` only from ``trusted`` proxies.

    Like uvicorn's ProxyHeadersMiddleware: when the peer is trusted, the header's hops are
    read right to left and the first one that is not a trusted proxy is the client (the
    left-most if all are). ``trusted`` holds addresses and networks (``"10.0.0.0/8"``), or
    ``"*"`` for every peer (only behind a proxy that overwrites the header).
    """

    def __init__(self, trusted: str | Iterable[str] = (), ipv6_prefix: int = 64) -> None:
        if isinstance(trusted, str):
            trusted = [t.strip() for t in trusted.split(",") if t.strip()]
        self.always = False
        self._addresses: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in trusted:
            if not isinstance(entry, str):
                raise ConfigurationError("trusted_proxies", f"{entry!r} is not an address")
            if entry == "*":
                self.always = True
                continue
            try:
                if "/" in entry:
                    self._networks.append(ipaddress.ip_network(entry, strict=False))
                else:
                    self._addresses.add(ipaddress.ip_address(entry))
            except ValueError:
                raise ConfigurationError(
                    "trusted_proxies", f"{entry!r} is not an IP address or network"
                ) from None
        if not isinstance(ipv6_prefix, int) or not 1 <= ipv6_prefix <= 128:
            raise ConfigurationError("ipv6_prefix", "must be an integer from 1 to 128")
        self.ipv6_prefix = ipv6_prefix
        self.any_trusted = self.always or bool(self._addresses or self._networks)
        self._trust: dict[str, bool] = {}
        self._v6: dict[str, str] = {}

    def trusts(self, host: str) -> bool:
        if self.always:
            return True
        known = self._trust.get(host)
        if known is None:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                known = False
            else:
                if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                    address = address.ipv4_mapped  # a dual-stack socket's IPv4 peer
                known = address in self._addresses or any(address in n for n in self._networks)
            if len(self._trust) >= 4096:
                self._trust.clear()
            self._trust[host] = known
        return known

    def _from_forwarded(self, forwarded: str, fallback: str | None) -> str | None:
        return forwarded_client(forwarded, self.trusts) or fallback

    def group(self, host: str) -> str:
        """The key for an address: IPv4 as is; an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``,
        what a dual-stack socket reports for IPv4 peers) as its IPv4 address; other IPv6
        addresses grouped by ``ipv6_prefix``."""
        if ":" not in host:
            return host
        grouped = self._v6.get(host)
        if grouped is None:
            try:
                address = ipaddress.IPv6Address(host)
            except ValueError:
                grouped = host
            else:
                mapped = address.ipv4_mapped
                if mapped is not None:
                    grouped = str(mapped)
                elif self.ipv6_prefix == 128:
                    grouped = str(address)
                else:
                    grouped = str(
                        ipaddress.IPv6Network(f"{address}/{self.ipv6_prefix}", strict=False)
                    )
            if len(self._v6) >= 4096:
                self._v6.clear()
            self._v6[host] = grouped
        return grouped

    def __call__(self, scope: Scope) -> str | None:
        event = scope.get("aws.event")
        if event is not None:
            host = self._from_event(event, scope)
        else:
            client = scope.get("client")
            host = client[0] if client else None
            # No peer address (a Unix socket) is trusted only under "*", as in uvicorn.
            if self.any_trusted and (self.always if host is None else self.trusts(host)):
                values = [
                    bytes(v).decode("latin-1")
                    for k, v in scope["headers"]
                    if k == b"x-forwarded-for"
                ]
                if values:
                    host = self._from_forwarded(",".join(values), host)
        return self.group(host) if host else UNKNOWN_CLIENT

    def _from_event(self, event: Any, scope: Scope) -> str | None:
        context = (event.get("requestContext") or {}) if isinstance(event, Mapping) else {}
        http = context.get("http")
        if isinstance(http, Mapping) and http.get("sourceIp"):  # HTTP API (v2), function URL
            return str(http["sourceIp"])
        identity = context.get("identity")
        if isinstance(identity, Mapping) and identity.get("sourceIp"):  # REST API (v1)
            return str(identity["sourceIp"])
        if "elb" in context:
            # The ALB appends the address it saw: the right-most hop not a trusted proxy.
            forwarded = _event_header(event, "x-forwarded-for")
            return forwarded_client(forwarded, self.trusts) if forwarded else None
        client = scope.get("client")  # Lambda@Edge and others: Mangum's own reading
        return str(client[0]) if client and client[0] else None


def _event_header(event: Mapping[str, Any], name: str) -> str | None:
    multi = event.get("multiValueHeaders")
    if isinstance(multi, Mapping):
        for key, values in multi.items():
            if key.lower() == name and values:
                return ",".join(str(v) for v in values)
    headers = event.get("headers")
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if key.lower() == name and value:
                return str(value)
    return None


def _direct_ip(client_ip: ClientIP) -> KeyFunc:
    """The ``"ip"`` key when no proxy is trusted: the peer address, without detours."""
    group = client_ip.group

    def ip(scope: Scope) -> str | None:
        if "aws.event" in scope:
            return client_ip(scope)
        client = scope.get("client")
        if not client or not client[0]:
            return UNKNOWN_CLIENT
        host: str = client[0]
        return group(host) if ":" in host else host

    return ip


def _join(funcs: tuple[KeyFunc, ...]) -> KeyFunc:
    if len(funcs) == 2:  # the usual composite, without the loop
        first_func, second_func = funcs

        def pair(scope: Scope) -> str | None:
            first = first_func(scope)
            if first is None:
                return None
            second = second_func(scope)
            if second is None:
                return None
            if "|" in first:
                first = first.replace("|", "%7C")
            if "|" in second:
                second = second.replace("|", "%7C")
            return first + "|" + second

        return pair

    def key(scope: Scope) -> str | None:
        parts = []
        for func in funcs:
            part = func(scope)
            if part is None:
                return None
            parts.append(part.replace("|", "%7C") if "|" in part else part)
        return "|".join(parts)

    return key


def compile_key(
    spec: Any, *, client_ip: ClientIP, api_key_header: bytes, route: KeyFunc
) -> KeyFunc:
    builtins: dict[str, KeyFunc] = {
        "tenant": _tenant_key,
        "user": _user_key,
        "ip": client_ip if client_ip.any_trusted else _direct_ip(client_ip),
        "api_key": _api_key(api_key_header),
        "route": route,
        "method": _method_key,
        "global": _global_key,
    }

    def one(part: Any) -> KeyFunc:
        if isinstance(part, str):
            func = builtins.get(part)
            if func is None:
                raise ConfigurationError(
                    "key", f"unknown key {part!r}; known: {', '.join(sorted(builtins))}"
                )
            return func
        if callable(part):
            return part  # type: ignore[no-any-return]
        raise ConfigurationError("key", f"{part!r} is neither a key name nor a callable")

    if isinstance(spec, str) or callable(spec):
        return one(spec)
    if isinstance(spec, Sequence) and spec:
        funcs = tuple(one(part) for part in spec)
        return funcs[0] if len(funcs) == 1 else _join(funcs)
    raise ConfigurationError("key", "a key name, a callable, or a sequence of them")


# ---------------------------------------------------------------------------- routes


def template_of(option: str, template: Any) -> str:
    if not isinstance(template, str) or not template.startswith("/"):
        raise ConfigurationError(option, f"{template!r} must be a path starting with '/'")
    return compile_path(template)[1]


class RouteTable:
    """Which route template a path matches, from the app's own router: compiled once
    (on the first request), then cached per path (at most ``cache_size`` paths)."""

    def __init__(self, app: Any, router: Any = None, cache_size: int = 4096) -> None:
        self._app = app
        self._router = router
        self._table: list[tuple[re.Pattern[str], str]] | None = None
        self._cache: dict[str, str] = {}
        self._cache_size = cache_size

    def _compile(self, scope: Scope) -> list[tuple[re.Pattern[str], str]]:
        # The router the middleware wraps (through other middlewares), which also works
        # for an app mounted under another; then the app Starlette put in the scope.
        routes = _routes_of(self._router) if self._router is not None else None
        node = self._app
        while routes is None and node is not None:
            routes = _routes_of(node)
            node = getattr(node, "app", None)
        if routes is None:
            routes = _routes_of(scope.get("app"))
        table: list[tuple[re.Pattern[str], str]] = []
        _flatten(routes or [], "", table)
        return table

    def __call__(self, scope: Scope) -> str:
        path: str = route_path(scope) if scope.get("root_path") else scope["path"]
        template = self._cache.get(path)
        if template is not None:
            return template
        table = self._table
        if table is None:
            table = self._table = self._compile(scope)
        template = "*"
        for regex, fmt in table:
            if regex.match(path):
                template = fmt
                break
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[path] = template
        return template


def _routes_of(node: Any) -> list[Any] | None:
    if node is None:
        return None
    router = getattr(node, "router", None)
    routes = getattr(router, "routes", None) if router is not None else None
    if routes is None and not callable(getattr(node, "routes", None)):
        routes = getattr(node, "routes", None)
    return list(routes) if isinstance(routes, Iterable) and not isinstance(routes, str) else None


def _flatten(routes: Iterable[Any], prefix: str, table: list[tuple[re.Pattern[str], str]]) -> None:
    for route in routes:
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            continue  # Host routes and the like: not matched on the path
        if hasattr(route, "endpoint"):  # Route, APIRoute, WebSocketRoute
            regex, fmt, _ = compile_path(prefix + path)
            table.append((regex, fmt))
            continue
        children = getattr(route, "routes", None)
        if children:  # a Mount of a router: its routes, under its path
            _flatten(children, prefix + path, table)
        else:  # a Mount of another app (static files, ...): one template for all of it
            regex, _, _ = compile_path(prefix + path + "/{path:path}")
            table.append((regex, prefix + path or "/"))


# ------------------------------------------------------------------------ compilation


class CompiledRule:
    __slots__ = (
        "cost",
        "cost_fn",
        "everywhere",
        "key",
        "key_prefix",
        "limits",
        "methods",
        "name",
        "needs_tenant",
        "on_failure",
        "prefixes",
        "static",
        "templates",
    )

    def __init__(
        self,
        rule: Rule,
        *,
        name: str,
        strategy: str,
        on_failure: str,
        client_ip: ClientIP,
        api_key_header: bytes,
        route: KeyFunc,
    ) -> None:
        self.name = name
        self.key_prefix = name + "#"
        if strategy not in STRATEGIES:
            raise ConfigurationError(
                "strategy",
                f"{strategy!r} is not supported; use one of {', '.join(STRATEGIES)}",
            )
        self.limits = _Limits(rule.limit, strategy, name)
        self.static = self.limits.static  # no call per request for a fixed limit
        self.key = compile_key(
            rule.key, client_ip=client_ip, api_key_header=api_key_header, route=route
        )
        if rule.methods is None:
            self.methods: frozenset[str] | None = None
        else:
            if isinstance(rule.methods, str):
                raise ConfigurationError("methods", "a list of methods, such as ['POST']")
            self.methods = frozenset(str(m).upper() for m in rule.methods)
            if not self.methods:
                raise ConfigurationError("methods", "an empty list would match nothing")
        if rule.routes is None:
            self.templates: frozenset[str] | None = None
        else:
            if isinstance(rule.routes, str):
                raise ConfigurationError("routes", "a list of route templates")
            self.templates = frozenset(template_of("routes", t) for t in rule.routes)
        self.prefixes = compile_prefixes("path_prefix", rule.path_prefix)
        self.cost_fn: Callable[[Scope], int] | None
        if callable(rule.cost):
            self.cost, self.cost_fn = 1, rule.cost
        elif isinstance(rule.cost, int) and not isinstance(rule.cost, bool) and rule.cost >= 1:
            self.cost, self.cost_fn = rule.cost, None
        else:
            raise ConfigurationError("cost", "an integer >= 1 or a callable (scope) -> int")
        for limit_set in self.limits.all_static:
            smallest = min(w.limit for w in limit_set.windows)
            if self.cost > smallest > 0:  # (a limit of 0 refuses everything on purpose)
                raise ConfigurationError(
                    "cost", f"{self.cost} is above the limit {limit_set.text!r}: never admitted"
                )
        if rule.fail_open is not None:
            raise removed_fail_open()
        if on_failure not in ON_FAILURE:
            raise ConfigurationError("on_failure", f"one of {', '.join(map(repr, ON_FAILURE))}")
        self.on_failure: str = ON_FAILURE[ON_FAILURE.index(on_failure)]  # compared with `is`
        # What makes this rule need a tenant stage outside: its key, or limits by plan.
        self.needs_tenant: str | None = None
        if _uses_tenant(rule.key):
            self.needs_tenant = "key"
        elif isinstance(rule.limit, Mapping):
            self.needs_tenant = "limit"
        self.everywhere = self.methods is None and self.templates is None and not self.prefixes

    def applies(self, method: str, path: str, route: KeyFunc, scope: Scope) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        templates = self.templates
        if templates is None and not self.prefixes:
            return True
        if self.prefixes and under(path, self.prefixes):
            return True
        return templates is not None and route(scope) in templates


def _uses_tenant(spec: Any) -> bool:
    """Whether a key spec reads the tenant (``"tenant"``, ``"user"``, also in a composite)."""
    if isinstance(spec, str):
        return spec in ("tenant", "user")
    if isinstance(spec, Sequence):
        return any(isinstance(part, str) and part in ("tenant", "user") for part in spec)
    return False


def rule_name(option: str, name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigurationError(option, f"{name!r}: 1-64 letters, digits, '_', '.', '-'")
    return name


def bounded_key(key: str) -> str:
    """Keys past 512 characters are hashed: DynamoDB keys are bounded, headers are not."""
    if len(key) <= _MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
