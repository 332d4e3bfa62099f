"""The wheel as a user installs it: the package alone, no top-level ``celeryconfig``.

Celery's convention is a user's own ``celeryconfig.py`` next to the app. A wheel
that installed a top-level module of that name would shadow it for any app whose
folder comes later on ``sys.path`` (``sys.path.append``, old WSGI files).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (found,) = out.glob("celery_jobs_bridge-*.whl")
    return found


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with the wheel installed; its dependencies come from this one's site-packages."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # A path in a .pth file is added as is: the editable install of this repository (a .pth
    # file of its own inside that folder) is not processed, so `bridge` comes from the wheel.
    Path(site, "_deps_from_test_venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    return home


def run(home: Path, *args: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REDIS_URL", "QUEUE_BACKEND")}
    env.update(BRIDGE_HOME=str(cwd / ".bridge"), **extra)
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_wheel_holds_the_package_and_no_top_level_celeryconfig(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"bridge"}
    assert "bridge/celeryconfig.py" in names
    assert "bridge/py.typed" in names
    for room in ("core", "redis", "sqs", "embedded", "worker", "cli"):
        assert f"bridge/{room}/__init__.py" in names


def test_the_installed_jobs_command_runs(fresh_venv: Path, tmp_path: Path) -> None:
    out = run(fresh_venv, str(fresh_venv / "bin" / "jobs"), "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "schedules" in out.stdout
    assert "stats" in out.stdout
    where = run(fresh_venv, str(fresh_venv / "bin" / "python"), "-c", "import bridge; print(bridge.__file__)",
                cwd=tmp_path)  # fmt: skip
    assert where.stdout.startswith(str(fresh_venv)), where.stdout


def test_an_app_with_its_own_celeryconfig_on_a_late_path_loads_its_own(
    fresh_venv: Path, tmp_path: Path
) -> None:
    app_dir = tmp_path / "legacy_app"
    app_dir.mkdir()
    (app_dir / "celeryconfig.py").write_text('broker_url = "memory://"\ntask_default_queue = "legacy"\n')
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.append({str(app_dir)!r})  # late, as old WSGI files do
        from celery import Celery
        app = Celery("legacy")
        app.config_from_object("celeryconfig")
        import celeryconfig
        print(celeryconfig.__file__)
        print(app.conf.broker_url, app.conf.task_default_queue)
        """
    )
    out = run(fresh_venv, str(fresh_venv / "bin" / "python"), "-c", script, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [str(app_dir / "celeryconfig.py"), "memory:// legacy"]
    assert not (tmp_path / ".bridge").exists()  # no embedded server was started


def test_the_production_settings_load_by_their_package_name(fresh_venv: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        from celery import Celery
        app = Celery("shop")
        app.config_from_object("bridge.celeryconfig")
        print(app.conf.broker_url, app.conf.task_acks_late, app.conf.accept_content)
        """
    )
    env_script = [
        "env",
        "REDIS_URL=redis://127.0.0.1:6379/9",
        str(fresh_venv / "bin" / "python"),
        "-c",
        script,
    ]
    out = run(fresh_venv, *env_script, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["redis://127.0.0.1:6379/9", "True", "['json']"]
