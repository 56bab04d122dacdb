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
and the node registers as 127.0.0.1. `tests/test_local_ray.py` checks it with `listeners`.

Process and socket tables come from psutil (a Ray dependency: Ray ships a copy and puts it on
`sys.path` when imported, so it is imported after `ray`).
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

AGENT_NAMES = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def _psutil():
    import psutil  # after `import ray` (module top): Ray's own copy is then importable

    return psutil


def orphaned_agents() -> list[int]:
    """Pids of this user's Ray agent processes (DashboardAgent, RuntimeEnvAgent) whose raylet is
    gone. The raylet starts them as its children; a driver killed with SIGKILL takes its raylet
    and GCS with it but leaves these two running (Ray 2.58), re-parented, serving nothing."""
    psutil = _psutil()
    uid, found = os.getuid(), []
    for p in psutil.process_iter(["uids", "cmdline", "status", "ppid"]):
        try:
            info = p.info
            if info["uids"] is None or info["uids"].real != uid or not info["cmdline"]:
                continue
            if info["cmdline"][0].strip() not in AGENT_NAMES or info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if _name(info["ppid"]) != "raylet":
                found.append(p.pid)
        except (psutil.Error, OSError):
            continue
    return found


def _name(pid: int) -> str:
    """A process's name ("" when it is gone)."""
    psutil = _psutil()
    try:
        return psutil.Process(pid).name()
    except (psutil.Error, OSError):
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


def _address(ip: str) -> str:
    """A listener's address; an IPv4-mapped IPv6 one (::ffff:127.0.0.1) as its IPv4 address."""
    import ipaddress

    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    mapped = getattr(addr, "ipv4_mapped", None)
    return str(mapped) if mapped else str(addr)


def listeners(pids: list[int]) -> list[dict]:
    """TCP listeners of these processes: [{pid, name, address, port}]."""
    psutil = _psutil()
    out = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            cmd = proc.cmdline()
            name = Path(cmd[0]).name if cmd else proc.name()
            conns = proc.net_connections(kind="tcp")
        except (psutil.Error, OSError):
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN and c.laddr:
                out.append({"pid": pid, "name": name, "address": _address(c.laddr.ip), "port": c.laddr.port})
    return out


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (only `pid` when it is gone)."""
    psutil = _psutil()
    try:
        return [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except (psutil.Error, OSError):
        return [pid]
