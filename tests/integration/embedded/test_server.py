"""The embedded Valkey server: shared start-up, crash recovery, bad environments, the CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bridge import ConfigError
from bridge.embedded.server import EmbeddedServer
from tests.conftest import JOBS, ROOT, read_ledger, wait_for

pytestmark = pytest.mark.redis
embedded_only = pytest.mark.parametrize("backend_kind", ["embedded"], indirect=True)


@pytest.fixture
def fresh_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="bh-"))
    yield home
    EmbeddedServer(home).stop()
    shutil.rmtree(home, ignore_errors=True)


def servers_for(home: Path) -> list[int]:
    """Pids of valkey processes serving ``home`` (read from /proc, not from our pidfile)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"valkey" in cmdline and str(home).encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def _start_and_use(home: str, barrier: multiprocessing.Barrier, results: multiprocessing.Queue) -> None:
    server = EmbeddedServer(home)
    barrier.wait()
    server.ensure_running()
    client = redis.Redis.from_url(server.url)
    client.incr("starters")
    results.put(server.status().pid)


def test_four_processes_starting_at_once_share_one_server(fresh_home):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_start_and_use, args=(str(fresh_home), barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    pids = {results.get(timeout=5) for _ in procs}

    assert len(pids) == 1
    assert servers_for(fresh_home) == list(pids)
    assert redis.Redis.from_url(EmbeddedServer(fresh_home).url).get("starters") == b"4"


@embedded_only
def test_kill9_of_the_server_keeps_every_acknowledged_add(make_bridge, start_worker, redis_client, server):
    bridge = make_bridge()
    keys = [f"order-{i}" for i in range(100)]
    for key in keys:
        bridge.queue.add("ledger.record", {"key": key}, idempotency_key=key)
    for i in range(20):
        bridge.queue.add("ledger.record", {"key": f"later-{i}"}, idempotency_key=f"later-{i}", delay_ms=1500)
    time.sleep(1.1)  # appendfsync everysec: let the last second reach the disk

    embedded = EmbeddedServer(server.home)
    pid = embedded.status().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not embedded.status().running, timeout=10)

    start_worker("w1", concurrency=2)  # its start-up restarts the server from the append-only file
    assert wait_for(lambda: redis_client.llen("test:ledger") >= 120, timeout=60)
    time.sleep(1.0)  # proves no run twice: the workers are idle and a redelivery would run in ms
    per_key = Counter(line["key"] for line in read_ledger(redis_client))
    assert len(per_key) == 120
    assert set(per_key.values()) == {1}
    again = bridge.queue.add("ledger.record", {"key": "order-7"}, idempotency_key="order-7")
    assert again.deduplicated  # the guards survived too


def test_stale_pidfile_and_socket_from_a_crash_are_cleaned(fresh_home):
    dead = subprocess.Popen(["true"])
    dead.wait()
    (fresh_home / "valkey.pid").write_text(str(dead.pid))
    with socket.socket(socket.AF_UNIX) as leftover:  # a socket file nobody listens on
        leftover.bind(str(fresh_home / "valkey.sock"))

    server = EmbeddedServer(fresh_home)
    server.ensure_running()
    state = server.status()
    assert state.running
    assert state.pid != dead.pid
    assert redis.Redis.from_url(server.url).ping()


def test_socket_path_too_long_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"BRIDGE_HOME.*shorter path"):
        EmbeddedServer("/tmp/" + "deep/" * 25)


def test_unwritable_home_is_a_clear_error(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(ConfigError, match="not writable"):
        EmbeddedServer(not_a_folder / "home").ensure_running()


def test_server_of_another_user_is_refused(fresh_home):
    server = EmbeddedServer(fresh_home)
    server.ensure_running()
    os.chown(server.socket_path, 65534, 65534)
    try:
        with pytest.raises(ConfigError, match="belongs to uid 65534"):
            server.ensure_running()
    finally:
        os.chown(server.socket_path, os.getuid(), os.getgid())


def jobs_cli(*args: str, home: Path | str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "QUEUE_BACKEND")}
    environ.update(BRIDGE_HOME=str(home), **env)
    return subprocess.run(
        [JOBS, *args], cwd=ROOT, env=environ, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def test_cli_server_start_status_stop(fresh_home):
    assert "not running" in jobs_cli("server", "status", home=fresh_home).stdout

    started = jobs_cli("server", "start", home=fresh_home)
    assert started.returncode == 0, started.stderr
    status = jobs_cli("server", "status", "--json", home=fresh_home)
    state = json.loads(status.stdout)
    assert state["running"] is True
    assert state["socket"] == str(fresh_home / "valkey.sock")
    assert state["pid"] in servers_for(fresh_home)
    assert state["version"]
    assert state["used_memory_human"]
    assert state["uptime_s"] >= 0

    stopped = jobs_cli("server", "stop", home=fresh_home)
    assert (stopped.returncode, stopped.stdout.strip()) == (0, "stopped")
    assert servers_for(fresh_home) == []
    assert "not running" in jobs_cli("server", "status", home=fresh_home).stdout


def test_cli_bad_environment_exits_2_with_one_line(tmp_path):
    too_deep = jobs_cli("server", "start", home="/tmp/" + "deep/" * 25)
    bad_backend = jobs_cli("server", "status", home=tmp_path, QUEUE_BACKEND="nope")
    for done in (too_deep, bad_backend):
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1
        assert "Traceback" not in done.stderr


# -- a state folder nobody else can use against us ------------------------------------------------


def test_a_pidfile_naming_an_unrelated_process_never_gets_it_signalled(fresh_home):
    bystander = subprocess.Popen(["sleep", "300"])
    pidfile = fresh_home / "valkey.pid"
    try:
        assert jobs_cli("server", "start", home=fresh_home).returncode == 0
        pidfile.write_text(str(bystander.pid))  # overwritten while the server runs
        assert jobs_cli("server", "stop", home=fresh_home).stdout.strip() == "stopped"

        pidfile.write_text(str(bystander.pid))  # left stale with no server
        stopped = jobs_cli("server", "stop", home=fresh_home)
        assert (stopped.returncode, stopped.stdout.strip()) == (0, "was not running"), stopped.stderr
        pidfile.write_text(str(bystander.pid))
        started = jobs_cli("server", "start", home=fresh_home)  # cleans the stale pidfile first
        assert started.returncode == 0, started.stderr
        assert jobs_cli("server", "stop", home=fresh_home).stdout.strip() == "stopped"
        assert bystander.poll() is None  # alive through all of it
    finally:
        bystander.kill()
        bystander.wait()


def test_a_pidfile_naming_another_homes_server_leaves_that_server_running(fresh_home, tmp_path):
    other = EmbeddedServer(fresh_home)
    other.ensure_running()
    other_pid = other.status().pid
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    (mine / "valkey.pid").write_text(str(other_pid))

    assert jobs_cli("server", "stop", home=mine).returncode == 0
    assert jobs_cli("server", "start", home=mine).returncode == 0
    assert jobs_cli("server", "stop", home=mine).stdout.strip() == "stopped"
    assert other.status().pid == other_pid  # untouched, still answering


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_the_state_folder_and_the_servers_files_are_the_users_alone(tmp_path, umask):
    home = tmp_path / "home"
    start = (
        f"import os; os.umask({umask:#o}); from bridge.embedded.server import EmbeddedServer; "
        f"EmbeddedServer({str(home)!r}).ensure_running()"
    )
    subprocess.run([sys.executable, "-c", start], cwd=ROOT, check=True, timeout=60)
    try:
        redis.Redis.from_url(EmbeddedServer(home).url).set("payload", "secret")  # something to persist
        time.sleep(1.2)  # appendfsync everysec
        assert (home.stat().st_mode & 0o777) == 0o700
        files = [p for p in home.rglob("*") if p.is_file()]
        assert {p.name for p in files} >= {"valkey.pid", "valkey.log", "start.lock"}
        assert any(p.parent.name == "appendonlydir" for p in files)
        assert {p.name: oct(p.stat().st_mode & 0o777) for p in files} == {p.name: "0o600" for p in files}
    finally:
        EmbeddedServer(home).stop()


def test_a_readable_folder_from_an_older_version_is_closed_to_others(tmp_path):
    home = tmp_path / "old"
    home.mkdir()
    home.chmod(0o755)
    server = EmbeddedServer(home)
    try:
        server.ensure_running()
        assert (home.stat().st_mode & 0o777) == 0o700
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("plant", "message"),
    [
        ("symlinked home", "is a symlink"),
        ("world-writable home", r"writable by other users \(mode 0777\).*chmod 700"),
        ("home of another user", "belongs to uid 65534"),
        ("valkey.log symlink", r"valkey.log is not a regular file"),
        ("valkey.pid symlink", r"valkey.pid is not a regular file"),
        ("file at the socket path", r"valkey.sock is not a unix socket"),
    ],
)
def test_a_planted_state_folder_is_refused_and_nothing_in_it_is_followed_or_deleted(tmp_path, plant, message):
    real, target = tmp_path / "real", tmp_path / "target.txt"
    real.mkdir(mode=0o700)
    target.write_text("not yours\n")
    home = real
    if plant == "symlinked home":
        home = tmp_path / "link"
        home.symlink_to(real)
    elif plant == "world-writable home":
        real.chmod(0o777)
    elif plant == "home of another user":
        os.chown(real, 65534, 65534)
    elif plant.endswith("symlink"):
        (real / plant.split()[0]).symlink_to(target)
    else:
        (real / "valkey.sock").write_text("planted\n")

    done = jobs_cli("server", "start", home=home)
    assert done.returncode == 2
    assert re.search(message, done.stderr), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    with pytest.raises(ConfigError, match=message):
        EmbeddedServer(home).ensure_running()
    assert servers_for(real) == []  # nothing started
    assert target.read_text() == "not yours\n"
    if plant == "file at the socket path":
        assert (real / "valkey.sock").read_text() == "planted\n"


def test_a_corrupt_append_only_file_fails_the_start_with_the_servers_own_words(fresh_home: Path) -> None:
    """The server refuses to load a damaged append-only file: the caller is told why, from its log,
    and the file is left as it was for the operator (valkey-check-aof) to repair."""
    from bridge import BackendUnavailable

    server = EmbeddedServer(fresh_home)
    server.ensure_running()
    server.stop()
    manifest = next(fresh_home.glob("appendonlydir/*.manifest"))
    manifest.write_text("garbage\n")
    with pytest.raises(BackendUnavailable, match="Invalid AOF manifest file format"):
        server.ensure_running()
    assert manifest.read_text() == "garbage\n"
    assert servers_for(fresh_home) == []  # nothing left running
