"""How remote-storage failures are told apart, for :func:`loaders.files.call`'s retries: transient
(lost connections, timeouts, truncated bodies, HTTP 5xx and 429: retried) or not, and the one error
naming the URL that each becomes (FileNotFoundError, PermissionError, StorageUnavailable, OSError).
"""
from __future__ import annotations

import asyncio
from typing import Iterator, Optional


class StorageUnavailable(ConnectionError):
    """A remote store kept failing (connection errors, timeouts, 5xx, truncated bodies) after every retry."""


class ShortRead(Exception):
    """A response body shorter than the range asked for (a dropped connection)."""


def _causes(error: BaseException) -> Iterator[BaseException]:
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def _status(error: BaseException) -> Optional[int]:
    """The HTTP status behind an error (aiohttp, botocore), if any."""
    for cause in _causes(error):
        status = getattr(cause, "status", None)
        if isinstance(status, int):
            return status
        response = getattr(cause, "response", None)
        code = response.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(response, dict) else None
        if isinstance(code, int):
            return code
    return None


#: Connection failures botocore has already retried (its ``retries`` config): not retried again.
_RETRIED_BY_BACKEND = {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"}


def _unreachable(error: BaseException) -> bool:
    return any(type(cause).__name__ in _RETRIED_BY_BACKEND | {"ClientConnectorError"} for cause in _causes(error))


def transient(error: BaseException) -> bool:
    """Worth retrying: lost connections, timeouts, truncated bodies, HTTP 5xx and 429."""
    status = _status(error)
    if status is not None:
        return status >= 500 or status == 429
    transient = (ConnectionError, TimeoutError, asyncio.TimeoutError, ShortRead)
    for cause in _causes(error):
        name = type(cause).__name__
        if name in _RETRIED_BY_BACKEND:
            return False
        if isinstance(cause, transient) or name in (
            "ClientConnectionError", "ClientPayloadError", "ServerDisconnectedError", "ClientOSError", "FSTimeoutError",
        ):
            return True
    return False


def named_error(url: str, what: str, error: BaseException, attempts: int) -> BaseException:
    """One error naming the URL: missing, denied, or unavailable after ``attempts`` tries."""
    root = list(_causes(error))[-1]  # the first failure, e.g. under fsspec's FileNotFoundError(url)
    cause = f"{type(root).__name__}: {root}"
    status = _status(error)
    names = {type(cause).__name__ for cause in _causes(error)}
    if names & {"NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError"}:
        return PermissionError(f"{url}: no credentials found for {what}: pass them in storage_options "
                               f"(e.g. key=, secret= for s3://, token= for gs://) or the store's usual config ({cause})")
    if status in (401, 403) or (status is None and isinstance(error, PermissionError)):
        return PermissionError(f"{url}: access denied ({what}{f', HTTP {status}' if status else ''}): "
                               f"check the credentials in storage_options ({cause})")
    if status == 404 or (status is None and isinstance(error, FileNotFoundError) and not transient(error)):
        return FileNotFoundError(f"{url}: no such file or object")
    if _unreachable(error):
        return StorageUnavailable(f"{url}: {what} failed: cannot reach the endpoint ({cause})")
    if transient(error):
        return StorageUnavailable(f"{url}: {what} failed after {attempts} attempts: {cause}")
    return OSError(f"{url}: {what} failed: {cause}")
