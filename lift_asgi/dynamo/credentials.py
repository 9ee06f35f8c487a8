"""Where the aiodynamo transport's AWS credentials come from.

The default chain is aiodynamo's (environment, ``~/.aws/credentials``, container and
instance metadata), with two changes a user expects:

- a provider that fails is logged at DEBUG, not with a traceback each: when none finds
  a key, the transport raises one clear error (and logs one line saying where it looked);
- against a loopback endpoint (``localhost``, 127.0.0.0/8, ``::1``: a local emulator,
  which does not check signatures), the metadata services are not probed and, when
  neither the environment nor the credentials file has a key, fixed dummy credentials
  sign the requests. So ``python -m lift_asgi.local`` then ``uvicorn`` works on a fresh
  machine. A non-loopback endpoint never gets dummy credentials.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from typing import Any

from aiodynamo.credentials import (
    ChainCredentials,
    ContainerMetadataCredentials,
    Credentials,
    EnvironmentCredentials,
    FileCredentials,
    InstanceMetadataCredentialsV1,
    InstanceMetadataCredentialsV2,
    Key,
    StaticCredentials,
)
from yarl import URL

__all__ = ["LOCAL_KEY", "default_credentials", "is_loopback"]

log = logging.getLogger("lift_asgi.dynamo")

#: What signs requests to a local emulator when no real credentials are configured.
LOCAL_KEY = Key("lift-asgi-local", "lift-asgi-local")

#: Where the default chain looks, for the one error line when it finds nothing.
SEARCHED = (
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, "
    "container and EC2 instance metadata"
)


def is_loopback(endpoint: URL | str | None) -> bool:
    """True when ``endpoint`` names this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if endpoint is None:
        return False
    host = (URL(endpoint) if isinstance(endpoint, str) else endpoint).host
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _QuietChain(ChainCredentials):
    """aiodynamo's chain, logging a failing provider at DEBUG instead of a traceback."""

    def __init__(self, candidates: Sequence[Credentials]) -> None:
        super().__init__(candidates)

    async def get_key(self, http: Any) -> Key | None:
        if self._chosen is not None:
            return await self._chosen.get_key(http)
        for candidate in self._candidates:
            try:
                key = await candidate.get_key(http)
            except Exception:
                log.debug("credentials provider %r failed", candidate, exc_info=True)
                continue
            if key is not None:
                self._chosen = candidate
                return key
        return None


def default_credentials(endpoint: URL | None) -> Credentials:
    """The credential chain for a transport talking to ``endpoint`` (``None``: AWS)."""
    if is_loopback(endpoint):
        return _QuietChain(
            [EnvironmentCredentials(), FileCredentials(), StaticCredentials(LOCAL_KEY)]
        )
    return _QuietChain(
        [
            EnvironmentCredentials(),
            FileCredentials(),
            ContainerMetadataCredentials(),
            InstanceMetadataCredentialsV2(),
            InstanceMetadataCredentialsV1(),
        ]
    )
