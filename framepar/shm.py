"""Where a run's shared files live, who may read them, and when they go away.

A run that moves data through files gets a :class:`Workspace`: a private
directory named ``framepar-<pid>-<random>`` (mode 0700, created exclusively)
in ``/dev/shm`` when it exists and has room, and a second one in the system
temp directory on disk for what does not fit there. Every file inside is
created exclusively with mode 0600. :meth:`Workspace.close` removes both
directories; it runs when the run ends, fails, is interrupted or loses a
worker. If the whole process is killed, the pid in the name lets the next
run's :func:`sweep` tell that the owner is dead and remove the leftovers.

Writing past the end of a full tmpfs through a memory map kills the writer
with SIGBUS, so space is checked before writing, files written through maps
are reserved up front with ``posix_fallocate`` (which fails cleanly), and
everything else is written with ``write()`` (which fails with ENOSPC).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import tempfile
import warnings
from dataclasses import dataclass

from .backends._worker import pid_alive as _pid_alive
from .exceptions import SharedMemoryFallbackWarning

SHM_DIR = "/dev/shm"
PREFIX = "framepar-"
_NAME = re.compile(r"^framepar-(\d+)-[^/]+$")
# Room left free in /dev/shm for everything else on the machine.
SHM_HEADROOM_BYTES = 64 * 2**20
SHM_HEADROOM_FRACTION = 0.05


def free_bytes(path: str) -> int:
    """Bytes an unprivileged user may still write in the filesystem of ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def has_room(path: str, nbytes: int) -> bool:
    """Whether ``nbytes`` fit in ``path``'s filesystem with headroom to spare."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    free = st.f_bavail * st.f_frsize
    total = st.f_blocks * st.f_frsize
    return nbytes + max(SHM_HEADROOM_BYTES, int(total * SHM_HEADROOM_FRACTION)) <= free


def make_private_dir(base: str) -> str:
    """Create ``base/framepar-<pid>-<random>`` with mode 0700, exclusively."""
    while True:
        path = os.path.join(base, f"{PREFIX}{os.getpid()}-{secrets.token_hex(8)}")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:  # pragma: no cover - 64 random bits
            continue
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
        return path


def create_file(directory: str, name: str) -> int:
    """Open a new owner-only file exclusively; returns the descriptor."""
    return os.open(os.path.join(directory, name), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)


def unique_name(stem: str, suffix: str) -> str:
    return f"{stem}-{secrets.token_hex(8)}{suffix}"


def reserve(fd: int, nbytes: int) -> None:
    """Allocate ``nbytes`` for ``fd`` now, so that writing through a map cannot SIGBUS."""
    if nbytes <= 0:
        return
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # filesystems without fallocate
            os.ftruncate(fd, nbytes)
            return
        raise


def sweep(bases: tuple[str, ...] | None = None) -> list[str]:
    """Remove ``framepar-<pid>-*`` entries of this user whose process is dead.

    Returns the paths removed. Entries of other users, of live processes, or
    with names framepar did not make are left alone.
    """
    removed = []
    uid = os.getuid()
    for base in bases or default_bases():
        try:
            entries = list(os.scandir(base))
        except OSError:
            continue
        for entry in entries:
            match = _NAME.match(entry.name)
            if match is None:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_uid != uid or _pid_alive(int(match.group(1))):
                continue
            _remove(entry.path)
            removed.append(entry.path)
    return removed


def default_bases() -> tuple[str, ...]:
    bases = [tempfile.gettempdir()]
    if os.path.isdir(SHM_DIR):
        bases.insert(0, SHM_DIR)
    return tuple(bases)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


@dataclass
class Workspace:
    """The private directories of one run (see the module docstring).

    ``shm`` is ``None`` when shared memory is not available or not wanted;
    ``disk`` always exists. Workers receive both paths and choose per file
    with :func:`pick_dir`.
    """

    shm: str | None
    disk: str

    @classmethod
    def create(cls, *, use_shm: bool = True, shm_dir: str | None = None) -> Workspace:
        sweep()
        shm_base = shm_dir or SHM_DIR
        shm = make_private_dir(shm_base) if use_shm and os.path.isdir(shm_base) else None
        try:
            disk = make_private_dir(tempfile.gettempdir())
        except BaseException:
            if shm is not None:
                _remove(shm)
            raise
        return cls(shm, disk)

    def pick_dir(self, nbytes: int) -> str:
        return pick_dir(self.shm, self.disk, nbytes)

    def close(self) -> None:
        for path in (self.shm, self.disk):
            if path is not None:
                _remove(path)


def pick_dir(shm: str | None, disk: str, nbytes: int) -> str:
    """The shared-memory directory when ``nbytes`` fit there, else ``disk`` (with a warning)."""
    if shm is not None and has_room(shm, nbytes):
        return shm
    if shm is not None:
        warnings.warn(
            SharedMemoryFallbackWarning(
                f"{os.path.dirname(shm)} has no room for {nbytes / 2**20:.0f} MiB; "
                f"using a private temp directory on disk ({os.path.dirname(disk)}) instead, "
                "which is slower. Give the container more shared memory (e.g. docker --shm-size) "
                "to avoid this"
            ),
            stacklevel=3,
        )
    return disk
