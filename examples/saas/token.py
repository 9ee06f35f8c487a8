"""Mint a signed dev token: python -m examples.saas.token --tenant acme [--plan pro]."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

import jwt

from examples.saas.settings import DEV_SECRET, PLANS


def mint(
    tenant: str,
    *,
    plan: str = "free",
    sub: str = "dev-user",
    ttl: int = 3600,
    secret: str | None = None,
) -> str:
    now = int(time.time())
    claims = {"tenant_id": tenant, "sub": sub, "plan": plan, "iat": now, "exp": now + ttl}
    key = secret or os.environ.get("SAAS_JWT_SECRET") or DEV_SECRET
    return jwt.encode(claims, key, algorithm="HS256")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.saas.token")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--plan", default="free", choices=PLANS)
    parser.add_argument("--sub", default="dev-user")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until exp (3600)")
    args = parser.parse_args(argv)
    print(mint(args.tenant, plan=args.plan, sub=args.sub, ttl=args.ttl))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
