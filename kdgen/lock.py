"""One run at a time per output: an exclusive lock file in the output folder, held while a run writes there.

Two runs writing the same dataset or run folder at once would interleave shards, manifests and logs; the
second one is refused with one line naming the first's pid. The lock is `fcntl.flock` on a file named by
the contract, so the kernel releases it when the holder exits, however it ends (a kill included).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from kdgen.contract import lock_name
from kdgen.errors import UserError

_held: set[OutputLock] = set()


def _forget_in_child() -> None:
    """A forked child (a DataLoader worker) drops its copy of the lock: flock belongs to the open file, so a
    child that outlived a killed parent would otherwise keep the output locked."""
    for lock in _held:
        os.close(lock.fd)
        lock.fd, lock.created = None, []
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)


class OutputLock:
    """The lock on `folder/lock_name(name, ...)`; makes the folder if needed and, on release, removes the
    folders it made where nothing was left in them (a failed first run leaves no empty folders)."""

    def __init__(self, folder, name: str, rank: int = 0, world_size: int = 1, flag: str = "--out"):
        self.folder = Path(folder)
        self.path = self.folder / lock_name(name, rank, world_size)
        self.flag = flag
        self.created: list[Path] = []
        self.fd: int | None = None

    def acquire(self) -> OutputLock:
        self.created = [d for d in (self.folder, *self.folder.parents) if not d.exists()]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            while self.fd is None:
                self.fd = self._lock_file()
            _held.add(self)
            os.ftruncate(self.fd, 0)
            os.write(self.fd, f"{os.getpid()}\n".encode())  # for the refusal of a second run
        except OSError as err:
            self.release()
            raise UserError(f"cannot write to {self.flag} {self.folder}: {err.strerror or err}; "
                            f"choose a writable folder") from None
        return self

    def _lock_file(self) -> int | None:
        """The locked file's descriptor, or None where its holder removed it meanwhile (then try again)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            who = f"another run (pid {holder})" if holder.isdigit() else "another run"
            raise UserError(f"{who} is writing to {self.flag} {self.folder} (lock {self.path.name}); wait for it "
                            f"to finish or choose another {self.flag}") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return None
        return fd

    def release(self) -> None:
        _held.discard(self)
        if self.fd is not None:
            self.path.unlink(missing_ok=True)  # before unlocking: a run that opened it meanwhile sees it gone
            os.close(self.fd)
            self.fd = None
        self._remove_created()

    def _remove_created(self) -> None:
        for d in self.created:  # deepest first
            try:
                d.rmdir()
            except OSError:  # not empty (complete shards are kept) or already gone
                break

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False


@contextmanager
def hold_run_folder(folder, main: bool = True):
    """The lock of a training run's folder, taken by the main process only (DDP ranks share the folder)."""
    if not main:
        yield None
        return
    with OutputLock(folder, "run") as lock:
        yield lock
