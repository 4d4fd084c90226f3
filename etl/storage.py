"""File access for landing and warehouse URIs, local or remote, via fsspec.

Everything that touches a file goes through here so that ``s3://…`` works
wherever a local path does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import re
import time
import unicodedata
from dataclasses import dataclass

import fsspec
from fsspec.implementations.local import LocalFileSystem

from etl.errors import BadInput, ConfigError, EtlError, SourceUnavailable
from etl.privacy import redact_uri

log = logging.getLogger(__name__)


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for ``uri`` and the path inside it."""
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def _is_http(fs: fsspec.AbstractFileSystem) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return "http" in protocol or "https" in protocol


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
    options = {"conditional_put": "etag"}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    return options


def join(uri: str, *parts: str) -> str:
    return posixpath.join(uri.rstrip("/"), *parts)


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
    if isinstance(exc, PermissionError):
        if _ACCESS_REFUSED.search(text):
            return ConfigError(f"the object store refused access ({text}): {_REFUSED_HINT}")
        return ConfigError(f"storage refused access: {text} (check the credentials and what they may do)")
    from deltalake.exceptions import DeltaError

    if isinstance(exc, DeltaError) or "Kernel error" in str(exc):  # delta-rs, where no caller translated it
        return delta_store_error("warehouse storage", exc)
    return None


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
    text = re.sub(r"(<\?xml|<!DOCTYPE|<html).*", "", text, flags=re.DOTALL | re.IGNORECASE).strip()
    parts = [p.strip() for p in _CAUSE.split(" ".join(text.split())) if p.strip()]
    line = redact_uri(" ← ".join(parts + ([code.group(1)] if code else [])))
    if code is not None and _ACCESS_REFUSED.search(code.group(1)):
        return ConfigError(f"{what}: the object store refused access ({code.group(1)}): {_REFUSED_HINT}")
    if code is not None and code.group(1) == "NoSuchBucket":
        return ConfigError(f"{what}: the bucket does not exist (NoSuchBucket)")
    if "169.254.169.254" in text:  # no credentials configured: object_store asked the EC2 metadata service
        return ConfigError(f"{what}: no credentials for s3:// ({_SET_CREDENTIALS})")
    if re.search(r"connection refused|error sending request|dns error|timed out", text, re.IGNORECASE):
        return SourceUnavailable(f"{what}: object store unreachable: {line}")
    return EtlError(f"{what}: {line}")


def _unreadable(uri: str, exc: OSError) -> EtlError:
    # Storage that is down or refuses us is an outside failure with a clear line, not a traceback;
    # wrong credentials are a setting, the same on every retry.
    if isinstance(exc, PermissionError) and _ACCESS_REFUSED.search(str(exc)):
        return ConfigError(redact_uri(f"landing storage: cannot read {uri}: {store_error(exc)}"))
    return SourceUnavailable(redact_uri(f"landing storage: cannot read {uri}: {type(exc).__name__}: {exc}"))


def sha256_of(fs: fsspec.AbstractFileSystem, path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    try:
        with fs.open(path, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    return digest.hexdigest()


@dataclass(frozen=True)
class LandedFile:
    """A file found in landing storage, with what identifies its content."""

    uri: str  # full URI as recorded in lineage columns and the load log: NFC-normalised, credentials redacted
    name: str  # base name, e.g. journalen_2017-03.csv (NFC-normalised)
    size: int
    modified: float | None  # epoch seconds, when the store reports it
    sha256: str
    location: str = ""  # the path as the store spells it (NFD on some senders' disks, credentials kept): open this

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
        log.warning("ignoring landing hash cache %s: %s", uri, exc)
        return {}


def _write_hash_cache(uri: str, files: dict[str, dict]) -> None:
    fs, path = filesystem(uri)
    try:
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        fs.pipe_file(tmp, json.dumps({"version": 1, "files": files}, sort_keys=True).encode())
        fs.mv(tmp, path)
    except OSError as exc:
        log.warning("could not write landing hash cache %s: %s", uri, exc)


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
    folder (``..``, ``\\``), a broken link — is described there (the
    pipeline then loads the rest and fails naming it); without a list, an
    unsafe name raises :class:`BadInput` and other entries are ignored.

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
    fs, root = filesystem(join(landing_uri, prefix))
    try:
        if is_local(fs) and not fs.exists(filesystem(landing_uri)[1]):
            # A missing landing root is an unmounted volume or a wrong setting: say so, don't
            # report "nothing new" every day. (A missing <prefix>/ is just no delivery yet; object
            # stores have no folders, so there an absent prefix always reads as empty.)
            raise SourceUnavailable(
                f"landing storage: {redact_uri(landing_uri)} does not exist (unmounted, or a wrong landing URI?)"
            )
        if is_local(fs) and not fs.exists(root):
            return []
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
                raise _unreadable(join(landing_uri, prefix), exc) from None
        return []
    except OSError as exc:
        raise _unreadable(join(landing_uri, prefix), exc) from None
    cached = _read_hash_cache(hash_cache) if hash_cache else {}
    remembered: dict[str, dict] = {}
    found: list[LandedFile] = []
    now = time.time()
    for info in entries:
        stored_name = posixpath.basename(info["name"].rstrip("/"))
        name = unicodedata.normalize("NFC", stored_name)
        if name.startswith("."):
            continue
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are no UTF-8 (a Latin-1 name from a Windows share or a zip)
            if skipped is not None:
                skipped.append(
                    f"{ascii(name)}: the file name is not valid UTF-8 (saved with another character set?); rename it"
                )
            continue
        if info.get("type") == "directory":
            if skipped is not None:
                skipped.append(f"{name!r} is a folder: deliveries are files directly under {prefix}/")
            continue
        if not name.lower().endswith(suffixes):
            if skipped is not None:
                skipped.append(f"{name!r}: not a file type this folder takes (accepted: {', '.join(suffixes)})")
            continue
        if info.get("type") != "file" and not (info.get("islink") and fs.isfile(info["name"])):
            # (A link to a file is listed as "other"; it is a delivery like the file itself.)
            if skipped is not None:
                skipped.append(f"{name!r}: not a regular file (a broken link?)")
            continue
        try:
            safe_name(name)
        except BadInput as exc:
            if skipped is None:
                raise
            skipped.append(str(exc))
            continue
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
        sha256 = known["sha256"] if reuse else sha256_of(fs, info["name"])
        remembered[name] = {"stamp": stamp, "seen": seen, "sha256": sha256}
        found.append(
            LandedFile(
                uri=redact_uri(join(landing_uri, prefix, name)),
                name=name,
                size=stamp[0],
                modified=stamp[1],
                sha256=sha256,
                location=join(landing_uri, prefix, stored_name),
            )
        )
    if hash_cache and remembered != cached:
        _write_hash_cache(hash_cache, remembered)
    return _one_per_name(found, skipped)


def landed_file(uri: str) -> LandedFile:
    """One file named directly (``python -m etl check FILE``), described as a listing would describe it.

    Raises :class:`BadInput` when ``uri`` is not a file, and
    :class:`SourceUnavailable` when it cannot be read.
    """
    fs, path = filesystem(uri)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise BadInput(f"{uri}: no such file") from None
    except OSError as exc:
        raise _unreadable(uri, exc) from None
    if info.get("type") != "file":
        raise BadInput(f"{uri}: not a file")
    stored_name = posixpath.basename(path.rstrip("/"))
    name = unicodedata.normalize("NFC", stored_name)
    stamp = _content_stamp(info)
    return LandedFile(
        uri=redact_uri(unicodedata.normalize("NFC", uri)),
        name=name,
        size=stamp[0],
        modified=stamp[1],
        sha256=sha256_of(fs, path),
        location=uri,
    )


def _one_per_name(found: list[LandedFile], skipped: list[str] | None) -> list[LandedFile]:
    """One file per NFC name: of two spellings of one name (NFC and NFD), the newer is the delivery.

    The other is named in ``skipped`` so that the run says so until it is removed.
    """
    newest: dict[str, LandedFile] = {}
    for f in sorted(found, key=lambda f: (f.modified or 0.0, f.location)):
        older = newest.get(f.name)
        if older is not None and skipped is not None:
            skipped.append(
                f"{f.name!r} is in landing under two spellings (NFC and NFD); the newer one is loaded, remove the older"
            )
        newest[f.name] = f
    return sorted(newest.values(), key=lambda f: f.name)


def read_bytes(uri: str, max_bytes: int | None = None) -> bytes:
    fs, path = filesystem(uri)
    try:
        if max_bytes is not None:
            size = fs.size(path)
            if size is not None and size > max_bytes:
                raise BadInput(f"{posixpath.basename(path)}: file is {size} bytes, over the {max_bytes}-byte limit")
        with fs.open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise _unreadable(uri, exc) from None
