"""celery-redbeat's own test suite, run against the bridge's scheduler and entry classes.

The bridge's beat scheduler subclasses celery-redbeat's (``bridge.worker.beat``); an
app's static ``beat_schedule`` entries must behave there exactly as under redbeat.
This script downloads the sdist of the installed celery-redbeat version, copies its
``tests/`` with ``RedBeatScheduler`` and ``RedBeatSchedulerEntry`` imported from the
bridge instead (``BridgeScheduler``, ``BridgeEntry``), and runs them. Tests listed
in ``redbeat_expected_failures.txt`` beside this file fail with redbeat's own
classes too on the installed Celery; each line says why. ``--stock`` runs the
suite with redbeat's own classes, for comparison.

Run with ``tox -e peers-redbeat`` (it installs fakeredis and pytz, which the suite uses).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from _sdist import expected_failures, installed_version, sdist_root

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "redbeat_expected_failures.txt"

# Each import of a class the bridge replaces, and what it becomes.
_ENTRY = "from bridge.worker.beat import BridgeEntry as RedBeatSchedulerEntry\n"
_SCHEDULER = "from bridge.worker.beat import BridgeScheduler as RedBeatScheduler\n"
SUBSTITUTIONS = {
    "from redbeat import RedBeatScheduler\n": _SCHEDULER,
    "from redbeat import RedBeatSchedulerEntry\n": _ENTRY,
    "from redbeat.schedulers import RedBeatSchedulerEntry\n": _ENTRY,
    "from redbeat.schedulers import (\n    RedBeatSchedulerEntry,\n": _ENTRY
    + "from redbeat.schedulers import (\n",
}


def sdist_tests(version: str) -> Path:
    """The sdist's tests/ folder (downloaded once into .peers/)."""
    return sdist_root("celery-redbeat", version) / "tests"


def bridged_copy(tests: Path, stock: bool) -> Path:
    """A copy of ``tests`` (in a folder of its own, so ``tests`` imports it) with the bridge's classes."""
    target = tests.parent.parent / "runs" / ("stock" if stock else "bridged")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(tests, target / "tests")
    # The suite's own pytest settings (none), not this project's (warnings are errors there).
    (target / "pytest.ini").write_text("[pytest]\n")
    if stock:
        return target
    for path in (target / "tests").glob("*.py"):
        text = path.read_text()
        for old, new in SUBSTITUTIONS.items():
            text = text.replace(old, new)
        leftover = re.findall(r"^from redbeat[\w.]* import .*\bRedBeatScheduler(?:Entry)?\b.*$", text, re.M)
        if leftover or re.search(r"^\s+RedBeatScheduler(?:Entry)?,\s*$", text, re.M):
            raise SystemExit(f"{path.name}: an import of redbeat's classes was not substituted: {leftover}")
        path.write_text(text)
    return target


def main(argv: list[str]) -> int:
    stock = "--stock" in argv
    version = installed_version("celery-redbeat")
    folder = bridged_copy(sdist_tests(version), stock)
    expected = expected_failures(EXPECTED, version)
    print(f"celery-redbeat {version} suite with {'redbeat' if stock else 'the bridge'}'s classes")
    for test, why in expected.items():
        print(f"  deselected (fails with redbeat's own classes too): {test}: {why}")
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:celery", "-o", "addopts=",
            "-q", "tests", *(f"--deselect={test}" for test in expected)]  # fmt: skip
    args += [arg for arg in argv if arg != "--stock"]
    return subprocess.run(args, cwd=folder).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
