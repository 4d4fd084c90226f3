"""File access for landing and warehouse URIs, local or remote, via fsspec.

Everything that touches a file goes through here so that ``s3://…`` works
wherever a local path does.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import posixpath
import re
import stat
import time
import unicodedata
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

from etl.errors import BadInput, ConfigError, EtlError, SourceUnavailable, one_line
from etl.privacy import contains_email, mask_personal_data, redact_uri

log = logging.getLogger(__name__)


# Deadlines for every call to an object store (issue 22): a store that accepts connections and never
# answers, or stalls mid-answer, fails the call within about STORE_ATTEMPTS × (connect + request) seconds
# — about a minute by default — as SourceUnavailable naming the endpoint (retryable: Airflow retries the
# task with backoff instead of holding the writer slot for the task's whole timeout). Settable for slow
# links: ETL_STORE_CONNECT_TIMEOUT_SECONDS, ETL_STORE_TIMEOUT_SECONDS (one request, body included).
STORE_ATTEMPTS = 2  # one try and one retry, in delta-rs (object_store), botocore and s3fs alike
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_REQUEST_TIMEOUT = 30.0


def store_timeouts() -> tuple[float, float]:
    """(connect, request) deadlines in seconds for one call to an object store, from the environment.

    Raises :class:`ConfigError` for a value that is not a positive number.
    """
    values = []
    for name, default in (
        ("ETL_STORE_CONNECT_TIMEOUT_SECONDS", DEFAULT_CONNECT_TIMEOUT),
        ("ETL_STORE_TIMEOUT_SECONDS", DEFAULT_REQUEST_TIMEOUT),
    ):
        raw = os.environ.get(name, "").strip()
        try:
            value = float(raw) if raw else default
        except ValueError:
            value = -1.0
        if not 0 < value <= 3600:
            raise ConfigError(f"{name}={raw!r}: a number of seconds between 0 and 3600")
        values.append(value)
    return values[0], values[1]


def store_deadline() -> float:
    """The longest one call to an object store may take before it fails, in seconds (all attempts and backoff)."""
    connect, request = store_timeouts()
    return STORE_ATTEMPTS * (connect + request) + 2.0


def _endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"


# Endpoints that just let a call run out of time (endpoint → (until, line)). A run makes many calls in
# a row — the listing, the delivery record, the load log, the failure row — and each would wait out its
# own deadline: once one has, the others in this process fail at once with the same line for as long
# as a deadline lasts, so a run against a stalled store ends within one or two deadlines, not ten.
_STALLED: dict[str, tuple[float, str]] = {}


def stalled_store() -> str:
    """The one line for an object store that accepted the call but did not answer in time (names the endpoint).

    Also remembers the endpoint as stalled: see :func:`refuse_if_stalled`.
    """
    endpoint = _endpoint()
    connect, request = store_timeouts()
    line = (
        f"the object store at {redact_uri(endpoint)} did not answer within {store_deadline():.0f} s "
        f"({STORE_ATTEMPTS} attempts, {connect:g} s to connect, {request:g} s a request: "
        "ETL_STORE_TIMEOUT_SECONDS); stalled or overloaded? a retry later may succeed"
    )
    _STALLED[endpoint] = (time.monotonic() + store_deadline(), line)
    return line


def refuse_if_stalled() -> None:
    """Raise :class:`SourceUnavailable` at once when this process just saw the object store stall."""
    seen = _STALLED.get(_endpoint())
    if seen is None:
        return
    until, line = seen
    if time.monotonic() < until:
        raise SourceUnavailable(line)
    _STALLED.pop(_endpoint(), None)


def _s3_options() -> dict:
    """s3fs/botocore settings giving every request a deadline and a bounded number of attempts."""
    connect, request = store_timeouts()
    return {
        "config_kwargs": {
            "connect_timeout": connect,
            "read_timeout": request,
            "retries": {"total_max_attempts": STORE_ATTEMPTS, "mode": "standard"},
        }
    }


_SESSION = None


def _s3_session():
    """One aiobotocore session for s3fs, without botocore's ``Expect: 100-continue`` on uploads.

    With that header aiohttp waits for the server's "100 Continue" with no deadline at all: a store
    that accepts the connection and never answers hung every upload (the Data Docs, the delivery
    record) for ever, whatever the read timeout said.
    """
    global _SESSION
    if _SESSION is None:
        from aiobotocore.session import AioSession  # type: ignore[import-untyped]
        from botocore.handlers import add_expect_header  # type: ignore[import-untyped]

        session = AioSession()
        session.unregister("before-call.s3", add_expect_header)
        _SESSION = session
    return _SESSION


def _with_deadline(fs: fsspec.AbstractFileSystem) -> None:
    """Give every blocking method of an async fsspec filesystem a wall-clock deadline (:func:`store_deadline`).

    The per-request timeouts bound each request; this bounds a whole call (listing a folder is several
    requests, s3fs retries some errors itself), whatever a client library waits for. A call over its
    deadline raises fsspec's ``FSTimeoutError``, which :func:`store_error` turns into the one line.
    """
    import asyncio
    import functools

    from fsspec.asyn import sync

    if getattr(fs, "_etl_deadline", None) is not None:
        return
    deadline = store_deadline()
    for name in dir(type(fs)):
        if not name.startswith("_") or name.startswith("__"):
            continue
        blocking = name[1:]
        method = getattr(fs, name, None)
        if not asyncio.iscoroutinefunction(method) or not callable(getattr(type(fs), blocking, None)):
            continue

        def call(*args, _method=method, **kwargs):
            return sync(fs.loop, _method, *args, timeout=deadline, **kwargs)

        setattr(fs, blocking, functools.wraps(method)(call))
    fs._etl_deadline = deadline


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for ``uri`` and the path inside it (on ``s3://``, with deadlines: :func:`store_timeouts`)."""
    if uri.startswith(("s3://", "s3a://")):
        refuse_if_stalled()
        fs, path = fsspec.core.url_to_fs(uri, session=_s3_session(), **_s3_options())
        # s3fs retries timeouts itself too (5 times by default) on top of botocore: one attempt there.
        fs.retries = 1
        _with_deadline(fs)
        return fs, path
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def _protocols(fs: fsspec.AbstractFileSystem) -> set[str]:
    """The protocol names a filesystem answers to (fsspec gives one name or a tuple)."""
    return set(fs.protocol) if isinstance(fs.protocol, (tuple, list)) else {fs.protocol}


def _is_http(fs: fsspec.AbstractFileSystem) -> bool:
    return bool({"http", "https"} & _protocols(fs))


def delta_options(uri: str) -> dict[str, str]:
    """delta-rs storage options for a table URI: none locally; on S3-compatible stores, commits by conditional put.

    Credentials are not here: delta-rs, like boto3 and s3fs, reads the standard
    environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_ENDPOINT_URL``, ``AWS_REGION``), which the CLI inherits and a DAG sets
    from its Airflow Connection. An ``http://`` endpoint (an on-premises store
    on a closed network) is allowed explicitly.
    """
    if not uri.startswith(("s3://", "s3a://")):
        return {}
    refuse_if_stalled()
    connect, request = store_timeouts()
    options = {
        "conditional_put": "etag",
        # Deadlines (object_store's client options): a stalled store fails the call, it does not hang it.
        "connect_timeout": f"{connect:g}s",
        "timeout": f"{request:g}s",
        "max_retries": str(STORE_ATTEMPTS - 1),
        "retry_timeout": f"{STORE_ATTEMPTS * (connect + request):g}s",
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    return options


def make_folder(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Create ``path`` and its parents on a disk; nothing on an object store, which has no folders.

    (s3fs's ``makedirs`` asks whether the bucket exists and otherwise tries to create it: a warehouse
    must never create buckets, and on a stalled store that is three more calls to wait out.)
    """
    if not {"s3", "s3a"} & _protocols(fs):
        fs.makedirs(path, exist_ok=True)


def join(uri: str, *parts: str) -> str:
    return posixpath.join(uri.rstrip("/"), *parts)


def describe(exc: BaseException) -> str:
    """A store error as a log line's reason (its one line where it is a known store fault, which also
    remembers a stalled endpoint); for the places that carry on without the file (a cache, a record)."""
    known = store_error(exc)
    return str(known) if known is not None else f"{type(exc).__name__}: {exc}"


def store_error(exc: BaseException) -> EtlError | None:
    """An object-store client's own error as the project's one-line error; None when ``exc`` is not one.

    botocore and s3fs raise their own classes where a store refuses or cannot
    be reached from anywhere in a run (listing, hashing, validation results,
    the delivery record). Unmapped, they reach a person as an "unexpected"
    error and Airflow retries a missing credential for minutes. Returns
    :class:`ConfigError` (no or wrong credentials, access refused: the same
    on every retry) or :class:`SourceUnavailable` (the endpoint unreachable:
    worth retrying); the message is redacted.
    """
    name, text = type(exc).__name__, redact_uri(str(exc))
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return ConfigError(f"object store: no credentials for s3:// ({text}): {_SET_CREDENTIALS}")
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"):
        return SourceUnavailable(f"object store unreachable: {text}")
    if name in ("ReadTimeoutError", "TimeoutError", "FSTimeoutError") or isinstance(exc, TimeoutError):
        return SourceUnavailable(stalled_store())
    if isinstance(exc, OSError) and exc.errno == errno.EREMOTEIO:  # s3fs's word for an HTTP 5xx it gave up on
        return SourceUnavailable(f"the object store answered with a server error: {text}; a retry later may succeed")
    if name in ("HTTPClientError", "ResponseParserError", "IncompleteReadError", "ProxyConnectionError"):
        return SourceUnavailable(f"the object store's answer could not be read ({name}): {text}")
    if isinstance(exc, PermissionError):
        if _ACCESS_REFUSED.search(text):
            return ConfigError(f"the object store refused access ({text}): {_REFUSED_HINT}")
        return ConfigError(f"storage refused access: {text} (check the credentials and what they may do)")
    from deltalake.exceptions import DeltaError

    if isinstance(exc, DeltaError) or "Kernel error" in str(exc) or "↳" in str(exc):
        return delta_store_error("warehouse storage", exc)  # delta-rs, where no caller translated it
    if isinstance(exc, (NotADirectoryError, IsADirectoryError, FileExistsError)):
        # A path of the wrong kind (a file where a folder belongs, or the other way round): the place given
        # is wrong, the same on every retry.
        what = (
            "a folder stands where a file is needed"
            if isinstance(exc, IsADirectoryError)
            else "a file stands where a folder is needed"
        )
        where = redact_uri(str(exc.filename)) if exc.filename else text
        return ConfigError(f"{where}: {what} (check the path given)")
    if isinstance(exc, OSError) and exc.errno in _DISK_FAULTS:
        where = f" writing {redact_uri(str(exc.filename))}" if exc.filename else ""
        return EtlError(f"storage{where}: {_DISK_FAULTS[exc.errno]}")
    return None


# A disk that cannot take the write: the same line whichever library met it (Python's own OSError, or
# delta-rs' "os error N" inside its cause chain). Not a configuration error: it heals once space is made.
_DISK_FAULTS = {
    errno.ENOSPC: "no space left on the device (free space or move the warehouse, then run again)",
    errno.EDQUOT: "the disk quota is used up (free space or raise the quota, then run again)",
    errno.EROFS: "the file system is read-only (mounted read-only?)",
}


# What S3 says (botocore's text, the XML <Code>, a bodiless 403 to a HEAD) when it refuses the key, the
# secret or the key's rights — never a local file's "Permission denied", which a person fixes on disk.
_ACCESS_REFUSED = re.compile(
    r"SignatureDoesNotMatch|InvalidAccessKeyId|AccessDenied|Access Denied|signature we calculated does not match"
    r"|access key id you provided does not exist|^Forbidden$",
    re.IGNORECASE,
)
_SET_CREDENTIALS = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the Airflow Connection etl_object_store"
_REFUSED_HINT = "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the Airflow Connection etl_object_store) and what the key may do"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CAUSE = re.compile(r"\s*↳\s*")


def delta_store_error(what: str, exc: BaseException) -> EtlError:
    """A delta-rs error reaching the store as one redacted line: ``"<what>: <reason>"``.

    delta-rs (Rust ``object_store``) reports a store's refusal as a chain of
    causes over several lines with ANSI colours and the server's XML body;
    the chain is joined into one line, the server's body cut to its
    ``<Code>``. Wrong or missing credentials or rights (``SignatureDoesNotMatch``,
    ``InvalidAccessKeyId``, ``AccessDenied``, a fall-back to the EC2 metadata
    endpoint) and a missing bucket give :class:`ConfigError` — the same on
    every retry; an endpoint that does not answer :class:`SourceUnavailable`;
    everything else :class:`EtlError`.
    """
    text = _ANSI.sub("", str(exc))
    code = re.search(r"<Code>([^<]+)</Code>", text)
    # A server's answer body (S3's XML, or the HTML page of something that is not S3) is cut: its code stays.
    text = re.sub(r"(<\?xml|<!DOCTYPE|<html|<Error>).*", "", text, flags=re.DOTALL | re.IGNORECASE).strip()
    parts = [p.strip() for p in _CAUSE.split(" ".join(text.split())) if p.strip()]
    line = redact_uri(" ← ".join(parts + ([code.group(1)] if code else [])))
    if code is not None and _ACCESS_REFUSED.search(code.group(1)):
        return ConfigError(f"{what}: the object store refused access ({code.group(1)}): {_REFUSED_HINT}")
    if code is not None and code.group(1) == "NoSuchBucket":
        return ConfigError(f"{what}: the bucket does not exist (NoSuchBucket)")
    if "169.254.169.254" in text:  # no credentials configured: object_store asked the EC2 metadata service
        return ConfigError(f"{what}: no credentials for s3:// ({_SET_CREDENTIALS})")
    disk = re.search(r"\(os error (\d+)\)", text)
    if disk and int(disk.group(1)) in _DISK_FAULTS:
        return EtlError(f"{what}: {_DISK_FAULTS[int(disk.group(1))]}")
    # (Not "timeout": object_store names its retry_timeout setting in every retried error's text.)
    if re.search(r"timed out|deadline has elapsed", text, re.IGNORECASE):
        return SourceUnavailable(f"{what}: {stalled_store()}")
    server = re.search(r"status code: (5\d\d)", text)
    if server or (code is not None and code.group(1) in ("SlowDown", "InternalError", "ServiceUnavailable")):
        said = server.group(1) if server else code.group(1)  # type: ignore[union-attr]
        return SourceUnavailable(
            f"{what}: the object store answered with a server error ({said}); a retry later may succeed"
        )
    if re.search(r"connection refused|error sending request|dns error", text, re.IGNORECASE):
        return SourceUnavailable(f"{what}: object store unreachable: {line}")
    return EtlError(f"{what}: {line}")


def unreadable_error(uri: str, exc: OSError) -> EtlError:
    """The one-line error for landing storage that cannot read ``uri`` (``exc``, the store's error), redacted."""
    # Storage that is down or refuses us is an outside failure with a clear line, not a traceback;
    # wrong credentials are a setting, the same on every retry.
    if isinstance(exc, PermissionError) and _ACCESS_REFUSED.search(str(exc)):
        return ConfigError(redact_uri(f"landing storage: cannot read {uri}: {store_error(exc)}"))
    if isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower():
        return SourceUnavailable(redact_uri(f"landing storage: cannot read {uri}: {stalled_store()}"))
    if exc.errno == errno.EREMOTEIO or type(exc).__name__.endswith("ClientError"):
        known = store_error(exc)
        if known is not None:
            return type(known)(redact_uri(f"landing storage: cannot read {uri}: {known}"))
    return SourceUnavailable(redact_uri(f"landing storage: cannot read {uri}: {type(exc).__name__}: {exc}"))


# --------------------------------------------------------------------------- landing is a boundary (issue 22 §2)
#
# Landing takes regular files only. A symbolic link — to a file, to a folder, broken, or pointing back inside
# landing — is named and refused without a byte of it read, and so is a landing folder that is a link: what a
# link points at is not the sender's delivery (a link to /etc/passwd would put its lines in error messages,
# logs and tables). The landing root itself may be a link or a mount (/data/landing -> /mnt/x): it is resolved
# once per listing and every entry is judged against its real path. A file is opened without following a link
# (O_NOFOLLOW) and the opened file is checked to be a regular file at exactly the real path that was listed,
# so a link swapped in between listing and reading is refused too. Object stores have no links.


def link_refusal(name: str) -> str:
    """The one line naming a link in landing and the rule it breaks."""
    return f"{name!r} is a symbolic link: landing takes regular files only; copy the file in"


def hardlink_refusal(name: str) -> str:
    """The one line naming a file in landing that has other hard links (a second name of a file elsewhere)."""
    return f"{name!r} has other hard links: landing takes files copied in, not linked; copy the file in"


def _linked_folder(real_root: str, prefix: str) -> str | None:
    """The first folder of ``prefix`` under ``real_root`` that is a symbolic link (``'ehealth'``), else None."""
    here = real_root
    for part in [p for p in prefix.split("/") if p]:
        here = os.path.join(here, part)
        try:
            if stat.S_ISLNK(os.lstat(here).st_mode):
                return os.path.relpath(here, real_root)
        except FileNotFoundError:
            return None
    return None


def _opened_path(fd: int) -> str | None:
    """The real path of an open file as the kernel knows it (Linux's /proc), or None where it cannot say."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _open_regular(path: str, buffering: int = -1) -> BinaryIO:
    """Open a local landing file for reading: a regular file at exactly ``path``, with no link on the way.

    ``path`` is the file's real path as a listing found it (:attr:`LandedFile.location`). The last
    component is opened without following a link (``O_NOFOLLOW``; ``O_NONBLOCK`` so that a pipe does not
    hang the run), the opened file must be a regular file, and its real path must be ``path`` itself:
    a folder on the way replaced by a link since the listing leads elsewhere and is refused. Raises
    :class:`BadInput` naming the file; nothing of what a link points at is read.
    """
    path = os.path.abspath(path)
    name = posixpath.basename(path)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):  # (EMLINK: the BSDs' answer to O_NOFOLLOW on a link)
            raise BadInput(link_refusal(name)) from None
        raise
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise BadInput(f"{name!r}: not a regular file: landing takes regular files only")
        if opened.st_nlink > 1:  # (a hard link made after the listing)
            raise BadInput(hardlink_refusal(name))
        real = _opened_path(fd)
        if real is None:  # no /proc: the same check, from the path's side
            here = os.stat(path, follow_symlinks=False)
            same = (here.st_dev, here.st_ino) == (opened.st_dev, opened.st_ino)
            real = path if same and os.path.realpath(path) == path else ""
        if real != path:
            raise BadInput(
                f"{name!r}: a folder on its way is a symbolic link (swapped in after landing was listed?): "
                "landing takes regular files only"
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=buffering)
    except BaseException:
        os.close(fd)
        raise


def open_landed(fs: fsspec.AbstractFileSystem, path: str, *, buffering: int = -1) -> BinaryIO:
    """Open a landing file for reading: locally through :func:`_open_regular` (no links), elsewhere as the store does.

    ``buffering=0`` (local files only) gives the raw file, for a reader that reads large blocks itself (pyarrow).
    """
    if is_local(fs):
        return _open_regular(path, buffering)
    return fs.open(path, "rb")


def sha256_of(fs: fsspec.AbstractFileSystem, path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    try:
        with open_landed(fs, path) as handle:
            while block := handle.read(chunk):
                digest.update(block)
    except OSError as exc:
        raise unreadable_error(path, exc) from None
    return digest.hexdigest()


@dataclass(frozen=True)
class LandedFile:
    """A file found in landing storage, with what identifies its content."""

    uri: str  # full URI as recorded in lineage columns and the load log: NFC-normalised, credentials redacted
    name: str  # base name, e.g. journalen_2017-03.csv (NFC-normalised)
    size: int
    modified: float | None  # epoch seconds, when the store reports it
    sha256: str
    # The path as the store spells it (NFD on some senders' disks, credentials kept; locally the real path,
    # under the landing root's real path): open this, with open_landed.
    location: str = ""

    @property
    def path(self) -> str:
        """What to open: the store's own spelling when it differs from :attr:`uri`."""
        return self.location or self.uri


def safe_name(name: str) -> str:
    """Reject names that could escape their folder (``../``, absolute paths)."""
    if not name or name in {".", ".."} or "/" in name or "\\" in name or "\x00" in name:
        raise BadInput(f"unsafe file name in landing storage: {name!r}")
    return name


def hash_cache_uri(warehouse_uri: str, prefix: str) -> str:
    """Where the SHA-256 of the files under a landing prefix are remembered between runs."""
    return join(warehouse_uri, "_state", "landing_hashes", f"{prefix}.json")


def _content_stamp(info: dict) -> list:
    """What changes when a file's content changes, short of reading it.

    Size and modification time everywhere, plus the inode on a local disk
    (a replaced file is a new inode) and the ETag on an object store (a hash
    of the content the store keeps).
    """
    modified = info.get("mtime") or info.get("LastModified") or info.get("created")
    if modified is not None and hasattr(modified, "timestamp"):
        modified = modified.timestamp()
    etag = info.get("ETag") or info.get("etag") or ""
    return [
        int(info.get("size") or 0),
        float(modified) if modified is not None else None,
        str(etag),
        int(info.get("ino") or 0),
    ]


def _read_hash_cache(uri: str) -> dict[str, dict]:
    fs, path = filesystem(uri)
    try:
        if not fs.exists(path):
            return {}
        data = json.loads(fs.cat_file(path))
        files = data["files"] if data.get("version") == 1 else {}
        if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
            raise ValueError("not a map of file names to hashes")
        return files
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # Only a hint: an unreadable cache means hashing everything once more, not a failed run.
        log.warning("ignoring landing hash cache %s: %s", uri, describe(exc))
        return {}


def _write_hash_cache(uri: str, files: dict[str, dict]) -> None:
    fs, path = filesystem(uri)
    try:
        make_folder(fs, posixpath.dirname(path))
        tmp = f"{path}.{os.getpid()}.tmp"
        fs.pipe_file(tmp, json.dumps({"version": 1, "files": files}, sort_keys=True).encode())
        fs.mv(tmp, path)
    except OSError as exc:
        log.warning("could not write landing hash cache %s: %s", uri, describe(exc))


def _refusal(info: dict, name: str, prefix: str, suffixes: tuple[str, ...]) -> tuple[str, bool] | None:
    """Why a listed entry of ``<prefix>/`` is no delivery, or None when it is one.

    Returns (the line naming it and the rule, whether it is refused even by
    a listing that collects no ``skipped`` list): a link, a hard link or a
    name that could escape its folder always; the rest only when collected.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are no UTF-8 (a Latin-1 name from a Windows share or a zip)
        return f"{ascii(name)}: the file name is not valid UTF-8 (saved with another character set?); rename it", False
    if info.get("islink") or info.get("type") == "link":
        # Whatever it points at (a file, a folder, nothing, landing itself): never followed, never read.
        return link_refusal(name), True
    if info.get("type") == "directory":
        return f"{name!r} is a folder: deliveries are files directly under {prefix}/", False
    if not name.lower().endswith(suffixes):
        return f"{name!r}: not a file type this folder takes (accepted: {', '.join(suffixes)})", False
    if info.get("type") != "file":  # a pipe, a socket, a device
        return f"{name!r}: not a regular file: landing takes regular files only", False
    if int(info.get("nlink") or 1) > 1:
        # A hard link is a second name of a file that may live anywhere on the disk (/etc/passwd):
        # as much a way out of landing as a symbolic link, and as unread.
        return hardlink_refusal(name), True
    if one_line(name) != name:
        # A newline or a terminal escape in a name would split or recolour every line that names it.
        return f"{name!r}: the file name holds control characters (a line break, an escape); rename it", False
    try:
        safe_name(name)
    except BadInput as exc:
        return str(exc), True
    personal = personal_name_refusal(name)
    if personal is not None:
        return personal, True
    return None


def personal_name_refusal(name: str) -> str | None:
    """The one line refusing a file whose name holds an e-mail address (the name masked in it), else None.

    A name is lineage: it would reach ``source_file`` in every published row, the load log and every
    line that names the file. Only an address is refused: a personnummer's or a phone number's digits
    are too like a date-time stamp or a list of years (``Region Uppsala 20200215-1030.xlsx``) to refuse a
    sender's file on; every line that refuses a file masks all three.
    """
    if not contains_email(name):
        return None
    return f"{mask_personal_data(name)!r}: the file name holds personal data (an e-mail address); rename the file"


def _landing_entries(landing_uri: str, prefix: str, skipped: list[str] | None) -> tuple[Any, str, list[dict]]:
    """(filesystem, where files are opened from, the entries of ``<landing>/<prefix>/``) for :func:`list_landed`.

    Raises as :func:`list_landed` says for a missing root, a wrong bucket or
    an unreachable store; a missing prefix is no delivery yet (no entries),
    and a prefix that is a link is refused (named in ``skipped``, else raised).
    """
    fs, root = filesystem(join(landing_uri, prefix))
    opened_from = landing_uri  # where files are opened: locally the landing root's real path (see link_refusal)
    try:
        if is_local(fs) and not fs.exists(filesystem(landing_uri)[1]):
            # A missing landing root is an unmounted volume or a wrong setting: say so, don't
            # report "nothing new" every day. (A missing <prefix>/ is just no delivery yet; object
            # stores have no folders, so there an absent prefix always reads as empty.)
            raise SourceUnavailable(
                f"landing storage: {redact_uri(landing_uri)} does not exist (unmounted, or a wrong landing URI?)"
            )
        if is_local(fs):
            # The root may be a link or a mount (resolved once, here); nothing under it may be a link.
            opened_from = os.path.realpath(filesystem(landing_uri)[1])
            root = join(opened_from, prefix)
            linked = _linked_folder(opened_from, prefix)
            if linked is not None:
                refusal = (
                    f"{linked!r} is a symbolic link: landing takes regular files in real folders only; "
                    "copy the files in"
                )
                if skipped is None:
                    raise BadInput(refusal)
                skipped.append(refusal)
                return fs, opened_from, []
        if is_local(fs) and not fs.exists(root):
            return fs, opened_from, []
        # Elsewhere ls itself answers: a missing prefix is FileNotFoundError (no delivery yet), while a
        # store that cannot be reached raises another error (exists() would hide it as "absent").
        entries = fs.ls(root, detail=True)
    except FileNotFoundError:
        if _is_http(fs) and not fs.exists(filesystem(landing_uri)[1].rstrip("/") + "/"):
            # A web server has folders: a landing root it does not know is a wrong URI, not "no delivery yet".
            raise SourceUnavailable(
                f"landing storage: {redact_uri(landing_uri)} does not exist on the server (a wrong landing URI?)"
            ) from None
        if not is_local(fs) and not _is_http(fs):
            # An object store has buckets: an absent prefix is "no delivery yet", an absent bucket (or an
            # endpoint that is no object store at all) a wrong setting, not "nothing new" every day.
            bucket = root.split("/", 1)[0]
            try:
                fs.ls(bucket, detail=False)
            except FileNotFoundError:
                raise ConfigError(
                    f"landing storage: bucket {bucket!r} of {redact_uri(landing_uri)} does not exist "
                    "(a wrong landing URI or AWS_ENDPOINT_URL?)"
                ) from None
            except OSError as exc:
                raise unreadable_error(join(landing_uri, prefix), exc) from None
        return fs, opened_from, []
    except OSError as exc:
        raise unreadable_error(join(landing_uri, prefix), exc) from None
    return fs, opened_from, entries


def list_landed(
    landing_uri: str,
    prefix: str,
    suffixes: tuple[str, ...],
    *,
    skipped: list[str] | None = None,
    hash_cache: str | None = None,
    settle_seconds: float = 0.0,
    arriving: list[str] | None = None,
    arriving_names: set[str] | None = None,
) -> list[LandedFile]:
    """Files directly under ``<landing>/<prefix>/`` with one of ``suffixes``, sorted by name.

    Hidden entries (``.name``, e.g. an upload in progress) are not
    deliveries. Every other entry is either returned or accounted for: when
    the caller passes ``skipped``, an entry that cannot be taken in — a
    folder, a name without one of ``suffixes``, a name that could escape its
    folder (``..``, ``\\``), a symbolic link, anything else that is no
    regular file — is described there (the pipeline then loads the rest and
    fails naming it); without a list, an unsafe name or a link raises
    :class:`BadInput` and other entries are ignored.

    **Landing is a boundary** (see :func:`link_refusal`): a symbolic link is
    refused whatever it points at, unread, and so is ``<prefix>/`` itself
    when it is a link (nothing under it is listed). Locally the landing root
    is resolved once (it may be a link or a mount) and every
    :attr:`LandedFile.location` is a real path under it, which
    :func:`open_landed` opens only if it still is a regular file reached
    without a link.

    **Files still being written.** A file modified less than
    ``settle_seconds`` ago is still arriving: it is not returned but named in
    ``arriving`` (when given), and the next run takes it once it has been
    left alone that long — by its modification time, or (with
    ``hash_cache``, which remembers when each size/time was first seen) by
    having been listed unchanged that long, so a file stamped in the future
    by a sender's clock is not held back for ever. Names are NFC-normalised
    (a file saved on macOS arrives NFD-spelled; both spellings are one
    delivery); a name that is not valid UTF-8 is named in ``skipped``.
    ``arriving_names`` (when given) receives the NFC names of the files still arriving.

    Every file's SHA-256 identifies what was loaded. With ``hash_cache`` (see
    :func:`hash_cache_uri`), a file whose size, modification time, inode or
    ETag are unchanged since the last listing keeps its remembered hash
    instead of being read again — a run with nothing new then costs a
    listing, not a download of the whole landing area. (A file rewritten in
    place with the same size *and* its old modification time restored would
    be missed; deliveries do not do that.)
    """
    # Size: listing, the settle check and the remembered hashes per entry; what an entry may be is _refusal.
    fs, opened_from, entries = _landing_entries(landing_uri, prefix, skipped)
    cached = _read_hash_cache(hash_cache) if hash_cache else {}
    remembered: dict[str, dict] = {}
    found: list[LandedFile] = []
    now = time.time()
    for info, stored_name, name in _deliveries(entries, prefix, suffixes, skipped):
        stamp = _content_stamp(info)
        known = cached.get(name) or {}
        same = bool(known) and known.get("stamp") == stamp
        # Unchanged since which listing: a file counts as settled when its modification time is
        # settle_seconds old, or when this listing and one settle_seconds ago saw the same size,
        # time, inode/ETag (a sender's clock ahead of ours must not hold a file back for ever).
        seen = float(known.get("seen") or now) if same else now
        if settle_seconds and stamp[1] is not None and now - stamp[1] < settle_seconds and now - seen < settle_seconds:
            if arriving is not None:
                age = now - stamp[1]
                when = (
                    f"was modified {age:.0f} s ago (still being written?)"
                    if age >= 0
                    else f"has a modification time {-age:.0f} s in the future (the sender's clock?)"
                )
                arriving.append(f"{name!r} {when}; it is loaded once left unchanged for {settle_seconds:.0f} s")
            if arriving_names is not None:
                arriving_names.add(name)
            remembered[name] = {"stamp": stamp, "seen": seen, "sha256": known.get("sha256") if same else None}
            continue
        # Without a modification time, ETag or inode only the size is left: too little to trust.
        telling = stamp[1] is not None or stamp[2] or stamp[3]
        reuse = telling and same and known.get("sha256")
        location = join(opened_from, prefix, stored_name)
        try:
            sha256 = known["sha256"] if reuse else sha256_of(fs, location if is_local(fs) else info["name"])
        except BadInput as exc:  # became a link (or a link appeared on its way) since the listing
            if skipped is None:
                raise
            skipped.append(str(exc))
            continue
        remembered[name] = {"stamp": stamp, "seen": seen, "sha256": sha256}
        found.append(
            LandedFile(
                uri=redact_uri(join(landing_uri, prefix, name)),
                name=name,
                size=stamp[0],
                modified=stamp[1],
                sha256=sha256,
                location=location,
            )
        )
    if hash_cache and remembered != cached:
        _write_hash_cache(hash_cache, remembered)
    return _one_per_name(found, skipped)


@dataclass(frozen=True)
class ListedName:
    """A delivery's entry as a listing sees it, nothing read: NFC name, bytes, modification time (epoch s), and
    where it is (the name as stored)."""

    name: str
    size: int
    modified: float | None
    location: str


def list_names(landing_uri: str, prefix: str, suffixes: tuple[str, ...]) -> list[ListedName]:
    """What :func:`list_landed` would consider from ``<landing>/<prefix>/``, by listing only (no read, no hash).

    Cheap enough for monitoring (which months have landed). The same
    boundary as a run's: hidden entries, links, hard links, folders, other
    suffixes and unsafe names are left out (a run names them); of a name in
    two spellings (NFC and NFD) the newer is kept; files still arriving are
    included. Raises :class:`BadInput` when ``<prefix>/`` is a symbolic link,
    and :class:`SourceUnavailable` or :class:`ConfigError` as :func:`list_landed`
    does for a missing landing root, bucket or store.
    """
    _, opened_from, entries = _landing_entries(landing_uri, prefix, None)
    listed = []
    for info, stored_name, name in _deliveries(entries, prefix, suffixes, []):  # what is left out, a run names
        size, modified, *_ = _content_stamp(info)
        listed.append(ListedName(name, size, modified, join(opened_from, prefix, stored_name)))
    return _one_per_name(listed, None)


def _deliveries(entries: list[dict], prefix: str, suffixes: tuple[str, ...], skipped: list[str] | None):
    """(entry, name as stored, NFC name) of each listed entry that may be a delivery (:func:`_refusal`).

    Hidden entries are passed over; a refused one is named in ``skipped``, or, without a list, raised when
    it is refused always (a link, an unsafe name) and passed over otherwise.
    """
    for info in entries:
        stored_name = posixpath.basename(info["name"].rstrip("/"))
        name = unicodedata.normalize("NFC", stored_name)
        if name.startswith("."):
            continue
        refused = _refusal(info, name, prefix, suffixes)
        if refused is not None:
            line, always = refused
            line = mask_personal_data(line)  # the name, whatever the rule it breaks, may hold personal data
            if skipped is None:
                if always:  # a link or an unsafe name is refused even where nobody collects the rest
                    raise BadInput(line)
                continue
            skipped.append(line)
            continue
        yield info, stored_name, name


def landed_file(uri: str) -> LandedFile:
    """One file named directly (``python -m etl check FILE``), described as a listing would describe it.

    Raises :class:`BadInput` when ``uri`` is not a file, and
    :class:`SourceUnavailable` when it cannot be read. A symbolic link is
    refused as a run would refuse it in landing (:func:`link_refusal`): the
    verdict is the one a run would give. The folders on the way to it are the
    caller's choice (resolved here); the file is then opened at that real path.
    """
    fs, path = filesystem(uri)
    stored_name = posixpath.basename(path.rstrip("/"))
    name = unicodedata.normalize("NFC", stored_name)
    location = uri
    try:
        if is_local(fs):
            if stat.S_ISLNK(os.lstat(path).st_mode):
                raise BadInput(link_refusal(name))
            location = os.path.join(os.path.realpath(os.path.dirname(path)), stored_name)
        info = fs.info(location if is_local(fs) else path)
    except FileNotFoundError:
        raise BadInput(f"{uri}: no such file") from None
    except OSError as exc:
        raise unreadable_error(uri, exc) from None
    if info.get("islink"):  # (swapped in a moment ago)
        raise BadInput(link_refusal(name))
    if info.get("type") != "file":
        raise BadInput(f"{uri}: not a file")
    stamp = _content_stamp(info)
    return LandedFile(
        uri=redact_uri(unicodedata.normalize("NFC", uri)),
        name=name,
        size=stamp[0],
        modified=stamp[1],
        sha256=sha256_of(fs, location if is_local(fs) else path),
        location=location,
    )


_Listed = TypeVar("_Listed", LandedFile, ListedName)


def _one_per_name(found: list[_Listed], skipped: list[str] | None) -> list[_Listed]:
    """One file per NFC name: of two spellings of one name (NFC and NFD), the newer is the delivery.

    The other is named in ``skipped`` so that the run says so until it is removed.
    """
    newest: dict[str, _Listed] = {}
    for f in sorted(found, key=lambda f: (f.modified or 0.0, f.location)):
        older = newest.get(f.name)
        if older is not None and skipped is not None:
            skipped.append(
                f"{f.name!r} is in landing under two spellings (NFC and NFD); the newer one is loaded, remove the older"
            )
        newest[f.name] = f
    return sorted(newest.values(), key=lambda f: f.name)


def read_bytes(uri: str, max_bytes: int | None = None) -> bytes:
    """A landing file's bytes (opened by :func:`open_landed`: locally no links); over ``max_bytes`` is BadInput."""
    fs, path = filesystem(uri)

    def within_limit(size: int | None) -> None:
        if max_bytes is not None and size is not None and size > max_bytes:
            raise BadInput(f"{posixpath.basename(path)}: file is {size} bytes, over the {max_bytes}-byte limit")

    try:
        if max_bytes is not None and not is_local(fs):
            within_limit(fs.size(path))
        with open_landed(fs, path) as handle:
            if max_bytes is not None and is_local(fs):  # the opened file's size: a link is refused unlooked-at
                within_limit(os.fstat(handle.fileno()).st_size)
            return handle.read()
    except OSError as exc:
        raise unreadable_error(uri, exc) from None
