"""Refusals a domain raises; the gRPC edge maps each to its status code.

Pure Python on purpose: domain modules import these and nothing else from this package.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every refusal."""


class InvalidArgument(DomainError):
    """A request field is malformed. `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFound(DomainError):
    pass


class FailedPrecondition(DomainError):
    """The request is well-formed but the aggregate's state forbids it; the message names the state."""


class AlreadyExists(DomainError):
    pass


class PermissionDenied(DomainError):
    """The caller is authenticated but this is outside their role or scope; nothing changed."""
