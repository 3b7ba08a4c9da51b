"""A real one-node Slurm cluster inside a test, for the tests of the GPU queue.

``slurm_cluster(folder)`` starts Debian's munged, slurmctld and slurmd on this
machine, each with its own key, socket, ports, configuration, state and logs
under ``folder``, so it never meets a system Slurm or the system's munge. The
node offers ``gpus`` GPUs that are only counted (no hardware behind them), so
``--gres=gpu:1`` jobs queue for them as on a GPU server. Everything it starts
is stopped on the way out, jobs included, also when the test fails.

Usage::

    from tests.accounts import shared_folder
    from tests.slurm_cluster import slurm_cluster

    with shared_folder("slurm") as folder, slurm_cluster(folder, gpus=2) as cluster:
        job = cluster.run("sbatch", "--parsable", "--gres=gpu:1", "--wrap", "sleep 1").stdout.strip()
        cluster.run("squeue", "-j", job)

Limits: the node has as many CPUs as the machine (or ``gpus``, if that is more,
so the GPUs are always what runs out first for jobs asking 1 CPU, the default);
a job that asks for more CPUs (``-c``) can be held back by CPUs instead. Memory
is not scheduled (``CR_Core``). Jobs run with no cgroups (``proctrack/linuxproc``,
``task/none``): CPU and memory limits are not enforced. A job starts about a
second after a submit or after the job before it ends (slurmctld's one-second
tick). ``scancel`` sends SIGTERM (and SIGCONT), then SIGKILL ``KILL_WAIT``
seconds later. A job sees ``SLURM_GPUS_ON_NODE`` but no ``CUDA_VISIBLE_DEVICES``;
``cuda_visible_devices=True`` gives each GPU a device file (a copy of
/dev/null), and Slurm then sets ``CUDA_VISIBLE_DEVICES`` and ``SLURM_JOB_GPUS``
to the GPU's index, as on a real GPU server.

Needs root (daemons, and jobs run as other accounts); without it the test is
skipped. ``folder`` must be one other accounts can enter
(``tests.accounts.shared_folder``): jobs of other accounts start from slurmd's
spool and read the configuration there.
"""
from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

PACKAGES = ("slurm-wlm", "munge")
_COMMANDS = ("sbatch", "squeue", "sinfo", "scontrol", "scancel", "slurmctld", "slurmd", "munged", "munge", "unmunge")
_INSTALL_LOCK = Path("/tmp/lora-kitchen-tests-apt.lock")
# Seconds between SIGTERM and SIGKILL when a job is cancelled or runs out of time.
KILL_WAIT = 5
START_TIMEOUT = 40.0


@dataclass
class SlurmCluster:
    """A running cluster: ``env`` is what a child process needs to use it (merge it into ``os.environ``)."""

    folder: Path
    partition: str
    node: str
    gpus: int
    env: dict[str, str]
    _daemons: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)

    @property
    def conf(self) -> Path:
        return Path(self.env["SLURM_CONF"])

    def environ(self, **extra: str) -> dict[str, str]:
        """``os.environ`` with this cluster's ``env`` (and ``extra``) on top, for ``subprocess``'s ``env=``."""
        return {**os.environ, **self.env, **extra}

    def run(self, *args: str, timeout: float = 30, **kwargs) -> subprocess.CompletedProcess:
        """A Slurm command (``"squeue", "-h"``) against this cluster, as root; text output captured, not checked."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        env = {**os.environ, **self.env, **kwargs.pop("env", {})}
        return subprocess.run(list(args), env=env, timeout=timeout, **kwargs)

    def logs(self, lines: int = 30) -> str:
        """The last ``lines`` each daemon wrote (``-D``/``--foreground``: all of its log), for failure messages."""
        parts = []
        for path in sorted((self.folder / "log").glob("*.out")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} ---\n" + "\n".join(text))
        return "\n".join(parts)


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("starts Slurm's daemons and runs jobs as other accounts: runs as root (as CI does)")


def _command(name: str) -> str | None:
    """The program's path; the daemons sit in /usr/sbin, which a non-login PATH may lack."""
    found = shutil.which(name) or Path("/usr/sbin", name)
    return str(found) if Path(found).exists() else None


def _ensure_installed() -> None:
    """Debian's Slurm and munge; CI (.ci/run) installs them first, so this only helps a bare machine."""
    if all(map(_command, _COMMANDS)):
        return
    # Parallel test workers would otherwise race for dpkg's lock.
    with open(_INSTALL_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all(map(_command, _COMMANDS)):
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", *PACKAGES], check=True, env=env, capture_output=True)


def _enterable_by_others(folder: Path) -> None:
    for path in [folder, *folder.parents]:
        if not path.stat().st_mode & stat.S_IXOTH:
            raise ValueError(f"{path} is closed to other accounts, whose jobs must reach {folder}: "
                             "make the cluster in tests.accounts.shared_folder()")


def _free_ports(count: int) -> list[int]:
    """Ports nothing listens on now; held open together so the two differ."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _memory_mib() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)


def _slurm_conf(*, cluster: str, node: str, cpus: int, memory: int, gpus: int, partition: str,
                ports: list[int], folder: Path, munge_socket: Path) -> str:
    etc, log = folder / "etc", folder / "log"
    return f"""\
# Written by tests/slurm_cluster.py for one test; nothing here is the system's Slurm.
ClusterName={cluster}
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={folder / "state"}
SlurmdSpoolDir={folder / "spool"}
SlurmctldPidFile={log / "slurmctld.pid"}
SlurmdPidFile={log / "slurmd.pid"}
SlurmctldLogFile={log / "slurmctld.log"}
SlurmdLogFile={log / "slurmd.log"}
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={etc / "plugstack.conf"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
ReturnToService=2
# The node is what this file says, whatever slurmd finds (CPUs may be raised to the GPU count).
SlurmdParameters=config_overrides
SchedulerType=sched/builtin
# Batch jobs start at the next tick after a submit or an end (not up to 3 s later); the whole queue every 2 s.
SchedulerParameters=batch_sched_delay=0,sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
MessageTimeout=5
KillWait={KILL_WAIT}
InactiveLimit=0
Waittime=0
# Finished jobs stay known for 10 minutes, so "scontrol show job" still answers for them.
MinJobAge=600
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} Gres=gpu:{gpus} State=UNKNOWN
PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def _munge_user() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam("munge")
    except KeyError:
        return None


def _start(name: str, command: list[str], folder: Path, env: dict[str, str], **kwargs) -> subprocess.Popen:
    out = open(folder / "log" / f"{name}.out", "ab")
    try:
        # Own session: a Ctrl-C in the terminal reaches pytest, whose teardown stops these in order.
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True, **kwargs)
    finally:
        out.close()


def _stop(process: subprocess.Popen, wait: float = 10) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _wait(what: str, ready, cluster: SlurmCluster, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, process in cluster._daemons.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited ({process.returncode}) while waiting for {what}\n{cluster.logs()}")
        if ready():
            return
        time.sleep(0.2)
    raise TimeoutError(f"Slurm test cluster: no {what} after {timeout:.0f} s\n{cluster.logs()}")


def _munge_works(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    credential = subprocess.run([_command("munge"), "-n", "-S", str(socket_path)], capture_output=True)
    if credential.returncode:
        return False
    return subprocess.run([_command("unmunge"), "-S", str(socket_path)], input=credential.stdout,
                          capture_output=True).returncode == 0


def _node_state(cluster: SlurmCluster) -> str:
    try:
        answer = cluster.run("sinfo", "-h", "-N", "-n", cluster.node, "-o", "%T", timeout=10)
    except subprocess.TimeoutExpired:
        return ""
    return answer.stdout.strip() if answer.returncode == 0 else ""


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def _strays(conf: Path) -> list[int]:
    """slurmstepd and job processes of this cluster still alive: their environment names its slurm.conf."""
    marker = f"SLURM_CONF={conf}".encode()
    mine, found = _ancestors(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        in_a_job = any(item.startswith(b"SLURM_JOB_ID=") for item in environ)
        if marker in environ and (comm.startswith("slurmstepd") or in_a_job):
            found.append(int(entry.name))
    return found


def _kill_strays(conf: Path) -> None:
    for pid in _strays(conf):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _cancel_everything(cluster: SlurmCluster) -> None:
    """Every job ends before the daemons stop, so slurmd reaps its own steps (SIGKILL after KILL_WAIT)."""
    try:
        cluster.run("scancel", "--partition", cluster.partition, timeout=10)
        deadline = time.monotonic() + KILL_WAIT + 10
        while time.monotonic() < deadline:
            queue = cluster.run("squeue", "-h", "-o", "%i", timeout=10)
            if queue.returncode != 0 or not queue.stdout.strip():
                return
            time.sleep(0.3)
    except subprocess.TimeoutExpired:
        pass


@contextmanager
def slurm_cluster(folder: Path, *, gpus: int = 2, partition: str = "lab",
                  cuda_visible_devices: bool = False) -> Iterator[SlurmCluster]:
    """A one-node cluster with ``gpus`` counted GPUs and one partition ``partition``, under ``folder``.

    Yields a ``SlurmCluster``: ``.env`` holds ``SLURM_CONF`` (this cluster's slurm.conf), which is all a
    Slurm command needs to find it; ``.run(*args)`` runs one as root with it. Waits until the node is
    idle; on exit cancels every job, then stops every daemon and kills any step left.
    """
    if gpus < 1:
        raise ValueError("a GPU node has at least 1 GPU")
    _need_root()
    _ensure_installed()
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    _enterable_by_others(folder)

    etc, munge_dir, log = folder / "etc", folder / "munge", folder / "log"
    for path, mode in ((etc, 0o755), (log, 0o755), (folder / "state", 0o700), (folder / "spool", 0o755),
                       (munge_dir, 0o755)):
        path.mkdir(mode=mode)
        os.chmod(path, mode)
    node = socket.gethostname().split(".")[0]
    munge_socket = munge_dir / "munge.socket"
    conf = etc / "slurm.conf"
    conf.write_text(_slurm_conf(
        cluster=f"lk{uuid.uuid4().hex[:8]}", node=node, cpus=max(os.cpu_count() or 1, gpus),
        memory=max(_memory_mib() // 2, 1), gpus=gpus, partition=partition, ports=_free_ports(2),
        folder=folder, munge_socket=munge_socket))
    # Slurm 22.05's gres/gpu drops a GPU with no File= and drains the node, so each GPU is a file here:
    # a plain one (slurmd logs "not a valid character or block device" and counts it) or a /dev/null copy.
    gpu_files = folder / "gpus"
    gpu_files.mkdir(mode=0o755)
    for index in range(gpus):
        if cuda_visible_devices:
            os.mknod(gpu_files / f"gpu{index}", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        else:
            (gpu_files / f"gpu{index}").touch(mode=0o644)
    (etc / "gres.conf").write_text(f"AutoDetect=off\nName=gpu File={gpu_files}/gpu[0-{gpus - 1}]\n")
    # Empty: no SPANK plugins from /etc/slurm/plugstack.conf.d.
    (etc / "plugstack.conf").write_text("")
    for path in etc.iterdir():
        os.chmod(path, 0o644)

    key = munge_dir / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    munge_user = _munge_user()
    munge_log = log / "munged.log"
    munge_log.touch(mode=0o640)
    munge_as: dict = {}
    munge_force: list[str] = []
    if munge_user:
        # munged refuses a key, folder or log that is not its own user's.
        for path in (munge_dir, key, munge_log):
            os.chown(path, munge_user.pw_uid, munge_user.pw_gid)
        munge_as = {"user": munge_user.pw_uid, "group": munge_user.pw_gid, "extra_groups": []}
    else:
        # As root, munged calls root-owned folders "insecure" unless forced.
        munge_force = ["--force"]

    env = {"SLURM_CONF": str(conf)}
    daemon_env = {**os.environ, **env}
    cluster = SlurmCluster(folder=folder, partition=partition, node=node, gpus=gpus, env=env)
    try:
        cluster._daemons["munged"] = _start("munged", [
            _command("munged"), "--foreground", *munge_force, f"--socket={munge_socket}", f"--key-file={key}",
            f"--log-file={munge_log}", f"--pid-file={munge_dir / 'munged.pid'}",
            f"--seed-file={munge_dir / 'munged.seed'}"], folder, daemon_env, **munge_as)
        _wait("munge answer", lambda: _munge_works(munge_socket), cluster)
        cluster._daemons["slurmctld"] = _start("slurmctld", [_command("slurmctld"), "-D", "-i", "-f", str(conf)],
                                               folder, daemon_env)
        cluster._daemons["slurmd"] = _start("slurmd", [_command("slurmd"), "-D", "-N", node, "-f", str(conf)],
                                            folder, daemon_env)
        _wait(f"idle node {node}", lambda: _node_state(cluster) == "idle", cluster)
        yield cluster
    finally:
        if cluster._daemons.get("slurmctld") and cluster._daemons["slurmctld"].poll() is None:
            _cancel_everything(cluster)
        for name in ("slurmd", "slurmctld", "munged"):
            if name in cluster._daemons:
                _stop(cluster._daemons[name])
        _kill_strays(conf)
