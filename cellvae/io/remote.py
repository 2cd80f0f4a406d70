"""OME-Zarr over HTTP(S) and S3: URLs, zarr stores that stream chunks, retries.

A location is a local path or a URL ``https://host/image.ome.zarr`` / ``s3://bucket/key``.
URLs open through zarr's :class:`~zarr.storage.FsspecStore` (fsspec's HTTP file system and
``s3fs``; the ``remote`` extra), so only the metadata and the chunks a read touches are
fetched. S3 uses the usual credentials (``AWS_ACCESS_KEY_ID``/``AWS_PROFILE``/``~/.aws``, and
``AWS_ENDPOINT_URL`` for an S3-compatible server); without any it reads anonymously, as public
buckets allow.

A dropped connection or a server error while fetching a chunk is retried
(:data:`RETRIES` times, doubling the pause from :data:`RETRY_PAUSE_S`), each retry a one-line
warning; when every try fails the read raises :class:`RemoteReadError`, one line naming the
URL. Writers keep their output under a temporary name until complete
(:mod:`cellvae.io.atomic`), so a failed read never leaves a half-written output.
"""

from __future__ import annotations

import asyncio
import os
import re
import warnings
from pathlib import Path
from typing import Any

from cellvae.errors import CellvaeError

#: URL schemes read through fsspec
SCHEMES = ("http", "https", "s3")
#: tries after the first one, and the first pause between them (doubled each time), seconds
RETRIES = 3
RETRY_PAUSE_S = 0.5

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


class RemoteReadError(CellvaeError):
    """A remote chunk or file could not be read, even after retries."""


def is_url(location: object) -> bool:
    """True for ``scheme://...`` strings (a local path never has ``://``)."""
    return isinstance(location, str) and _URL.match(location) is not None


def scheme(location: str) -> str:
    """The lower-case scheme of a URL (``"https"``, ``"s3"``), ``""`` for a local path."""
    match = _URL.match(location) if isinstance(location, str) else None
    return match.group(1).lower() if match else ""


def check_url(url: str) -> str:
    """Refuse (one line) a URL whose scheme cannot be read; returns ``url``."""
    if scheme(url) not in SCHEMES:
        raise CellvaeError(f"{url}: unsupported URL scheme; use one of {', '.join(SCHEMES)}")
    return url


def join(location: str | os.PathLike, *parts: str) -> str | Path:
    """``location / part / ...`` for a path or a URL (joined with ``/``)."""
    if is_url(location):
        tail = "/".join(p.strip("/") for p in parts if p)
        return f"{str(location).rstrip('/')}/{tail}" if tail else str(location)
    return Path(location).joinpath(*[p for p in parts if p])


def as_location(location: str | os.PathLike) -> str | Path:
    """A URL as it is (``Path`` would fold its ``//``), anything else as a :class:`Path`."""
    return str(location) if is_url(location) else Path(location)


def name_of(location: str | os.PathLike) -> str:
    """The last component of a path or URL (``image.ome.zarr``)."""
    return str(location).rstrip("/").rsplit("/", 1)[-1] if is_url(location) else Path(location).name


def _s3_has_credentials() -> bool:
    """Whether botocore finds credentials (environment, profile, config files)."""
    try:
        import botocore.session
    except ImportError:  # s3fs brings botocore; without it s3fs is missing too
        return False
    try:
        return botocore.session.get_session().get_credentials() is not None
    except Exception:  # a broken profile: read anonymously rather than fail here
        return False


def storage_options(url: str) -> dict[str, Any]:
    """fsspec options for ``url``: anonymous S3 unless credentials are configured."""
    if scheme(url) == "s3":
        options: dict[str, Any] = {"anon": not _s3_has_credentials()}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["endpoint_url"] = endpoint
        return options
    return {}


def _fsspec_store(url: str):
    """zarr's read-only :class:`~zarr.storage.FsspecStore` for ``url``."""
    try:
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(url, storage_options=storage_options(url), read_only=True)
    except ImportError as err:
        raise CellvaeError(
            f"{url}: reading URLs needs the remote extra ({err.name or err} is missing): "
            "pip install 'cellvae[remote]'"
        ) from None
    except ValueError as err:
        raise CellvaeError(f"{url}: not a readable URL ({err})") from None


def _transient(err: BaseException) -> bool:
    """Whether a failed fetch is worth trying again (connection and server trouble)."""
    if isinstance(err, FileNotFoundError | PermissionError | CellvaeError):
        return False
    status = getattr(err, "status", None) or getattr(err, "code", None)
    if isinstance(status, int) and 400 <= status < 500 and status not in (408, 429):
        return False  # the server answered: not found, forbidden, bad request
    return isinstance(err, OSError | asyncio.TimeoutError | ConnectionError) or any(
        t.__module__.split(".")[0] in ("aiohttp", "botocore", "aiobotocore", "s3fs", "fsspec")
        for t in type(err).__mro__
    )


def _reason(err: BaseException, width: int = 80) -> str:
    """``Type: first line of the message``, cut to ``width`` characters."""
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    first = first if len(first) <= width else first[: width - 3] + "..."
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _retrying_store_class():
    from zarr.storage import WrapperStore

    class RetryingStore(WrapperStore):
        """A read-only store that retries failed fetches of its wrapped remote store."""

        url: str = ""

        def _with_store(self, store):
            new = type(self)(store=store)
            new.url = self.url
            return new

        async def _retry(self, what: str, call):
            pause = RETRY_PAUSE_S
            for attempt in range(RETRIES + 1):
                try:
                    return await call()
                except Exception as err:
                    if not _transient(err):
                        raise
                    if attempt == RETRIES:
                        raise RemoteReadError(
                            f"{join(self.url, what)}: read failed after {RETRIES + 1} tries "
                            f"({_reason(err)}); check the connection and rerun"
                        ) from None
                    warnings.warn(
                        f"{join(self.url, what)}: {_reason(err)}; retrying in {pause:g} s "
                        f"({attempt + 1} of {RETRIES})",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    await asyncio.sleep(pause)
                    pause *= 2
            raise AssertionError("unreachable")  # pragma: no cover

        async def get(self, key, prototype, byte_range=None):
            return await self._retry(key, lambda: self._store.get(key, prototype, byte_range))

        async def get_partial_values(self, prototype, key_ranges):
            key_ranges = list(key_ranges)
            first = key_ranges[0][0] if key_ranges else ""
            return await self._retry(
                first, lambda: self._store.get_partial_values(prototype, key_ranges)
            )

        async def exists(self, key):
            return await self._retry(key, lambda: self._store.exists(key))

    return RetryingStore


def open_store(url: str):
    """A read-only zarr store over ``url`` that streams chunks and retries failed fetches."""
    check_url(url)
    store = _retrying_store_class()(_fsspec_store(url))
    store.url = url.rstrip("/")
    return store


def zarr_target(location: str | os.PathLike):
    """What ``zarr.open*(store=...)`` should get: a store for a URL, a path string otherwise."""
    return open_store(str(location)) if is_url(location) else str(location)
