"""Flask + Flask-SocketIO on gevent (gevent-websocket): every ``msg`` event goes to everyone.

    python -m benchmarks.peers.flask_socketio_peer --port 8768

Monkey-patched by gevent before anything else is imported, served by ``socketio.run``.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
from typing import Any  # noqa: E402

from flask import Flask  # noqa: E402
from flask_socketio import SocketIO  # noqa: E402

app = Flask(__name__)
socketio = SocketIO(app, async_mode="gevent", logger=False, engineio_logger=False)


@socketio.on("msg")
def message(data: Any) -> None:
    socketio.emit("msg", data)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8768)
    args = parser.parse_args()
    socketio.run(app, host=args.host, port=args.port, log_output=False)
