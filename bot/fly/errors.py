"""Errors raised by the Fly client.

Every failure the client reports is a `FlyAPIError` (or a subclass), carrying the method,
the URL path, the HTTP status (None when no response arrived), Fly's `fly-request-id` and
Fly's own `error` text. None of them ever holds the API token.
"""

from __future__ import annotations


class FlyAPIError(Exception):
    """A call to Fly failed. `status` is None when no HTTP response was received."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status: int | None = None,
        request_id: str | None = None,
        error_code: str | None = None,
        retry_after: float | None = None,
        request_sent: bool = True,
    ) -> None:
        self.message = message
        self.method = method
        self.path = path
        self.status = status
        self.request_id = request_id
        # Fly's machine-readable `status` field: unknown, insufficient_capacity, name_taken...
        self.error_code = error_code
        self.retry_after = retry_after
        # False only when the request surely never reached Fly (connect failed): safe to resend.
        self.request_sent = request_sent
        super().__init__(self._text())

    def _text(self) -> str:
        where = f"{self.method} {self.path}"
        status = f" -> {self.status}" if self.status is not None else ""
        rid = f" (fly-request-id {self.request_id})" if self.request_id else ""
        return f"{where}{status}: {self.message}{rid}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(method={self.method!r}, path={self.path!r}, "
            f"status={self.status!r}, request_id={self.request_id!r}, message={self.message!r})"
        )


class BadRequestError(FlyAPIError):
    """400 or 422: Fly refused the request as malformed or invalid."""


class UnauthorizedError(FlyAPIError):
    """401 or 403: the token is missing, invalid, or lacks access."""


class NotFoundError(FlyAPIError):
    """404: no such app, machine, certificate or key (right after a create: not yet visible)."""


class ConflictError(FlyAPIError):
    """409: a concurrent change (`current_version` mismatch) or a lease held by someone else."""


class LeaseHeldError(ConflictError):
    """409 on a lease operation, or a leased machine changed without its nonce. `holder` is
    the lease as read back (owner, description, expiry) when the client could read it."""

    holder: object = None


class PreconditionFailedError(FlyAPIError):
    """412: metadata `machine_version` no longer matches."""


class RateLimitedError(FlyAPIError):
    """429: too many requests; `retry_after` is Fly's hint in seconds when it gave one."""


class FlyTimeoutError(FlyAPIError):
    """408 from Fly, a transport timeout, or a wait that ran past its deadline."""


class ServerError(FlyAPIError):
    """5xx from Fly."""


class TransportError(FlyAPIError):
    """No usable response: connection refused or reset, DNS failure, bad payload."""


def error_class_for(status: int) -> type[FlyAPIError]:
    if status in (400, 422):
        return BadRequestError
    if status in (401, 403):
        return UnauthorizedError
    if status == 404:
        return NotFoundError
    if status == 408:
        return FlyTimeoutError
    if status == 409:
        return ConflictError
    if status == 412:
        return PreconditionFailedError
    if status == 429:
        return RateLimitedError
    if status >= 500:
        return ServerError
    return FlyAPIError
