"""The baseline a user would write without Triton: the same model behind a one-request-at-a-time HTTP server.

``python -m mlops.bench.naive_server MODEL_DIR PORT``: standard-library ``HTTPServer`` (no threads, no
batching), ``POST /`` with ``{"question", "top_k"}`` answers ``{"answers": [...]}`` from the exported
retriever in ``MODEL_DIR``, in process, one question per encoder call.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from mlops.search.retriever import Retriever


def main(model_dir: str, port: str) -> None:
    retriever = Retriever.load(Path(model_dir))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802  (http.server's naming) - readiness, for whoever starts it
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answers = retriever.search([body["question"]], top_k=body.get("top_k", 5))[0]
            payload = json.dumps({"answers": answers}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            pass

    class Server(HTTPServer):
        request_queue_size = 128  # waiting clients queue in the kernel instead of being refused

    Server(("127.0.0.1", int(port)), Handler).serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
