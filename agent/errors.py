"""The agent's error hierarchy: every error an HTTP caller can cause maps to one status code.

Routes never build error answers by hand; they raise one of these and the server turns it into
``{"error": text}`` with the class's ``status``.
"""
from __future__ import annotations


class AgentError(Exception):
    """Raised when a request cannot be served; base class, never raised itself."""

    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidRequest(AgentError):
    """Raised when a request body is malformed, misses a field or has a field of the wrong kind."""

    status = 400


class NotFound(AgentError):
    """Raised when a request names a host, volume or command the agent has never heard of."""

    status = 404


class Conflict(AgentError):
    """Raised when a request contradicts what is already on disk (e.g. a volume file of another size)."""

    status = 409


class Unavailable(AgentError):
    """Raised when a command is posted to a host agent that is shutting down."""

    status = 503
