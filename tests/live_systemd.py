"""A real systemd for tests: Debian bookworm booted under systemd-nspawn, on a host without systemd.

The root filesystem (mmdebstrap minbase with systemd, dbus, python3-venv) is built once and kept
in ``$SKIN_EDGE_SYSTEMD`` (default /var/cache/skin-edge-systemd). The container shares the host's
network, so a test on the host reaches the service's HTTP port and the service reaches a stream
served by the test. Needs root. Used by tests/test_systemd_live.py.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

CACHE = Path(os.environ.get("SKIN_EDGE_SYSTEMD", "/var/cache/skin-edge-systemd"))
MACHINE = "skin-edge-ci"
PACKAGES = "systemd,systemd-sysv,dbus,python3,python3-venv,ca-certificates"


def unavailable() -> str | None:
    """Why a container cannot be booted here, or None."""
    if os.geteuid() != 0:
        return "booting systemd under systemd-nspawn needs root (run scripts/test.sh as root)"
    if not shutil.which("apt-get"):
        return "systemd-nspawn and mmdebstrap come from Debian's apt"
    if not Path("/sys/fs/cgroup").is_dir():
        return "no cgroup file system"
    return None


def _apt_install(*packages: str) -> None:
    missing = [p for p, tool in packages if not shutil.which(tool)]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-qq", *missing], env=env, capture_output=True).returncode:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], env=env, check=True, capture_output=True)


def build_root() -> Path:
    """The cached bookworm root filesystem (built on first use, ~1 min)."""
    _apt_install(("systemd-container", "systemd-nspawn"), ("mmdebstrap", "mmdebstrap"))
    root = CACHE / "bookworm"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:  # one build at a time (scripts/test.sh starts one early)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ((root / "usr/lib/systemd/systemd").exists() and (root / "usr/bin/python3").exists()):
            _build(root)
    return root


def _build(root: Path) -> None:
    tmp = CACHE / "bookworm.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(
        ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={PACKAGES}",
         "--customize-hook=copy-in /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/",
         '--customize-hook=printf "[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n" > "$1/etc/pip.conf"',
         "bookworm", str(tmp), "http://deb.debian.org/debian"], check=True, capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)


class Container:
    """``with Container(root) as c: c.run("systemctl", ...)``: boots at enter, powers off at exit."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root, self.log = root, log
        self.proc: subprocess.Popen | None = None
        self.leader: int | None = None  # the container's systemd, as a host pid
        self._made_run_nspawn = not Path("/run/systemd/nspawn").exists()

    def __enter__(self) -> "Container":
        # No systemd on the host: no machined (--register=no), no scope unit (--keep-unit). nspawn
        # makes sub-cgroups of its own cgroup, so it gets a private one first; a pure cgroup2 tree
        # for the container makes DeviceAllow= enforceable (BPF).
        for hierarchy in ("systemd", "unified"):
            Path(f"/sys/fs/cgroup/{hierarchy}/{MACHINE}").mkdir(parents=True, exist_ok=True)
        script = (f"echo $$ > /sys/fs/cgroup/systemd/{MACHINE}/cgroup.procs; "
                  f"echo $$ > /sys/fs/cgroup/unified/{MACHINE}/cgroup.procs; "
                  f"exec systemd-nspawn -q -b -D {self.root} -M {MACHINE} --register=no --keep-unit "
                  "--console=read-only --system-call-filter=bpf")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(["sh", "-c", script], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL,
                                         env={**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"})
        deadline = time.monotonic() + 30
        while self.leader is None and time.monotonic() < deadline:
            found = subprocess.run(["pgrep", "-P", str(self.proc.pid), "-x", "systemd"], capture_output=True,
                                   text=True).stdout.split()
            self.leader = int(found[0]) if found else None
            time.sleep(0.1)
        if self.leader is None:
            self.__exit__()
            raise RuntimeError(f"the container did not boot: {self.log.read_text()[-2000:]}")
        for _ in range(150):
            state = self.run("systemctl", "is-system-running", "--wait", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.2)
        return self

    def run(self, *argv: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run a command as root inside the container."""
        done = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "env", "-i",
                               "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=dumb", "SYSTEMD_COLORS=0", "LANG=C.UTF-8",
                               *argv], capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}): {done.stdout[-2000:]}"
                                 f"{done.stderr[-2000:]}")
        return done

    def path(self, inside: str) -> Path:
        """A path inside the container, as seen from the host."""
        return self.root / inside.lstrip("/")

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run("systemctl", "show", unit, "-p", ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str) -> str:
        return self.run("journalctl", "-b", "-u", unit, "-o", "cat", "--no-pager", check=False).stdout

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # nspawn turns SIGTERM into a clean poweroff of the container
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for hierarchy in ("systemd", "unified"):
            base = Path(f"/sys/fs/cgroup/{hierarchy}/{MACHINE}")
            for folder in sorted(base.rglob("*"), key=lambda p: len(p.parts), reverse=True) if base.exists() else ():
                if folder.is_dir():
                    try:
                        folder.rmdir()
                    except OSError:
                        pass
            try:
                base.rmdir()
            except OSError:
                pass
        shutil.rmtree(f"/run/systemd/nspawn/propagate/{MACHINE}", ignore_errors=True)
        if self._made_run_nspawn:
            shutil.rmtree("/run/systemd/nspawn", ignore_errors=True)
