"""Error types the server turns into clear HTTP answers (never a stack trace to the client).

Each carries the HTTP status it maps to, so the app's request guard needs no table of its own.
"""
from __future__ import annotations


class RadgroundError(Exception):
    """Base of every error caused by the request, not by a bug: answered with ``status_code``."""

    status_code = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidImageError(RadgroundError):
    """The volume cannot be read, is not a 3D CT, or is over the size limit."""

    status_code = 422


class ImageTooLargeError(InvalidImageError):
    status_code = 413


class UnknownImageError(RadgroundError):
    status_code = 404


class UnknownModelError(RadgroundError):
    status_code = 404


class MissingReportError(RadgroundError):
    """A task that needs a report got none in the request and none in the datastore."""

    status_code = 422


class InvalidParamsError(RadgroundError):
    status_code = 422


class ModelNotReadyError(RadgroundError):
    """The task has no trained checkpoint yet (train it, or configure a path)."""

    status_code = 503
