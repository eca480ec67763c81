"""A LazyFS-style FUSE filesystem for power-loss tests (test tooling; docs/power-loss.md).

Like ``dsrhaslab/lazyfs``, it passes everything through to a backing directory except file
*data*: ``write()`` lands in the filesystem's own page cache (4 KiB pages, in memory) and reaches
the backing file only when that file is ``fsync``/``fdatasync``-ed. ``close()`` does not flush
(LazyFS does not either). Writing ``lose-unfsynced-writes`` to ``<mount>/.lazyfs-ctl`` drops
every dirty page: what an OS crash or power cut does to data the application never synced.
Reads see dirty data (read-your-writes) and ``stat`` reports the size including it.

What it does not model: metadata (create, rename, unlink, truncate, mkdir) is applied to the
backing directory at once, i.e. it is durable without a directory fsync; no torn or reordered
writes inside what was fsynced; no loss of data the kernel's own page cache still holds for a
mount that stays up (the intended sequence is kill, lose, unmount, then look at the backing
directory). See docs/power-loss.md.

Run: ``python tests/powerloss/lazyfs.py BACKING MOUNTPOINT`` (foreground, one thread; the
bindings are mfusepy over libfuse 3). Tests use :class:`LazyMount`.
"""

from __future__ import annotations

import ctypes.util
import errno
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PAGE = 4096
CTL = "/.lazyfs-ctl"
LOSE = b"lose-unfsynced-writes"


class _Dirty:
    """One file's unsynced data: whole pages, and how far writes extended the file."""

    def __init__(self) -> None:
        self.pages: dict[int, bytearray] = {}
        self.end = 0


def _pread_exact(fd: int, n: int, off: int) -> bytes:
    """``n`` bytes at ``off``; past the end of the backing file reads as zeros."""
    data = os.pread(fd, n, off)
    return data + bytes(n - len(data))


class LazyOperations:
    """The FUSE operations (mfusepy's ``Operations`` interface, duck-typed)."""

    use_ns = True  # times in nanoseconds (mfusepy deprecates float seconds)

    def __init__(self, backing: str) -> None:
        self.root = os.path.realpath(backing)
        self.dirty: dict[str, _Dirty] = {}

    def _real(self, path: str) -> str:
        return self.root + path

    def _size(self, path: str) -> int:
        size = os.lstat(self._real(path)).st_size
        d = self.dirty.get(path)
        return max(size, d.end) if d else size

    # -- control -------------------------------------------------------------------------------

    def _command(self, data: bytes) -> int:
        if data.strip() != LOSE:
            raise OSError(errno.EINVAL, f"unknown lazyfs command {data!r}")
        pages = sum(len(d.pages) for d in self.dirty.values())
        files = sorted(p for p, d in self.dirty.items() if d.pages)
        self.dirty.clear()
        print(f"lost {pages} unsynced pages in {len(files)} files: {' '.join(files)}",
              flush=True)
        return len(data)

    # -- data ----------------------------------------------------------------------------------

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        if path == CTL:
            return b""
        n = max(0, min(size, self._size(path) - offset))
        if n == 0:
            return b""
        out = bytearray(_pread_exact(fh, n, offset))
        d = self.dirty.get(path)
        if d:
            for idx in range(offset // PAGE, (offset + n - 1) // PAGE + 1):
                page = d.pages.get(idx)
                if page is None:
                    continue
                lo, hi = max(offset, idx * PAGE), min(offset + n, (idx + 1) * PAGE)
                out[lo - offset:hi - offset] = page[lo - idx * PAGE:hi - idx * PAGE]
        return bytes(out)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        if path == CTL:
            return self._command(data)
        d = self.dirty.setdefault(path, _Dirty())
        pos = 0
        while pos < len(data):
            idx, in_page = divmod(offset + pos, PAGE)
            page = d.pages.get(idx)
            if page is None:  # first write to this page: start from what the backing file has
                page = d.pages[idx] = bytearray(_pread_exact(fh, PAGE, idx * PAGE))
            take = min(PAGE - in_page, len(data) - pos)
            page[in_page:in_page + take] = data[pos:pos + take]
            pos += take
        d.end = max(d.end, offset + len(data))
        return len(data)

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        d = self.dirty.pop(path, None)
        if d is None or path == CTL:
            return 0
        size = max(os.lstat(self._real(path)).st_size, d.end)
        fd = os.open(self._real(path), os.O_WRONLY)
        try:
            for idx in sorted(d.pages):
                start = idx * PAGE
                stop = min(start + PAGE, size)
                if stop > start:
                    os.pwrite(fd, bytes(d.pages[idx][:stop - start]), start)
            os.fsync(fd)
        finally:
            os.close(fd)
        return 0

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        if path == CTL:
            return 0
        # metadata is write-through (see the module docstring); cached pages past it go away
        os.truncate(self._real(path), length)
        d = self.dirty.get(path)
        if d:
            last, cut = divmod(length, PAGE)
            for idx in [i for i in d.pages if i > last or (i == last and cut == 0)]:
                del d.pages[idx]
            if last in d.pages:
                d.pages[last][cut:] = bytes(PAGE - cut)
            d.end = min(d.end, length)
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0  # close() persists nothing, as in LazyFS

    # -- files ---------------------------------------------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        if path == CTL:
            now = time.time_ns()
            return {"st_mode": 0o100600, "st_nlink": 1, "st_size": 0, "st_atime": now,
                    "st_mtime": now, "st_ctime": now}
        st = os.lstat(self._real(path))
        attrs = {k: getattr(st, k) for k in ("st_mode", "st_nlink", "st_uid", "st_gid",
                                             "st_ino", "st_dev", "st_blocks")}
        attrs.update(st_size=self._size(path), st_atime=st.st_atime_ns,
                     st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
        return attrs

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        self.dirty.pop(path, None)
        return os.open(self._real(path), os.O_RDWR | os.O_CREAT, mode)

    def open(self, path: str, flags: int) -> int:
        if path == CTL:
            return 0
        if flags & os.O_TRUNC:
            self.truncate(path, 0)
        return os.open(self._real(path), os.O_RDONLY)  # data is read here, written on fsync

    def release(self, path: str, fh: int) -> int:
        if path != CTL:
            os.close(fh)
        return 0

    def unlink(self, path: str) -> int:
        os.unlink(self._real(path))
        self.dirty.pop(path, None)
        return 0

    def rename(self, old: str, new: str) -> int:
        os.rename(self._real(old), self._real(new))
        for path in [p for p in self.dirty if p == new or p.startswith(new + "/")]:
            del self.dirty[path]
        for path in [p for p in self.dirty if p == old or p.startswith(old + "/")]:
            self.dirty[new + path[len(old):]] = self.dirty.pop(path)
        return 0

    def access(self, path: str, amode: int) -> int:
        if path != CTL and not os.access(self._real(path), amode):
            raise OSError(errno.EACCES, path)
        return 0

    def chmod(self, path: str, mode: int) -> int:
        os.chmod(self._real(path), mode)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        if times is None:
            os.utime(self._real(path))
        else:
            os.utime(self._real(path), ns=times)
        return 0

    # -- directories ---------------------------------------------------------------------------

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._real(path))]

    def mkdir(self, path: str, mode: int) -> int:
        os.mkdir(self._real(path), mode)
        return 0

    def rmdir(self, path: str) -> int:
        os.rmdir(self._real(path))
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        return 0  # directory entries are already durable here

    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self._real(path))
        return {k: getattr(sv, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize",
                                             "f_favail", "f_ffree", "f_files", "f_flag",
                                             "f_frsize", "f_namemax")}


def unavailable() -> str | None:
    """Why a LazyFS mount cannot be made on this machine, or None when it can be tried."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse on this machine"
    if ctypes.util.find_library("fuse3") is None or shutil.which("fusermount3") is None:
        return "libfuse 3 is not installed (apt-get install fuse3)"
    if importlib.util.find_spec("mfusepy") is None:
        return "the mfusepy binding is not installed (pip install -e '.[dev]')"
    return None


class LazyMount:
    """A LazyFS process serving ``backing`` at ``mountpoint`` (a context manager)."""

    def __init__(self, backing: Path, mountpoint: Path, timeout: float = 10.0) -> None:
        self.mountpoint = mountpoint
        self.proc = subprocess.Popen([sys.executable, __file__, str(backing), str(mountpoint)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while not os.path.ismount(mountpoint):  # readiness polling with a deadline
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                _, err = self.proc.communicate()
                raise RuntimeError(f"lazyfs did not mount {mountpoint}: {err.strip()[-2000:]}")
            time.sleep(0.02)

    def lose_unfsynced_writes(self) -> str:
        """Drop every page not fsynced yet; returns lazyfs's summary line."""
        fd = os.open(self.mountpoint / CTL.lstrip("/"), os.O_WRONLY)
        try:
            os.write(fd, LOSE)
        finally:
            os.close(fd)
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def unmount(self) -> None:
        """Unmount and wait for the lazyfs process to end (idempotent); fails while a process
        still has a file open on the mount."""
        if self.proc.poll() is None:
            done = subprocess.run(["fusermount3", "-u", str(self.mountpoint)],
                                  capture_output=True, text=True, timeout=30, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"cannot unmount {self.mountpoint}: {done.stderr.strip()}")
            self.proc.wait(30)

    def __enter__(self) -> LazyMount:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:  # detach lazily (files may still be open), then stop
            subprocess.run(["fusermount3", "-uz", str(self.mountpoint)], capture_output=True,
                           timeout=30, check=False)
            self.proc.kill()
            self.proc.wait()


def main(argv: list[str]) -> int:
    """Serve ``BACKING`` at ``MOUNTPOINT`` in the foreground until unmounted."""
    if len(argv) != 2:
        print("usage: lazyfs.py BACKING MOUNTPOINT", file=sys.stderr)
        return 2
    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")  # mfusepy would prefer libfuse 2
    import mfusepy

    mfusepy.FUSE(LazyOperations(argv[0]), argv[1], foreground=True, nothreads=True,
                 fsname="lazyfs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
