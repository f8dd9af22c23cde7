"""Atomic writes: a temporary file in the target's folder, then ``os.replace``; a results folder written whole
(:class:`OutputFolder`).

An interrupted run never leaves a half-written results file, results folder, cache entry or weights file behind.
Every module that writes a file the user or a later run reads goes through here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``, on error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; results and weights are meant to be shared
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


class OutputFolder:
    """A results folder that appears complete or not at all.

    Checked when made, before any compute: the path must not be a file; an existing non-empty folder is refused
    unless ``overwrite`` (it is then replaced whole when the new one is complete, never mixed); the parent must be
    writable; and a lock (``.<name>.lock`` beside the folder, held with ``flock`` until :meth:`commit` or
    :meth:`abandon`, released by the kernel if the process dies) makes a second run into the same folder refuse
    at once. Files are written into :attr:`staging` (a hidden ``.<name>.partial-<pid>`` folder beside it), which
    :meth:`commit` renames into place. A run killed while writing leaves only that hidden folder, which the next
    run into the same folder removes. Errors are :class:`~cxrbench.errors.ConfigError` naming the folder.
    """

    def __init__(self, path: str | Path, overwrite: bool = False):
        from cxrbench.errors import ConfigError

        self.path = Path(path)
        self.overwrite = overwrite
        self._lock_fd: int | None = None
        self._staging: Path | None = None
        name = self.path.name
        if "\x00" in str(path):
            raise ConfigError(f"results folder {str(path)!r} contains a NUL byte (shown as \\x00); fix --out")
        if not name or name in (".", ".."):
            raise ConfigError(f"results folder {str(path)!r} has no name; give --out a folder such as results/run1")
        if self.path.is_symlink() or (self.path.exists() and not self.path.is_dir()):
            raise ConfigError(f"results folder {self.path} exists and is not a folder; choose another --out")
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"results folder {self.path}: cannot create {parent} ({exc.strerror or exc}); "
                              "choose another --out") from None
        self._lock(parent / f".{name}.lock")
        try:
            self._check_existing()
            for stale in parent.glob(f".{name}.partial-*"):  # left by a killed run (we hold the lock)
                shutil.rmtree(stale, ignore_errors=True)
        except BaseException:
            self._unlock()
            raise

    def _lock(self, lock: Path) -> None:
        import fcntl

        from cxrbench.errors import ConfigError

        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"results folder {self.path}: {self.path.parent} is not writable "
                              f"({exc.strerror or exc}); choose another --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConfigError(f"results folder {self.path}: another cxrbench run (pid {holder}) is writing to it; "
                              "wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd, self._lock_path = fd, lock

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                self._lock_path.unlink()
            os.close(self._lock_fd)
            self._lock_fd = None

    def _check_existing(self) -> None:
        from cxrbench.errors import ConfigError

        if self.path.is_dir() and any(self.path.iterdir()) and not self.overwrite:
            n = sum(1 for _ in self.path.iterdir())
            raise ConfigError(f"results folder {self.path} already holds {n} file(s) of an earlier run; pass "
                              "--overwrite to replace it whole, or choose another --out")

    @property
    def staging(self) -> Path:
        """The hidden folder the run writes into (made on first use)."""
        if self._staging is None:
            self._staging = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.partial-{os.getpid()}-",
                                                  dir=self.path.parent))
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self._staging, 0o777 & ~umask)
        return self._staging

    def commit(self) -> Path:
        """Rename the staging folder into place (replacing an empty folder, or with ``overwrite`` the old one)."""
        self._check_existing()  # someone may have written there since
        staging = self.staging
        old = None
        if self.path.exists():
            old = self.path.parent / f".{self.path.name}.old-{os.getpid()}"
            os.replace(self.path, old)
        try:
            os.replace(staging, self.path)
        except OSError:
            if old is not None:
                os.replace(old, self.path)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._staging = None
        self._unlock()
        return self.path

    def abandon(self) -> None:
        """Remove the staging folder and release the lock (nothing of this run remains)."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        self._unlock()

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, *exc_info) -> None:
        self.abandon()
