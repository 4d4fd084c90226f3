"""File access for landing and warehouse URIs, local or remote, via fsspec.

Everything that touches a file goes through here so that ``s3://…`` works
wherever a local path does.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass

import fsspec
from fsspec.implementations.local import LocalFileSystem

from etl.errors import BadInput, SourceUnavailable


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for ``uri`` and the path inside it."""
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def join(uri: str, *parts: str) -> str:
    return posixpath.join(uri.rstrip("/"), *parts)


def _unreadable(uri: str, exc: OSError) -> SourceUnavailable:
    # Storage that is down or refuses us is an outside failure with a clear line, not a traceback.
    return SourceUnavailable(f"landing storage: cannot read {uri}: {type(exc).__name__}: {exc}")


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

    uri: str  # full URI, as recorded in lineage columns and the load log
    name: str  # base name, e.g. journalen_2017-03.csv
    size: int
    modified: float | None  # epoch seconds, when the store reports it
    sha256: str


def safe_name(name: str) -> str:
    """Reject names that could escape their folder (``../``, absolute paths)."""
    if not name or name in {".", ".."} or "/" in name or "\\" in name or "\x00" in name:
        raise BadInput(f"unsafe file name in landing storage: {name!r}")
    return name


def list_landed(landing_uri: str, prefix: str, suffixes: tuple[str, ...], *,
                skipped: list[str] | None = None) -> list[LandedFile]:
    """Files directly under ``<landing>/<prefix>/`` with one of ``suffixes``, sorted by name.

    Hidden files (``.name``, e.g. an upload in progress) and folders are not
    deliveries. An entry that looks like a delivery but cannot be taken in —
    a name that could escape its folder (``..``, ``\\``), a broken link — is
    described in ``skipped`` when the caller passes a list (the pipeline then
    loads the rest and fails naming it); without one, an unsafe name raises
    :class:`BadInput`.
    """
    fs, root = filesystem(join(landing_uri, prefix))
    try:
        if is_local(fs) and not fs.exists(filesystem(landing_uri)[1]):
            # A missing landing root is an unmounted volume or a wrong setting: say so, don't
            # report "nothing new" every day. (A missing <prefix>/ is just no delivery yet; object
            # stores have no folders, so there an absent prefix always reads as empty.)
            raise SourceUnavailable(f"landing storage: {landing_uri} does not exist (unmounted, or a wrong landing URI?)")
        if not fs.exists(root):
            return []
        entries = fs.ls(root, detail=True)
    except OSError as exc:
        raise _unreadable(join(landing_uri, prefix), exc) from None
    found: list[LandedFile] = []
    for info in entries:
        name = posixpath.basename(info["name"].rstrip("/"))
        if name.startswith(".") or not name.lower().endswith(suffixes) or info.get("type") == "directory":
            continue
        if info.get("type") != "file":
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
        modified = info.get("mtime") or info.get("LastModified") or info.get("created")
        if hasattr(modified, "timestamp"):
            modified = modified.timestamp()
        found.append(
            LandedFile(
                uri=join(landing_uri, prefix, name),
                name=name,
                size=int(info.get("size") or 0),
                modified=float(modified) if modified is not None else None,
                sha256=sha256_of(fs, info["name"]),
            )
        )
    return sorted(found, key=lambda f: f.name)


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
