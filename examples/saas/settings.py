"""The example's configuration, read once from the environment."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

DEV_SECRET = "dev-only-secret-not-for-production-use"
PLANS = ("free", "pro", "enterprise")


class SettingsError(RuntimeError):
    """The app cannot start with this environment."""


@dataclass(frozen=True)
class Settings:
    env: str
    jwt_secret: str
    table: str
    rate_table: str
    rates: dict[str, str] = field(default_factory=dict)
    endpoint: str | None = None
    region: str | None = None
    log_format: str = "text"
    #: Seconds the rate-limit table may take before a limited route answers 503.
    rate_timeout: float = 1.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        mode = env.get("SAAS_ENV", "prod")
        secret = env.get("SAAS_JWT_SECRET")
        if not secret:
            if mode != "dev":
                raise SettingsError(
                    "SAAS_JWT_SECRET is not set (only SAAS_ENV=dev falls back to a dev key)"
                )
            secret = DEV_SECRET
        return cls(
            env=mode,
            jwt_secret=secret,
            table=env.get("SAAS_TABLE", "saas-data"),
            rate_table=env.get("SAAS_RATE_TABLE", "saas-rate-limits"),
            rates={
                "free": env.get("SAAS_RATE_FREE", "100/minute"),
                "pro": env.get("SAAS_RATE_PRO", "1000/minute"),
                "enterprise": env.get("SAAS_RATE_ENTERPRISE", "10000/minute"),
            },
            endpoint=env.get("AWS_ENDPOINT_URL_DYNAMODB") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            log_format=_log_format(env.get("SAAS_LOG_FORMAT", "text")),
            rate_timeout=_seconds("SAAS_RATE_TIMEOUT", env.get("SAAS_RATE_TIMEOUT", "1")),
        )


def _log_format(value: str) -> str:
    fmt = value.strip().lower() or "text"
    if fmt not in ("text", "json"):
        raise SettingsError(f"SAAS_LOG_FORMAT must be 'text' or 'json', not {value!r}")
    return fmt


def _seconds(name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise SettingsError(f"{name} must be a number of seconds > 0, not {value!r}")
    return seconds
