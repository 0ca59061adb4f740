"""streamsense's local AWS runtime: moto plus Lambda's event-source semantics, built from
infra.system.SYSTEM. Never shipped to Lambda. See ``LocalStack`` and ``python -m
streamsense_local --help``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamsense_local.stack import LocalStack

__all__ = ["LocalStack"]


def __getattr__(name: str) -> Any:
    # Lazy: the worker processes import this package and must not pay for boto3/moto here.
    if name == "LocalStack":
        from streamsense_local.stack import LocalStack

        return LocalStack
    raise AttributeError(name)
