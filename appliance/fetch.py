"""Downloading URL list sources so that a metered or poor link pays as little as it can.

- **Conditional requests.** The validators (`ETag`, `Last-Modified`) of each source's last good copy
  are kept beside it (`data_dir/lists/.fetch/NAME.json`) and sent back (`If-None-Match`,
  `If-Modified-Since`) to the URL the copy came from; a `304 Not Modified` costs a few hundred bytes and
  the copy is compiled again. Validators are kept only with a copy that gave entries: a refused
  download never makes a later 304 stand for it.
- **Compression on the wire** for text lists (`Accept-Encoding: gzip`; lists shrink about 4:1). An
  archive is asked for as it is (`identity`), so a server that labels a `.tar.gz` as gzip-encoded
  cannot get it unpacked on the way.
- **A cap per source** (`max_mb`, of the content): a `Content-Length` above it is refused before the
  body is read, a body that grows past it is cut off there.
- **Timeouts**: `connect_timeout_s` to open the connection, `timeout_s` for each wait for more bytes.
- **Retries** for what may pass (no connection, a timeout, a connection cut mid-body, a 5xx answer):
  `attempts` tries in all, waiting `backoff_s`, then twice that, and so on. A 4xx answer, a bad
  certificate, too many redirects or an oversize list are not retried: asking again would cost the same.
- **A mirror** (`mirror`): `<mirror>/<source name><archive suffix>` is tried first, once, with its own
  validators; when it fails, or gives something that is not the list, the source's own URL is tried.

Downloads stream into `data_dir/lists/.fetch/NAME.part` and become the last good copy by a rename, so
memory holds one read buffer, not the list, and an unchanged list is never written to the SD card again.
Transport: urllib3 (already installed with python-tuf for head office's bundles): separate connect and
read timeouts, connection reuse across sources of one server, streaming with the wire bytes counted.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generic, TypeVar

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    HTTPError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from appliance.archives import same_file
from appliance.config import FetchSettings
from appliance.files import fsync_path, write_atomically
from filters.errors import SourceRejected
from filters.report import FetchOutcome, FetchSummary
from filters.sources import Source

T = TypeVar("T")

USER_AGENT = "childsafe-appliance list fetch"
FETCH_DIR = ".fetch"  # in data_dir/lists: validators, downloads in progress (no source name starts with .)
MAX_REDIRECTS = 5
_CHUNK = 1 << 16
_REDIRECTS_ONLY = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=MAX_REDIRECTS)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Validators:
    """What a server said about the copy we hold, to ask it whether that copy is still current."""

    url: str  # the URL the copy came from: validators mean nothing to another server
    size: int  # the copy's size: a copy replaced by other means does not match its validators
    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        out = {}
        if self.etag:
            out["If-None-Match"] = self.etag
        if self.last_modified:
            out["If-Modified-Since"] = self.last_modified
        return out


@dataclass
class Fetched(Generic[T]):
    """The outcome of fetching one source: the checked copy to compile (None when there is none), where
    it lies, and the summary for the report. `keep()` makes a new copy the last good one."""

    checked: T | None
    path: Path | None
    summary: FetchSummary
    validators: Validators | None = None
    new: bool = False  # `path` is a fresh download, not yet the last good copy


class _Retry(Exception):
    """A failure that may pass: try again after a pause."""


class _NotModified(Exception):
    """The server says the copy we hold is current (304)."""


class _Tally:
    def __init__(self) -> None:
        self.bytes = 0
        self.requests = 0


class Downloader:
    """Fetches URL sources for one compile (one connection pool), keeping copies under `cache_dir`."""

    def __init__(self, settings: FetchSettings, cache_dir: Path) -> None:
        self.settings = settings
        self.cache_dir = cache_dir
        timeout = urllib3.Timeout(connect=settings.connect_timeout_s, read=settings.timeout_s)
        self._direct = urllib3.PoolManager(timeout=timeout)
        self._proxied: dict[str, urllib3.ProxyManager] = {}
        self._timeout = timeout

    def close(self) -> None:
        self._direct.clear()
        for pool in self._proxied.values():
            pool.clear()

    def copy_path(self, source: Source) -> Path:
        return self.cache_dir / source.name

    def _record_path(self, source: Source) -> Path:
        return self.cache_dir / FETCH_DIR / f"{source.name}.json"

    def _part_path(self, source: Source) -> Path:
        return self.cache_dir / FETCH_DIR / f"{source.name}.part"

    def mirror_url(self, source: Source) -> str | None:
        if not self.settings.mirror:
            return None
        return f"{self.settings.mirror.rstrip('/')}/{source.mirror_path}"

    def validators(self, source: Source) -> Validators | None:
        """The validators of the source's last good copy, if they still describe it."""
        try:
            data = json.loads(self._record_path(source).read_text(encoding="utf-8"))
            found = Validators(
                url=str(data["url"]),
                size=int(data["size"]),
                etag=None if data.get("etag") is None else str(data["etag"]),
                last_modified=None if data.get("last_modified") is None else str(data["last_modified"]),
            )
            if self.copy_path(source).stat().st_size != found.size:
                return None
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("%s: fetch record unreadable (%s): fetching it whole", source.name, e)
            return None
        return found

    def fetch(self, source: Source, check: Callable[[Path], T]) -> Fetched[T]:
        """Fetch `source` (a URL source): the mirror first if there is one, then its own URL. `check`
        reads a copy on disk and raises SourceRejected when it is not the list (an HTML page, a hostile
        archive); a copy it refuses is never kept. Never raises SourceRejected: a failure is in the
        summary, with `checked` None."""
        tally = _Tally()
        held = self.validators(source)
        candidates = [(url, True) for url in [self.mirror_url(source)] if url]
        candidates.append((source.location, False))
        mirror_problem = None
        reason = "not fetched"
        url = source.location
        for url, from_mirror in candidates:
            attempts = 1 if from_mirror else self.settings.attempts
            conditional = held if held is not None and held.url == url else None
            try:
                fetched = self._fetch_from(source, url, from_mirror, attempts, conditional, check, tally)
            except SourceRejected as e:
                reason = e.reason
                if from_mirror:
                    mirror_problem = f"{url}: {e.reason}"
                continue
            fetched.summary = replace(fetched.summary, mirror_problem=mirror_problem)
            return fetched
        summary = FetchSummary(
            outcome=FetchOutcome.FAILED,
            url=url,
            from_mirror=False,
            bytes_fetched=tally.bytes,
            attempts=tally.requests,
            reason=reason,
            mirror_problem=mirror_problem,
        )
        return Fetched(None, None, summary)

    def _fetch_from(
        self,
        source: Source,
        url: str,
        from_mirror: bool,
        attempts: int,
        conditional: Validators | None,
        check: Callable[[Path], T],
        tally: _Tally,
    ) -> Fetched[T]:
        part = self._part_path(source)
        copy = self.copy_path(source)

        def summary(outcome: FetchOutcome) -> FetchSummary:
            return FetchSummary(
                outcome=outcome,
                url=url,
                from_mirror=from_mirror,
                bytes_fetched=tally.bytes,
                attempts=tally.requests,
            )

        if conditional is not None:
            try:
                validators = self._download(url, part, source, attempts, conditional, tally)
            except _NotModified:
                try:
                    checked = check(copy)
                except SourceRejected as e:
                    log.warning("%s: the copy the server calls current is refused: %s", source.name, e.reason)
                else:
                    return Fetched(checked, copy, summary(FetchOutcome.UNCHANGED), conditional)
                validators = self._download(url, part, source, attempts, None, tally)
        else:
            validators = self._download(url, part, source, attempts, None, tally)
        try:
            checked = check(part)
        except SourceRejected:
            part.unlink(missing_ok=True)
            raise
        same = same_file(part, copy)
        outcome = FetchOutcome.UNCHANGED if same else FetchOutcome.UPDATED
        return Fetched(checked, part, summary(outcome), validators, new=True)

    def keep(self, source: Source, fetched: Fetched[T]) -> None:
        """Make a fetched copy the source's last good copy, with its validators (in that order: a record
        must never describe a copy it did not come with)."""
        if fetched.new and fetched.path is not None:
            copy = self.copy_path(source)
            os.replace(fetched.path, copy)
            fsync_path(copy.parent)
            fetched.new = False
            fetched.path = copy
        if fetched.validators is not None:
            record = self._record_path(source)
            data = {
                "url": fetched.validators.url,
                "size": self.copy_path(source).stat().st_size,
                "etag": fetched.validators.etag,
                "last_modified": fetched.validators.last_modified,
            }
            text = json.dumps(data, indent=1).encode("utf-8")
            try:
                if record.read_bytes() == text:
                    return
            except OSError:
                pass
            write_atomically(record, text)

    def discard(self, fetched: Fetched[T]) -> None:
        """Drop a fetched copy that was not kept."""
        if fetched.new and fetched.path is not None:
            fetched.path.unlink(missing_ok=True)
            fetched.new = False

    def _download(
        self,
        url: str,
        part: Path,
        source: Source,
        attempts: int,
        conditional: Validators | None,
        tally: _Tally,
    ) -> Validators:
        """Download `url` into `part`, trying up to `attempts` times. Raises _NotModified (only with
        `conditional`), or SourceRejected saying why."""
        problem = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.settings.backoff_s * 2 ** (attempt - 1))
            try:
                return self._get(url, part, source, conditional, tally)
            except _Retry as e:
                problem = str(e)
        tries = f" ({attempts} tries)" if attempts > 1 else ""
        raise SourceRejected(source.name, f"{problem}{tries}")

    def _pool(self, url: str) -> urllib3.PoolManager:
        """A direct pool, or a proxy's when the environment names one for this URL (as urllib did)."""
        parts = urllib.parse.urlsplit(url)
        proxy = urllib.request.getproxies().get(parts.scheme)
        if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
            return self._direct
        if proxy not in self._proxied:
            self._proxied[proxy] = urllib3.ProxyManager(proxy, timeout=self._timeout)
        return self._proxied[proxy]

    def _get(
        self, url: str, part: Path, source: Source, conditional: Validators | None, tally: _Tally
    ) -> Validators:
        archive = source.archive is not None
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity" if archive else "gzip"}
        if conditional is not None:
            headers |= conditional.headers()
        tally.requests += 1
        try:
            response = self._pool(url).request(
                "GET",
                url,
                headers=headers,
                preload_content=False,
                decode_content=not archive,
                retries=_REDIRECTS_ONLY,
            )
        except MaxRetryError as e:
            cause = e.reason
            if isinstance(cause, ConnectTimeoutError | ReadTimeoutError | ProtocolError):  # may pass
                raise _Retry(f"download failed: {_why(cause)}") from e
            raise SourceRejected(source.name, f"download failed: {_why(cause or e)}") from e
        except (ReadTimeoutError, ProtocolError) as e:
            raise _Retry(f"download failed: {_why(e)}") from e
        except (HTTPError, ValueError) as e:
            raise SourceRejected(source.name, f"download failed: {_why(e)}") from e
        try:
            return self._receive(response, url, part, source, conditional, tally, archive)
        finally:
            response.release_conn()

    def _receive(
        self,
        response: urllib3.BaseHTTPResponse,
        url: str,
        part: Path,
        source: Source,
        conditional: Validators | None,
        tally: _Tally,
        archive: bool,
    ) -> Validators:
        status = response.status
        if status == 304 and conditional is not None:
            tally.bytes += _drain_small(response)
            raise _NotModified
        if status >= 500:
            tally.bytes += _drain_small(response)
            raise _Retry(f"HTTP {status} {response.reason or ''}".rstrip())
        if status != 200:
            tally.bytes += _drain_small(response)
            raise SourceRejected(source.name, f"HTTP {status} {response.reason or ''}".rstrip())
        cap = self.settings.max_bytes
        too_big = f"larger than {cap // (1024 * 1024)} MB (lists.fetch.max_mb)"
        length = response.headers.get("Content-Length", "")
        encoded = response.headers.get("Content-Encoding", "identity") not in ("", "identity")
        if length.isdigit() and int(length) > cap and (archive or not encoded):
            response.close()  # refused before its body: not a byte more over the link
            raise SourceRejected(source.name, too_big)
        part.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        counted = 0
        try:
            with open(part, "wb") as f:
                for chunk in response.stream(_CHUNK, decode_content=not archive):
                    size += len(chunk)
                    wire = response.tell()
                    tally.bytes += wire - counted
                    counted = wire
                    if size > cap:
                        response.close()
                        raise SourceRejected(source.name, too_big)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except (ReadTimeoutError, ProtocolError) as e:
            tally.bytes += response.tell() - counted
            part.unlink(missing_ok=True)
            raise _Retry(f"download failed: {_why(e)}") from e
        except SourceRejected:
            part.unlink(missing_ok=True)
            raise
        except HTTPError as e:  # a body that cannot be decoded (gzip said, not sent), TLS failing mid-body
            tally.bytes += response.tell() - counted
            part.unlink(missing_ok=True)
            response.close()
            raise SourceRejected(source.name, f"download failed: {_why(e)}") from e
        except OSError as e:
            part.unlink(missing_ok=True)
            response.close()
            where = part.parent
            raise SourceRejected(source.name, f"cannot store the download in {where}: {e.strerror}") from e
        tally.bytes += response.tell() - counted
        # The validators belong to the URL asked for (after any redirect): it is the one asked again.
        return Validators(
            url=url,
            size=size,
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
        )


def _drain_small(response: urllib3.BaseHTTPResponse) -> int:
    """Read an error or 304 answer's body, if it is small (to reuse the connection); its wire bytes."""
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) <= _CHUNK:
        response.read()
    else:
        response.close()
    return response.tell()


def _why(error: BaseException) -> str:
    """A short reason in the admin's words (urllib3 puts its connection object's repr in its own)."""
    text = str(error)
    if isinstance(error, NameResolutionError):
        return f"cannot find the server's address: {text.rsplit('(', 1)[-1].rstrip(')')}"
    if isinstance(error, NewConnectionError):
        return f"cannot connect: {text.split('Failed to establish a new connection: ', 1)[-1]}"
    if isinstance(error, ConnectTimeoutError):
        return "no answer to the connection (lists.fetch.connect_timeout_s)"
    if isinstance(error, ReadTimeoutError):
        return "the server stopped sending (lists.fetch.timeout_s)"
    if isinstance(error, DecodeError):
        return (
            "the server said the list was compressed, but it could not be decompressed"
            " (a misconfigured server or proxy?)"
        )
    if isinstance(error, ProtocolError):
        return f"the connection was cut: {text}"
    if isinstance(error, SSLError):
        return f"TLS: {text}"
    return text


def summary_with(summary: FetchSummary, reason: str) -> FetchSummary:
    """The summary of a download whose copy gave nothing usable: failed, for `reason`."""
    return replace(summary, outcome=FetchOutcome.FAILED, reason=reason)
