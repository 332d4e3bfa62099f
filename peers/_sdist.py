"""Shared by the peer-suite runners: the sdist of an installed project, downloaded once into .peers/."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tarfile
from pathlib import Path

CACHE = Path(__file__).resolve().parent.parent / ".peers"


def installed_version(project: str) -> str:
    return importlib.metadata.version(project)


def sdist_root(project: str, version: str) -> Path:
    """The unpacked sdist of ``project==version`` (its top folder)."""
    root = CACHE / f"{project}-{version}"
    if not root.exists():
        root.mkdir(parents=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
             f"{project}=={version}", "-d", str(root)],
            check=True,
        )  # fmt: skip
        (archive,) = root.glob("*.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
    (top,) = (path for path in root.iterdir() if path.is_dir() and path.name != "runs")
    return top


def expected_failures(path: Path) -> dict[str, str]:
    """``test-id reason`` lines of ``path`` (``#`` starts a comment)."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            test, _, why = line.partition(" ")
            out[test] = why.strip()
    return out
