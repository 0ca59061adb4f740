"""Pseudonymization: raw identifiers (emails, IPs, card numbers, device ids) never reach a
table, an object or a queue. A keyed hash (HMAC-SHA256 with a secret pepper) maps each one to
a stable token, so features can still join on it while a leaked table reveals nothing that a
dictionary attack could reverse without the key. Coarse attributes (country, ASN, IPv4 /24)
may be kept as they are."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os

#: Environment variable that holds the pepper (in the cloud: resolved from Secrets Manager at
#: cold start by the function's config; locally: a fixed development value).
PEPPER_ENV = "STREAMSENSE_PSEUDONYM_KEY"
_DEV_PEPPER = "streamsense-local-development-pepper"


class Pseudonymizer:
    """HMAC-SHA256 tokens, namespaced by kind so that an email and an IP never collide."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("pseudonymization key must be at least 16 bytes")
        self._key = key

    @classmethod
    def from_env(cls) -> Pseudonymizer:
        return cls(os.environ.get(PEPPER_ENV, _DEV_PEPPER).encode())

    def token(self, kind: str, value: str) -> str:
        """A 128-bit hex token for ``value`` (e.g. kind='email')."""
        normalized = value.strip().lower() if kind == "email" else value.strip()
        digest = hmac.new(self._key, f"{kind}:{normalized}".encode(), hashlib.sha256)
        return f"{kind[:2]}_{digest.hexdigest()[:32]}"


def ip_prefix(ip: str) -> str:
    """The coarse network a client is in: IPv4 /24 or IPv6 /48, kept in clear."""
    addr = ipaddress.ip_address(ip)
    bits = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))
