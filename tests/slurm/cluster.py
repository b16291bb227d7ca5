"""A throw-away single-node SLURM cluster on localhost, with accounting, for tests.

Everything lives under one folder: munged (own key and socket), a private MariaDB server, slurmdbd,
slurmctld and slurmd, each started in the foreground as a child of this process on free ports, so
the cluster touches nothing system-wide (/etc/slurm, /etc/munge, /run/munge, the default ports)
and stopping it is killing its own children. Client commands (sbatch, squeue, sacct, sacctmgr)
find it through ``SLURM_CONF`` (see `Cluster.env`).

The node has the machine's CPUs, most of its memory and one fake GPU (a ``gpu`` generic resource
backed by /dev/null). Two partitions share it, as CPU and GPU partitions would on a real cluster;
the user root has an account, and associations are enforced, so jobs must name a valid account.

Needs root and Debian's packages: slurmctld slurmd slurmdbd slurm-client munge mariadb-server.
By hand: ``python tests/slurm/cluster.py DIR`` starts one and keeps it up until Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROGRAMS = ["munged", "srun", "mariadb-install-db", "mariadbd", "mariadb", "slurmdbd", "slurmctld", "slurmd",
            "sbatch", "squeue", "sacct", "sacctmgr", "scontrol", "scancel", "sinfo"]
PACKAGES = "slurmctld slurmd slurmdbd slurm-client munge mariadb-server"


def missing_requirements() -> str | None:
    """Why a cluster cannot be started here, or None if it can."""
    if os.geteuid() != 0:
        return "needs root (SLURM daemons run as SlurmUser=root)"
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install {PACKAGES})"
    return None


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def node_memory_mb() -> int:
    """Memory the node offers: 3/4 of the machine's (RealMemory must not exceed what slurmd sees)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 * 3 // 4
    raise RuntimeError("no MemTotal in /proc/meminfo")


class ClusterError(RuntimeError):
    pass


class Cluster:
    """Start with `start()`, stop with `stop()` (idempotent; safe after a failed start)."""

    def __init__(self, root: Path, *, cluster: str = "effunettest", account: str = "effunet-test",
                 cpu_partition: str = "cpu", gpu_partition: str = "gpu"):
        self.root = Path(root).resolve()
        self.host = socket.gethostname().split(".")[0]  # `hostname -s`: what slurmd calls itself
        self.cluster, self.account = cluster, account
        self.cpu_partition, self.gpu_partition = cpu_partition, gpu_partition
        self.cpus = os.cpu_count() or 1
        self.memory_mb = node_memory_mb()
        self.conf = self.root / "etc" / "slurm.conf"
        # Inside a job, the executor plugin's jobstep drops every SLURM_* variable (SLURM_CONF
        # too) before it calls srun; production clusters keep slurm.conf where srun looks by
        # itself (/etc/slurm) or serve it (configless). An srun first on PATH stands in for that.
        self.bin = self.root / "bin"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf),
                    "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.timings: dict[str, float] = {}

    # -- running things -------------------------------------------------------------------------

    def run(self, *cmd: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}"
                               f"{self.logs_tail()}")
        return result

    def _daemon(self, name: str, *cmd: str) -> None:
        out = open(self.root / "log" / f"{name}.out", "w")
        proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        out.close()
        self.procs.append((name, proc))

    def _wait(self, what: str, ready, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise ClusterError(f"{name} exited ({proc.returncode}) while waiting for {what}"
                                       f"{self.logs_tail()}")
            try:
                if ready():
                    return
            except (subprocess.SubprocessError, OSError):
                pass
            time.sleep(0.5)
        raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}{self.logs_tail()}")

    def logs_tail(self, lines: int = 15) -> str:
        text = []
        for path in sorted((self.root / "log").glob("*")) if (self.root / "log").exists() else []:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            if tail:
                text.append(f"\n--- {path.name} ---\n" + "\n".join(tail))
        return "".join(text)

    # -- start ----------------------------------------------------------------------------------

    def start(self) -> Cluster:
        t0 = time.monotonic()
        for sub in ("etc", "munge", "db", "state", "spool", "run", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        ctld_port, slurmd_port, dbd_port, db_port = free_ports(4)
        self.db_port, db_password = db_port, secrets.token_hex(12)
        values = dict(root=self.root, cluster=self.cluster, host=self.host, ctld_port=ctld_port,
                      slurmd_port=slurmd_port, dbd_port=dbd_port, db_port=db_port,
                      db_password=db_password, cpus=self.cpus, memory_mb=self.memory_mb,
                      cpu_partition=self.cpu_partition, gpu_partition=self.gpu_partition)
        self.bin.mkdir(parents=True, exist_ok=True)
        srun = self.bin / "srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec {shutil.which("srun")} "$@"\n')
        srun.chmod(0o755)
        for name in ("slurm.conf", "slurmdbd.conf", "gres.conf"):
            path = self.root / "etc" / name
            path.write_text((HERE / f"{name}.in").read_text().format(**values))
            os.chmod(path, 0o600 if name == "slurmdbd.conf" else 0o644)  # slurmdbd insists

        self._start_munge()
        self._start_mariadb(db_password)
        self.timings["mariadb"] = time.monotonic() - t0
        self._start_slurmdbd()
        self._start_slurm()
        self.timings["total"] = time.monotonic() - t0
        return self

    def _start_munge(self) -> None:
        key = self.root / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        os.chmod(key, 0o400)
        sock = self.root / "munge" / "munge.socket"
        self._daemon("munged", "munged", "--foreground", "--force", f"--socket={sock}",
                     f"--key-file={key}", f"--pid-file={self.root}/run/munged.pid",
                     f"--log-file={self.root}/log/munged.log", f"--seed-file={self.root}/munge/seed")
        self._wait("munged", sock.exists, 20)

    def _start_mariadb(self, password: str) -> None:
        datadir, sock = self.root / "db", self.root / "run" / "mariadb.sock"
        self.run("mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=root",
                 "--auth-root-authentication-method=socket", "--skip-test-db", timeout=180)
        self._daemon("mariadbd", "mariadbd", "--no-defaults", f"--datadir={datadir}", "--user=root",
                     f"--socket={sock}", f"--port={self.db_port}", "--bind-address=127.0.0.1",
                     f"--pid-file={self.root}/run/mariadb.pid", f"--log-error={self.root}/log/mariadb.log",
                     "--innodb-buffer-pool-size=256M", "--innodb-lock-wait-timeout=900",
                     "--innodb-log-file-size=64M", "--skip-name-resolve")
        self.mariadb = ["mariadb", "--no-defaults", f"--socket={sock}", "-uroot"]
        self._wait("MariaDB", lambda: self.run(*self.mariadb, "-e", "SELECT 1", check=False).returncode == 0,
                   120)
        self.run(*self.mariadb, "-e",
                 f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{password}';"
                 "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';")

    def _start_slurmdbd(self) -> None:
        self._daemon("slurmdbd", "slurmdbd", "-D")  # finds slurmdbd.conf next to $SLURM_CONF
        self._wait("slurmdbd", lambda: self.run("sacctmgr", "-n", "list", "cluster", check=False,
                                                timeout=20).returncode == 0, 90)
        self.run("sacctmgr", "-i", "add", "cluster", self.cluster)
        self.run("sacctmgr", "-i", "add", "account", self.account, "Description=effunet tests",
                 "Organization=effunet")
        self.run("sacctmgr", "-i", "add", "user", "root", f"Account={self.account}",
                 f"DefaultAccount={self.account}")

    def _start_slurm(self) -> None:
        self._daemon("slurmctld", "slurmctld", "-D", "-i", "-f", str(self.conf))
        self._wait("slurmctld", lambda: self.run("scontrol", "ping", check=False, timeout=10).returncode == 0,
                   60)
        self._daemon("slurmd", "slurmd", "-D", "-f", str(self.conf), "-N", self.host)

        def node_idle():
            state = self.run("sinfo", "-h", "-N", "-o", "%T", check=False, timeout=10).stdout
            return state.strip().split("\n")[0].rstrip("*") == "idle"

        self._wait("the node to become idle", node_idle, 60)

    # -- inspect --------------------------------------------------------------------------------

    def sacct(self, *fields: str) -> list[dict[str, str]]:
        """All jobs (allocations only, not steps) with the given sacct fields."""
        out = self.run("sacct", "-a", "-X", "-n", "-P", "-S", "now-1days",
                       f"--format={','.join(fields)}").stdout
        return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]

    # -- stop -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Cancel all jobs, then stop the daemons in reverse order (SIGTERM, then SIGKILL)."""
        if any(name == "slurmctld" and proc.poll() is None for name, proc in self.procs):
            try:
                self.run("scancel", "--full", f"--user={os.getuid()}", check=False, timeout=20)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and self.run(
                        "squeue", "-h", "-t", "PD,R,CG", check=False, timeout=10).stdout.strip():
                    time.sleep(1)
            except (subprocess.SubprocessError, OSError):
                pass
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        self.procs.clear()

    def __enter__(self) -> Cluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    import sys

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the daemons on `kill` too
    reason = missing_requirements()
    if reason:
        sys.exit(f"cannot start a cluster: {reason}")
    with Cluster(Path(sys.argv[1] if len(sys.argv) > 1 else "slurm-cluster")) as c:
        print(f"up in {c.timings['total']:.1f} s; export SLURM_CONF={c.conf}", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
