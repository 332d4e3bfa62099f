"""Shared by the peer-suite runners: an installed project's sdist (downloaded once into .peers/), a private
redis-server, and the pytest run of the suite."""

from __future__ import annotations

import importlib.metadata
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

CACHE = Path(__file__).resolve().parent.parent / ".peers"


def installed_version(project: str) -> str:
    return importlib.metadata.version(project)


def sdist_root(project: str, version: str) -> Path:
    """The unpacked sdist of ``project==version`` (its top folder)."""
    root = CACHE / f"{project}-{version}"
    if not root.exists():
        # Unpacked beside, then renamed: an interrupted download never leaves a half-made cache.
        CACHE.mkdir(exist_ok=True)
        partial = Path(tempfile.mkdtemp(dir=CACHE, prefix=f".{project}-"))
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
                 f"{project}=={version}", "-d", str(partial)],
                check=True,
            )  # fmt: skip
            (archive,) = partial.glob("*.tar.gz")
            with tarfile.open(archive) as tar:
                tar.extractall(partial, filter="data")
            partial.rename(root)
        finally:
            shutil.rmtree(partial, ignore_errors=True)  # gone already once renamed
    (top,) = (path for path in root.iterdir() if path.is_dir() and path.name != "runs")
    return top


def expected_failures(path: Path, version: str) -> dict[str, str]:
    """``test-id reason`` lines of ``path`` (``#`` starts a comment) that apply to ``version``.

    A reason that starts with a version range in brackets (``[<5.4] ...``) applies to the
    versions in that range only.
    """
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            test, _, why = line.partition(" ")
            why = why.strip()
            if why.startswith("["):
                versions, _, why = why[1:].partition("]")
                if Version(version) not in SpecifierSet(versions):
                    continue
            out[test] = why.strip()
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, port
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"redis-server did not start on port {port}")


def run_suite(root: Path, env: dict[str, str], plugins: list[str], files: list[str], deselect: Iterable[str],
              options: list[str], server: subprocess.Popen[bytes]) -> int:  # fmt: skip
    """Run ``files`` of the sdist at ``root`` under pytest, then stop the private ``server``."""
    args = [sys.executable, "-m", "pytest", *plugins, "-q", "-rfE", *files,
            *(f"--deselect={test}" for test in deselect), *options]  # fmt: skip
    try:
        return subprocess.run(args, cwd=root, env=env).returncode
    finally:
        server.terminate()
        server.wait(10)
