"""The ``jobs`` command line's own argument handling and exit-code contract, as units.

click parses; what is the bridge's own is checked here: the refusals made before any
server is read (exit 2, one line naming the option), and ``errors_to_exit_codes``, which
turns every error into one redacted line and the documented status (2 configuration or
usage, 1 backend). The commands run end to end against real servers in
``tests/integration/cli``; these are the units mutation testing runs against.
"""

from __future__ import annotations

import click
import pytest
import redis
from click.testing import CliRunner

from bridge import __version__
from bridge.cli.common import errors_to_exit_codes, json_text
from bridge.cli.main import jobs
from bridge.errors import BackendUnavailable, ConfigError, InvalidInput


def run(*args: str) -> click.testing.Result:
    # An unreachable REDIS_URL: none of these calls may get as far as a server.
    return CliRunner().invoke(jobs, list(args), env={"REDIS_URL": "redis://127.0.0.1:1/0"})


def error_line(result: click.testing.Result) -> str:
    lines = result.output.strip().splitlines()
    assert lines, result
    return lines[-1]


def test_version_names_the_command_and_the_package() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"jobs (celery-jobs-bridge) {__version__}"


def test_an_app_and_a_redis_url_together_are_a_usage_error() -> None:
    result = run("-A", "proj", "--redis-url", "redis://127.0.0.1:6379/0", "stats")
    assert result.exit_code == 2
    assert "give -A APP or --redis-url, not both" in result.output


def test_an_app_that_cannot_be_imported_is_one_line_naming_it() -> None:
    result = run("-A", "no_such_module_for_the_bridge_cli", "stats")
    assert result.exit_code == 2
    line = error_line(result)
    assert line.startswith(
        "jobs: configuration error: -A no_such_module_for_the_bridge_cli: cannot load the app"
    )
    assert "Traceback" not in result.output


@pytest.mark.parametrize("seconds", ["0", "-1"])
def test_watch_takes_a_positive_number_of_seconds(seconds: str) -> None:
    result = run("stats", "--watch", seconds)
    assert result.exit_code == 2
    assert "--watch takes a positive number of seconds" in result.output


@pytest.mark.parametrize("text", ["", " ", "celery,", ",app:jobs", "a,,b"])
def test_queues_that_are_not_a_list_of_names_are_refused_naming_the_option(text: str) -> None:
    for command in ("stats", "metrics-server"):
        result = run(command, "--queues", text)
        assert result.exit_code == 2, (command, result.output)
        assert error_line(result).startswith("jobs: --queues:"), result.output


@pytest.mark.parametrize("options", [[], ["--id", "j1", "--all"]])
def test_dlq_retry_takes_exactly_one_of_id_or_all(options: list[str]) -> None:
    result = run("dlq", "retry", "--queue", "celery", *options)
    assert result.exit_code == 2
    assert "give exactly one of --id or --all" in result.output


@pytest.fixture
def no_server_left(tmp_path):
    """A BRIDGE_HOME of the test's own; a server a broken build started there is stopped afterwards."""
    yield tmp_path
    from bridge.embedded.server import EmbeddedServer

    EmbeddedServer(tmp_path).stop()


def test_without_an_app_or_a_server_the_cli_says_how_to_name_one(no_server_left) -> None:
    tmp_path = no_server_left
    result = CliRunner().invoke(jobs, ["stats"], env={"REDIS_URL": None, "BRIDGE_HOME": str(tmp_path)})
    assert result.exit_code == 2
    line = error_line(result)
    assert line.startswith("jobs: configuration error: no -A APP given, no REDIS_URL set")
    assert "jobs server start" in line
    assert not any(tmp_path.iterdir())  # no server was started, nothing was written


# errors_to_exit_codes, on a command of its own that raises what it is told to.


def failing(exc: BaseException) -> click.Command:
    @click.command()
    @errors_to_exit_codes
    def command() -> None:
        raise exc

    return command


@pytest.mark.parametrize(
    ("exc", "status", "line"),
    [
        (ConfigError("JOBS_X=1: bad"), 2, "jobs: configuration error: JOBS_X=1: bad"),
        (InvalidInput("--limit", "must be positive"), 2, "jobs: --limit: must be positive"),
        (BackendUnavailable("stats failed"), 1, "jobs: backend error: stats failed"),
        (redis.ConnectionError("refused"), 1, "jobs: backend error: ConnectionError: refused"),
    ],
)
def test_errors_become_one_line_and_the_documented_status(exc: BaseException, status: int, line: str) -> None:
    result = CliRunner().invoke(failing(exc), [])
    assert result.exit_code == status
    assert result.stderr.strip() == line  # on stderr, so scripts reading stdout see no error text
    assert result.stdout == ""


def test_an_error_line_is_redacted_and_its_control_characters_escaped() -> None:
    exc = BackendUnavailable("at redis://u:hunter2@h:1/0 \x1b[31mred")
    result = CliRunner().invoke(failing(exc), [])
    assert result.exit_code == 1
    assert "hunter2" not in result.output
    assert "\x1b" not in result.output
    assert "\\x1b[31mred" in result.output


def test_a_bug_is_not_dressed_as_a_backend_error() -> None:
    result = CliRunner().invoke(failing(ValueError("a bug")), [])
    assert result.exit_code == 1
    assert isinstance(result.exception, ValueError)  # raised, with its traceback, not one line


def test_json_output_is_redacted_like_text_and_takes_json_dumps_options() -> None:
    assert json_text({"url": "redis://u:hunter2@h:1/0"}) == '{"url": "redis://u:***@h:1/0"}'
    assert json_text({"a": 1}, indent=2) == '{\n  "a": 1\n}'


# Which server a command read, in its error line: from -A APP, --redis-url or REDIS_URL.

UNREACHABLE = "redis://127.0.0.1:1/0"


def test_a_failure_says_it_read_the_redis_url_option() -> None:
    result = CliRunner().invoke(
        jobs, ["--redis-url", UNREACHABLE, "schedules", "list"], env={"REDIS_URL": None}
    )
    assert result.exit_code == 1
    line = error_line(result)
    assert line.startswith("jobs: backend error: jobs.list failed: ConnectionError")
    assert line.endswith(f"(no -A APP given; read --redis-url {UNREACHABLE})")


def test_a_failure_says_it_read_redis_url_and_hides_its_password() -> None:
    url = "redis://:hunter2@127.0.0.1:1/0"
    result = CliRunner().invoke(jobs, ["schedules", "list"], env={"REDIS_URL": url, "QUEUE_BACKEND": None})
    assert result.exit_code == 1
    line = error_line(result)
    assert line.endswith("(no -A APP given; read REDIS_URL redis://:***@127.0.0.1:1/0)")
    assert "hunter2" not in result.output


def test_the_option_wins_over_the_environment(no_server_left) -> None:
    tmp_path = no_server_left
    env = {"REDIS_URL": "redis://127.0.0.1:2/0", "BRIDGE_HOME": str(tmp_path)}
    result = CliRunner().invoke(jobs, ["--redis-url", UNREACHABLE, "schedules", "list"], env=env)
    assert result.exit_code == 1
    assert error_line(result).endswith(f"(no -A APP given; read --redis-url {UNREACHABLE})")
    env = {"REDIS_URL": None, "BRIDGE_HOME": str(tmp_path)}
    result = CliRunner().invoke(jobs, ["--redis-url", UNREACHABLE, "schedules", "list"], env=env)
    assert error_line(result).endswith(f"(no -A APP given; read --redis-url {UNREACHABLE})")
    assert not any(tmp_path.iterdir())  # the option's server, not an embedded one started in BRIDGE_HOME


@pytest.mark.parametrize("via_celery", [False, True])
def test_with_an_app_its_own_bridge_is_used_and_no_source_line_is_added(via_celery: bool) -> None:
    app = "tests.apps.unreachable_app"
    if via_celery:  # celery -A APP jobs: celery's context carries the app
        from celery.bin.celery import celery

        result = CliRunner().invoke(celery, ["-A", app, "jobs", "schedules", "list"], env={"REDIS_URL": None})
    else:
        result = CliRunner().invoke(jobs, ["-A", app, "schedules", "list"], env={"REDIS_URL": None})
    assert result.exit_code == 1, result.output
    line = error_line(result)
    assert line.startswith("jobs: backend error: jobs.list failed: ConnectionError")
    assert "no -A APP given" not in line
    assert "hunter2" not in result.output


def test_server_status_reads_bridge_home_from_the_app_or_the_environment(tmp_path) -> None:
    result = CliRunner().invoke(jobs, ["server", "status"], env={"BRIDGE_HOME": str(tmp_path)})
    assert result.exit_code == 0
    assert result.output == f"not running (socket {tmp_path}/valkey.sock)\n"
    from tests.apps.unreachable_app import settings

    result = CliRunner().invoke(jobs, ["-A", "tests.apps.unreachable_app", "server", "status"],
                                env={"BRIDGE_HOME": str(tmp_path)})  # fmt: skip
    assert result.exit_code == 0
    assert result.output == f"not running (socket {settings.bridge_home.resolve() / 'valkey.sock'})\n"


def test_python_dash_m_runs_the_same_command() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "--version"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"jobs (celery-jobs-bridge) {__version__}"
