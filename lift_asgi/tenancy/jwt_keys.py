"""JWT verification keys: loading them, and the one kind of key an allow-list may use.

Each algorithm PyJWT verifies needs one kind of key; an allow-list holds algorithms of
one kind only, and the key must be of that kind. That is what makes algorithm confusion
(an HS256 token "signed" with the RSA public key as its secret) impossible.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeAlias

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from lift_asgi.errors import ConfigurationError

__all__ = [
    "ALGORITHM_KEY_KIND",
    "HMAC",
    "PublicKey",
    "check_algorithms",
    "check_key",
    "default_algorithms",
    "key_kind",
    "load_public_key",
]

HMAC = "shared secret"
_RSA = "RSA public key"
_EC = "EC public key"
_OKP = "Ed25519/Ed448 public key"
ALGORITHM_KEY_KIND = {
    "HS256": HMAC,
    "HS384": HMAC,
    "HS512": HMAC,
    "RS256": _RSA,
    "RS384": _RSA,
    "RS512": _RSA,
    "PS256": _RSA,
    "PS384": _RSA,
    "PS512": _RSA,
    "ES256": _EC,
    "ES256K": _EC,
    "ES384": _EC,
    "ES512": _EC,
    "ES521": _EC,
    "EdDSA": _OKP,
}
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_EC_CURVE_ALGORITHM = {
    "secp256r1": "ES256",
    "secp256k1": "ES256K",
    "secp384r1": "ES384",
    "secp521r1": "ES512",
}
_EC_ALGORITHM_CURVE = {
    "ES256": "secp256r1",
    "ES256K": "secp256k1",
    "ES384": "secp384r1",
    "ES512": "secp521r1",
    "ES521": "secp521r1",
}
_RSA_MIN_BITS = 2048

PublicKey: TypeAlias = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


def load_public_key(key: Any) -> PublicKey | bytes:
    """A verification key: a public key object, or the bytes of a shared secret."""
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return key.public_key()
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return key.public_key()
    if isinstance(
        key,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        return key
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, bytes):
        raise ConfigurationError("key", f"unsupported key type {type(key).__name__}")
    text = key.strip()
    try:
        if text.startswith(b"-----BEGIN CERTIFICATE"):
            loaded: Any = x509.load_pem_x509_certificate(text).public_key()
        elif text.startswith(b"-----BEGIN") and b"PRIVATE KEY" in text.split(b"\n", 1)[0]:
            loaded = serialization.load_pem_private_key(text, password=None).public_key()
        elif text.startswith(b"-----BEGIN"):
            loaded = serialization.load_pem_public_key(text)
        elif text.startswith((b"ssh-", b"ecdsa-sha2-")):
            loaded = serialization.load_ssh_public_key(text)
        else:
            return key  # a shared secret
    except (ValueError, TypeError) as exc:
        raise ConfigurationError("key", "the PEM/SSH key could not be loaded") from exc
    if not isinstance(
        loaded,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        raise ConfigurationError("key", f"unsupported key type {type(loaded).__name__}")
    return loaded


def key_kind(key: PublicKey | bytes) -> str:
    if isinstance(key, bytes):
        return HMAC
    if isinstance(key, rsa.RSAPublicKey):
        return _RSA
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _EC
    return _OKP


def default_algorithms(key: PublicKey | bytes) -> list[str]:
    if isinstance(key, bytes):
        return ["HS256"]
    if isinstance(key, rsa.RSAPublicKey):
        return ["RS256"]
    if isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = _EC_CURVE_ALGORITHM.get(key.curve.name)
        if algorithm is None:
            raise ConfigurationError("key", f"unsupported EC curve {key.curve.name}")
        return [algorithm]
    return ["EdDSA"]


def check_algorithms(algorithms: Any) -> list[str]:
    if isinstance(algorithms, str) or not isinstance(algorithms, Iterable):
        raise ConfigurationError("algorithms", "must be a list of algorithm names")
    names = list(algorithms)
    if not names:
        raise ConfigurationError("algorithms", "must name at least one algorithm")
    for name in names:
        if isinstance(name, str) and name.lower() == "none":
            raise ConfigurationError("algorithms", "'none' (unsigned tokens) is never allowed")
        if not isinstance(name, str) or name not in ALGORITHM_KEY_KIND:  # [[...]]: unhashable
            raise ConfigurationError(
                "algorithms",
                f"unknown algorithm {name!r}; choose from {sorted(ALGORITHM_KEY_KIND)}",
            )
    kinds = {ALGORITHM_KEY_KIND[name] for name in names}
    if len(kinds) > 1:
        raise ConfigurationError(
            "algorithms",
            "mixes algorithms that need different kinds of key "
            f"({', '.join(sorted(kinds))}); one resolver verifies one kind",
        )
    return names


def check_key(key: PublicKey | bytes, algorithms: list[str]) -> None:
    """Refuse (:class:`ConfigurationError`) a key that does not fit ``algorithms``: another
    kind, an HMAC secret shorter than RFC 7518 asks or that PyJWT would refuse, an RSA key
    under 2048 bits, an EC key on another curve."""
    kind = key_kind(key)
    needed = ALGORITHM_KEY_KIND[algorithms[0]]
    if kind != needed:
        raise ConfigurationError(
            "key", f"algorithms {algorithms} need a {needed}, but the key is a {kind}"
        )
    if isinstance(key, bytes):
        try:  # PyJWT refuses PEM/SSH/DER key material as an HMAC secret: say so now
            jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256).prepare_key(key)
        except jwt.InvalidKeyError as exc:
            raise ConfigurationError("key", str(exc)) from exc
        shortest = max(_HMAC_MIN_BYTES[name] for name in algorithms)
        if len(key) < shortest:
            raise ConfigurationError(
                "key",
                f"an HMAC secret for {'/'.join(algorithms)} must be at least "
                f"{shortest} bytes (RFC 7518 section 3.2); this one is {len(key)}",
            )
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _RSA_MIN_BITS:
            raise ConfigurationError(
                "key", f"RSA keys must be at least {_RSA_MIN_BITS} bits, not {key.key_size}"
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        for name in algorithms:
            if _EC_ALGORITHM_CURVE[name] != key.curve.name:
                raise ConfigurationError(
                    "algorithms", f"{name} does not use the key's curve {key.curve.name}"
                )
