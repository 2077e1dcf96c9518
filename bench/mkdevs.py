#!/usr/bin/env python3
"""mkdevs.py - make many loop-backed test devices from one process (fork+exec costs 50-150 ms
each under User-Mode Linux, so bench/inner.sh does not run losetup/mount/cp per device).

  mkdevs.py live FIXDIR TEMPLATE NAME=MOUNTDIR...
      for each NAME: sparse file FIXDIR/NAME.img holding a copy of TEMPLATE (an ext4 image),
      a loop device over it, a dm device NAME ("0 SECTORS linear LOOP 0", one dmsetup call for
      all), mounted at MOUNTDIR. The same structure fixtures/loopdev.sh create makes.
  mkdevs.py cow FIXDIR SIZE_BYTES NAME...
      for each NAME: sparse file FIXDIR/NAME.img of SIZE_BYTES and a loop device over it.

Prints "NAME LOOPDEV" per device. On error exits non-zero; the caller sweeps (bench/inner.sh
runs fixtures/loopdev.sh sweep PREFIX, which finds everything by name).
"""
import ctypes
import fcntl
import os
import subprocess
import sys

LOOP_SET_FD = 0x4C00
LOOP_CTL_GET_FREE = 0x4C82
BLOCK = 4096

libc = ctypes.CDLL(None, use_errno=True)


def attach(path):
    """A free loop device over path; returns /dev/loopN."""
    ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    try:
        for _ in range(20):
            n = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
            dev = f"/dev/loop{n}"
            if not os.path.exists(dev):
                os.mknod(dev, 0o660 | 0o060000, os.makedev(7, n))
            lfd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
            ffd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.ioctl(lfd, LOOP_SET_FD, ffd)
                return dev
            except OSError as e:
                if e.errno != 16:  # EBUSY: taken concurrently, try the next one
                    raise
            finally:
                os.close(ffd)
                os.close(lfd)
        raise OSError(f"{path}: no free loop device")
    finally:
        os.close(ctl)


def new_file(path, size):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    os.ftruncate(fd, size)
    return fd


def live(fixdir, template, pairs):
    with open(template, "rb") as f:
        data = f.read()
    size = len(data)
    zero = bytes(BLOCK)
    extents = []  # (offset, bytes) of the template's non-zero runs
    start = None
    for off in range(0, size, BLOCK):
        nz = data[off:off + BLOCK] != zero
        if nz and start is None:
            start = off
        elif not nz and start is not None:
            extents.append((start, off))
            start = None
    if start is not None:
        extents.append((start, size))
    loops = {}
    for name, _ in pairs:
        path = os.path.join(fixdir, name + ".img")
        fd = new_file(path, size)
        try:
            for a, b in extents:
                os.pwrite(fd, data[a:b], a)
            os.fsync(fd)
        finally:
            os.close(fd)
        loops[name] = attach(path)
    spec = ";".join(f"{name},,,,0 {size // 512} linear {loops[name]} 0" for name, _ in pairs)
    subprocess.run(["dmsetup", "create", "--concise", spec], check=True)
    for name, mnt in pairs:
        os.makedirs(mnt, exist_ok=True)
        dev = f"/dev/mapper/{name}".encode()
        if libc.mount(dev, mnt.encode(), b"ext4", 0, None) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"mount {dev.decode()} {mnt}: {os.strerror(e)}")
        print(name, loops[name])


def cow(fixdir, size, names):
    for name in names:
        path = os.path.join(fixdir, name + ".img")
        os.close(new_file(path, size))
        print(name, attach(path))


def main():
    a = sys.argv[1:]
    if len(a) >= 4 and a[0] == "live":
        pairs = [tuple(x.split("=", 1)) for x in a[3:]]
        if any(len(p) != 2 for p in pairs):
            sys.exit("mkdevs: live: expected NAME=MOUNTDIR")
        live(a[1], a[2], pairs)
    elif len(a) >= 4 and a[0] == "cow":
        cow(a[1], int(a[2]), a[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
