"""kombu's own Redis integration suite (``t/integration/test_redis*.py``), with the bridge's transport.

The bridge's worker consumes through ``bridge.redis.transport``, a subclass of
kombu's Redis transport; the judge of that subclass is kombu's own suite. This
downloads the sdist of the installed kombu, starts a private ``redis-server``, and
runs the suite with ``redis://`` resolved to the bridge's transport (the plugin
``kombu_bridged.py`` beside this file). Tests listed in ``kombu_expected_failures.txt``
check an internal detail the transport changes on purpose; each line says which
and why. ``--stock`` runs the suite on kombu's own transport, for comparison.

Run with ``tox -e peers-kombu``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from _sdist import expected_failures, installed_version, run_suite, sdist_root, start_redis

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "kombu_expected_failures.txt"
FILES = ["t/integration/test_redis.py", "t/integration/test_redis_brpop_qos.py"]


def main(argv: list[str]) -> int:
    stock = "--stock" in argv
    options = [arg for arg in argv if arg != "--stock"]
    version = installed_version("kombu")
    root = sdist_root("kombu", version)
    files = [f for f in FILES if (root / f).exists()]
    expected = {} if stock else expected_failures(EXPECTED, version)
    print(f"kombu {version}'s {' '.join(files)} on {'kombu' if stock else 'the bridge'}'s Redis transport")
    for test, why in expected.items():
        print(f"  deselected (changed on purpose): {test}: {why}")
    with tempfile.TemporaryDirectory(prefix="kombu-peer-") as folder:
        server, port = start_redis(Path(folder))
        env = dict(os.environ, REDIS_HOST="127.0.0.1", REDIS_6379_TCP=str(port))
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(root), env.get("PYTHONPATH", "")])
        plugins = ["-p", "no:cacheprovider", "-p", "no:celery"]
        if not stock:
            plugins += ["-p", "kombu_bridged"]
        return run_suite(root, env, plugins, files, expected, options, server)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
