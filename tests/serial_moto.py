"""moto's server answering one request at a time: ``python -m tests.serial_moto PORT``.

DynamoDB applies a conditional write to an item atomically; moto's own server
handles requests in threads and checks a condition and writes in separate steps,
so two racing conditional writes can both pass there. Served one at a time, moto
keeps DynamoDB's guarantee, and the tests of racing processes test the bridge,
not the emulator.
"""

from __future__ import annotations

import sys

from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
