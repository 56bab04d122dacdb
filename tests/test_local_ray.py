"""Local means local: without --address, `distlmk search` starts a private Ray on loopback,
whatever RAY_ADDRESS or a recorded cluster say; with --address it joins; a killed driver's
leftover agents are cleaned by the next start."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml
from fault_checks import assert_records_match_checkpoints, error_texts, restores

from distlmk.config import SearchConfig, from_dict, to_dict
from distlmk.population.localray import descendants, listeners, orphaned_agents, reap_orphaned_agents

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = {"127.0.0.1", "::1"}
AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def tiny_search_yaml(path: Path, name: str, epochs: int = 4, epoch_seconds: float = 0.3, **over) -> Path:
    cfg = {
        "name": name, "simulation": {"enabled": True, "epoch_seconds": epoch_seconds}, "seeds": [0],
        "methods": ["fixed"], "fixed_sigmas": [2.0, 3.0], "resources": {"cpu": 0.5}, "max_failures": 1,
        "experiment": {"data": {"num_landmarks": 4}, "train": {"epochs": epochs}},
    }
    cfg.update(over)
    path.write_text(yaml.safe_dump(to_dict(from_dict(SearchConfig, cfg, "test"))))
    return path


def child_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


class Trap:
    """A TCP listener standing in for a dead cluster: records whether anyone connects."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.contacted = False
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
                self.contacted = True
                conn.close()
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def test_search_without_address_is_private_and_loopback(tmp_path, cache_dir):
    """A recorded cluster and RAY_ADDRESS both point at a 'dead' address (a trap listener):
    `distlmk search` must neither contact it nor hang, run locally, and listen on loopback only."""
    trap = Trap()
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths must fit
    (ray_tmp / "ray").mkdir()
    (ray_tmp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{trap.port}")
    cfg = tiny_search_yaml(tmp_path / "c.yaml", "local")
    env = child_env(RAY_TMPDIR=str(ray_tmp), RAY_ADDRESS=f"127.0.0.1:{trap.port}")
    proc = subprocess.Popen([sys.executable, "-m", "distlmk", "search", "--config", str(cfg), "--out",
                             str(tmp_path), "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen: list[dict] = []
    deadline = time.time() + 150
    while proc.poll() is None:
        assert time.time() < deadline, "distlmk search hung"
        seen += listeners(descendants(proc.pid))
        time.sleep(0.5)
    out = proc.stdout.read().decode(errors="replace")
    trap.close()
    shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, out[-3000:]
    assert not trap.contacted, "the recorded / RAY_ADDRESS cluster was contacted"
    info = json.loads((tmp_path / "local" / "run_info.json").read_text())
    assert info["ray"] == "local" and info["nodes"] == ["127.0.0.1"]
    names = {s["name"] for s in seen}
    assert {"gcs_server", "raylet"} <= names, f"the listener scan saw no Ray processes: {names}"
    wide = [s for s in seen if s["address"] not in LOOPBACK]
    assert not wide, f"listening beyond loopback: {wide}"


def test_leftover_agents_of_a_killed_driver_are_reaped(tmp_path):
    """A SIGKILLed driver leaves DashboardAgent and RuntimeEnvAgent running; the next start reaps them."""
    script = (
        "import os, signal, ray\n"
        "from distlmk.population.localray import init_ray\n"
        "init_ray(None, num_cpus=1, log_to_driver=False)\n"
        "print(ray._private.worker._global_node.get_session_dir_path(), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], env=child_env(), capture_output=True, timeout=120)
    session = proc.stdout.decode().strip().splitlines()[-1]
    assert session.startswith("/"), proc.stderr.decode()[-2000:]

    def agents_of_node() -> list[int]:  # live agents writing logs into that session's folder
        pids = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
                    name = (d / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace").strip()
                    files = [os.readlink(f) for f in (d / "fd").iterdir()] if name in AGENTS else []
                except OSError:
                    continue
                if state != "Z" and any(f.startswith(session + "/") for f in files):
                    pids.append(int(d.name))
        return pids

    deadline = time.time() + 30
    while not set(agents_of_node()) & set(orphaned_agents()):
        assert time.time() < deadline, f"no orphaned agents of {session} (left: {agents_of_node()})"
        time.sleep(0.5)
    left = agents_of_node()
    assert set(left) <= set(reap_orphaned_agents())
    deadline = time.time() + 10
    while agents_of_node():
        assert time.time() < deadline, f"agents survived: {agents_of_node()}"
        time.sleep(0.2)


@pytest.mark.slow
def test_address_joins_a_cluster_and_trials_survive_a_lost_node(tmp_path):
    """--address joins a running 2-node cluster (ray.cluster_utils.Cluster); killing the worker
    node mid-run fails its trials, which resume from their checkpoints on the head node."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=2, resources={"worker": 1})
    try:
        cluster.wait_for_nodes()
        worker_id, address = worker.node_id, cluster.address
        # 4 trials of 1 CPU: two on each node; each trial ~6 s
        cfg = tiny_search_yaml(tmp_path / "c.yaml", "joined", epochs=8, epoch_seconds=0.6,
                               fixed_sigmas=[1.0, 2.0, 3.0, 4.0], resources={"cpu": 1.0}, max_failures=3)
        cmd = [sys.executable, "-m", "distlmk", "search", "--config", str(cfg), "--out", str(tmp_path),
               "--address", address, "--quiet"]
        proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        journal = tmp_path / "joined" / "records.jsonl"
        deadline = time.time() + 120
        while not (journal.is_file() and len(journal.read_text().splitlines()) >= 6):
            assert time.time() < deadline and proc.poll() is None, "no progress before the node kill"
            time.sleep(0.2)
        cluster.remove_node(worker, allow_graceful=False)
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    finally:
        cluster.shutdown()
    exp = tmp_path / "joined"
    info = json.loads((exp / "run_info.json").read_text())
    assert info["ray"] == address
    assert error_texts(exp), "no trial failed when its node was killed"
    markers = [r for rs in restores(exp).values() for r in rs]
    assert markers, "no trial was restored after the node loss"
    assert all(r["node_id"] != worker_id for r in markers)  # they resumed elsewhere
    assert_records_match_checkpoints(exp, expect_epochs=8)
