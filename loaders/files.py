"""Files in and out for every reader and writer: path/glob expansion, and atomic file creation.

Atomic writes go to a temporary file beside the target and are renamed into place on success:
a crash or an exception never leaves a half-written file under the final name.
"""
from __future__ import annotations

import contextlib
import glob
import os
import secrets
from typing import BinaryIO, Iterator, Sequence, Union

Paths = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]


def expand_paths(paths_or_glob: Paths, what: str = "dataset") -> list[str]:
    """File names from a path, a glob pattern or a list of them (patterns sorted; none may match nothing).

    ``what`` names the caller in the error raised when the result is empty.
    """
    items = [paths_or_glob] if isinstance(paths_or_glob, (str, os.PathLike)) else list(paths_or_glob)
    files: list[str] = []
    for item in items:
        name = os.fspath(item)
        if glob.has_magic(name):
            matched = sorted(glob.glob(name))
            if not matched:
                raise FileNotFoundError(f"{name}: no file matches this pattern")
            files.extend(matched)
        elif os.path.isfile(name):
            files.append(name)
        else:
            problem = "is a folder, not a file" if os.path.isdir(name) else "no such file"
            raise FileNotFoundError(f"{name}: {problem}")
    if not files:
        raise ValueError(f"{what} needs at least one file")
    return files


class AtomicFile:
    """A binary file written under a temporary name and renamed to ``path`` by :meth:`commit`."""

    def __init__(self, path: "str | os.PathLike[str]") -> None:
        self.path = os.fspath(path)
        folder, base = os.path.split(os.path.abspath(self.path))
        self.temp_path = os.path.join(folder, f".{base}.{secrets.token_hex(4)}.tmp")
        fd = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        self.file: BinaryIO = os.fdopen(fd, "wb")

    def commit(self) -> None:
        """Flush, sync and rename the temporary file to its final name."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.temp_path, self.path)

    def abort(self) -> None:
        """Close and delete the temporary file; nothing appears under the final name."""
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.temp_path)


@contextlib.contextmanager
def atomic_write(path: "str | os.PathLike[str]") -> Iterator[BinaryIO]:
    """``with atomic_write(path) as f:`` writes ``path`` atomically (renamed only if the block succeeds)."""
    target = AtomicFile(path)
    try:
        yield target.file
    except BaseException:
        target.abort()
        raise
    target.commit()


__all__ = ["AtomicFile", "atomic_write", "expand_paths"]
