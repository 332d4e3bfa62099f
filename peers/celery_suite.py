"""Celery's own integration suite (``t/integration``), run with a bridged worker.

``Bridge(app)`` changes nothing of what an app already does: the judge is Celery's
own suite. This downloads the sdist of the installed Celery, starts a private
``redis-server`` (broker, result backend, and the suite's own Redis), and runs
``t/integration/test_tasks.py`` (or the files given) with every app the suite's
fixtures build bridged (the plugin ``celery_bridged.py`` beside this file).
Tests listed in ``celery_expected_failures.txt`` fail without the bridge too, on
this machine; each line says why. ``--stock`` runs the suite without the bridge,
for comparison.

Run with ``tox -e peers-celery`` (``-- t/integration/test_canvas.py`` for another file).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from _sdist import expected_failures, installed_version, run_suite, sdist_root, start_redis

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "celery_expected_failures.txt"


def main(argv: list[str]) -> int:
    stock = "--stock" in argv
    passed = [arg for arg in argv if arg != "--stock"]  # pytest's own options and files
    files = [arg for arg in passed if arg.startswith("t/")] or ["t/integration/test_tasks.py"]
    options = [arg for arg in passed if not arg.startswith("t/")]
    if shutil.which("redis-server") is None:
        raise SystemExit("peers/celery.py needs redis-server on PATH (apt-get install redis-server)")
    version = installed_version("celery")
    root = sdist_root("celery", version)
    expected = expected_failures(EXPECTED, version)
    print(f"Celery {version}'s {' '.join(files)} with {'no bridge' if stock else 'a bridged worker'}")
    for test, why in expected.items():
        print(f"  deselected (fails without the bridge too): {test}: {why}")
    with tempfile.TemporaryDirectory(prefix="celery-peer-") as folder:
        server, port = start_redis(Path(folder))
        url = f"redis://127.0.0.1:{port}/0"
        env = dict(
            os.environ, TEST_BROKER=url, TEST_BACKEND=url, REDIS_HOST="127.0.0.1", REDIS_PORT=str(port)
        )
        for name in ("REDIS_URL", "QUEUE_BACKEND", "JOBS_BACKEND", "LOCK_BACKEND"):
            env.pop(name, None)
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(root), env.get("PYTHONPATH", "")])
        # pytest-celery registers its plugin as "celery"; the suite wants Celery's own, celery.contrib.pytest.
        plugins = ["-p", "no:cacheprovider", "-p", "no:celery", "-p", "celery.contrib.pytest"]
        if not stock:
            plugins += ["-p", "celery_bridged"]
        return run_suite(root, env, plugins, files, expected, options, server)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
