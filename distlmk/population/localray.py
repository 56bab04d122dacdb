"""Starting Ray: a private loopback-only instance by default, a cluster only when asked.

`ray.init()` without an address joins `RAY_ADDRESS` or the cluster last recorded on the host
(`ray_current_cluster` in Ray's temp folder), and hangs on a dead one. distlmk therefore passes
`address="local"` unless `--address` is given.

Loopback: Ray 2.58 binds its gRPC servers (GCS, raylet, object manager, core workers) to the
node IP (ray-project/ray#59852), but `ray.init(_node_ip_address="127.0.0.1")` rewrites a
loopback address to the host's outbound address (`services.resolve_ip_for_localhost`), so the
node still registers, and listens, on the network address. Ray resolves the node IP to loopback
only where clusters are disabled (`ray_constants.ENABLE_RAY_CLUSTER`, the switch behind
`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`, read at import time). `loopback_only()` turns that switch
off for the duration of `ray.init` in this process: GCS, raylet, workers, the runtime-env and
dashboard agents then listen on 127.0.0.1 (dual-stack sockets show it as ::ffff:127.0.0.1),
and the node registers as 127.0.0.1. `tests/test_local_ray.py` checks it in /proc/net/tcp*.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

import ray

log = logging.getLogger("distlmk.ray")
LOOPBACK = "127.0.0.1"


@contextlib.contextmanager
def loopback_only():
    """Within: Ray resolves this node's IP to loopback (see the module doc)."""
    import ray._private.ray_constants as ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def init_ray(address: str | None, **kwargs) -> str:
    """Join `address` ("auto", "host:port", "ray://...") or start a private loopback instance.
    Returns what was done: the address joined, or "local"."""
    if ray.is_initialized():
        return "existing"
    if address:
        # Ray rewrites a loopback host to the machine's address before connecting, which misses a
        # loopback-only instance (another distlmk run): keep loopback when the address says so
        host = address.rsplit(":", 1)[0].strip("[]") if "://" not in address else ""
        with loopback_only() if host in ("127.0.0.1", "localhost", "::1") else contextlib.nullcontext():
            ray.init(address=address, **kwargs)
        return address
    reap_orphaned_agents()
    with loopback_only():
        ray.init(address="local", include_dashboard=False, _node_ip_address=LOOPBACK, **kwargs)
    return "local"


# --- leftovers of a SIGKILLed driver ------------------------------------------------------


def orphaned_agents() -> list[int]:
    """Pids of this user's Ray agent processes (DashboardAgent, RuntimeEnvAgent) whose raylet is
    gone. The raylet starts them as its children; a driver killed with SIGKILL takes its raylet
    and GCS with it but leaves these two running (Ray 2.58), re-parented, serving nothing.
    Linux only ([] elsewhere)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    uid, found = os.getuid(), []
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            if d.stat().st_uid != uid:
                continue
            name = (d / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace").strip()
            if name not in ("ray::DashboardAgent", "ray::RuntimeEnvAgent"):
                continue
            state, ppid = _stat(d.name)
            if state != "Z" and _comm(ppid) != "raylet":
                found.append(int(d.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _stat(pid: str | int) -> tuple[str, int]:
    """(state, parent pid) from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def reap_orphaned_agents() -> list[int]:
    """SIGKILL the orphaned agents of earlier, killed local runs (they ignore SIGTERM)."""
    pids = orphaned_agents()
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if pids:
        log.warning("stopped %d Ray agent processes left by a killed run: %s", len(pids), pids)
    return pids


# --- what listens -------------------------------------------------------------------------


def _listening_inodes() -> dict[int, tuple[str, int]]:
    """socket inode -> (address, port) of every TCP socket in LISTEN state (/proc/net/tcp, tcp6)."""
    out = {}
    for name, v6 in (("tcp", False), ("tcp6", True)):
        path = Path("/proc/net") / name
        if not path.is_file():
            continue
        for line in path.read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] != "0A":  # LISTEN
                continue
            host, port = parts[1].split(":")
            out[int(parts[9])] = (_decode_ip(host, v6), int(port, 16))
    return out


def _decode_ip(hexaddr: str, v6: bool) -> str:
    import ipaddress

    raw = bytes.fromhex(hexaddr)
    if not v6:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))  # per-word little endian
    addr = ipaddress.IPv6Address(words)
    return str(addr.ipv4_mapped) if addr.ipv4_mapped else str(addr)


def listeners(pids: list[int]) -> list[dict]:
    """TCP listeners of these processes: [{pid, name, address, port}] (Linux /proc)."""
    socks = _listening_inodes()
    out = []
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            name = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            for fd in fd_dir.iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inode = int(target[8:-1])
                    if inode in socks:
                        addr, port = socks[inode]
                        out.append({"pid": pid, "name": Path(name).name, "address": addr, "port": port})
        except OSError:
            continue
    return out


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                _, ppid = _stat(d.name)
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out
