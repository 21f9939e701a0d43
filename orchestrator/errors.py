"""One error hierarchy for the whole service.

Each class carries the CloudStack error code (``errorcode``, also the HTTP status of a
synchronous error) and ``cserrorcode`` (CloudStack's exception-class code). The API maps them
to envelopes in one place (``api/errors.py``); jobs store the same code in ``jobresultcode``.
"""
from __future__ import annotations


class MotionError(Exception):
    """Base class. Raised only through a subclass."""

    errorcode = 530
    cserrorcode = 4250

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


class InvalidParameter(MotionError):
    """Raised when a parameter is missing, malformed, names nothing, or its value is not allowed."""

    errorcode = 431
    cserrorcode = 4350


class MalformedParameter(MotionError):
    """Raised when a map parameter name is not of the form ``name[index].field``."""

    errorcode = 430
    cserrorcode = 9999


class Unauthenticated(MotionError):
    """Raised when a request's key, signature, expiry or session cannot be verified."""

    errorcode = 401
    cserrorcode = 9999


class UnsupportedAction(MotionError):
    """Raised when a command is unknown or not available to the caller's role."""

    errorcode = 432
    cserrorcode = 9999


class PermissionDenied(MotionError):
    """Raised when the caller may use the command but not on this object."""

    errorcode = 531
    cserrorcode = 4365


class ConcurrentOperation(MotionError):
    """Raised when an object changed state under us (a compare-and-set lost)."""

    errorcode = 530
    cserrorcode = 4300


class DatabaseUnavailable(MotionError):
    """Raised when the database cannot serve a request for the moment (connection refused or lost,
    the server shutting down or starting, a lock or deadlock it gave up on)."""

    errorcode = 530
    cserrorcode = 4250


class ResourceUnavailable(MotionError):
    """Raised when a host agent or a pool cannot be reached or refuses the work."""

    errorcode = 534
    cserrorcode = 4380


class AgentFailure(MotionError):
    """Raised when a host agent reports that a command failed."""

    errorcode = 530
    cserrorcode = 4250


class OperationTimedOut(MotionError):
    """Raised when an agent command did not finish within its deadline (``wait`` x 2)."""

    errorcode = 530
    cserrorcode = 4250


class InventoryError(MotionError):
    """Raised when an inventory file is invalid; the text names the offending entry."""

    errorcode = 431
    cserrorcode = 4350


class AgentUnreachable(ResourceUnavailable):
    """Raised when a host agent does not answer (connection refused, timeout, 5xx)."""


class AgentProtocolError(MotionError):
    """Raised when a host agent rejects a request as malformed (a bug on our side, not the caller's)."""

    errorcode = 530
    cserrorcode = 4250
