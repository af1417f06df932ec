"""A fault-injecting OpenAI-compatible server on loopback, for the fault suites (tests/test_faults_*.py).

`mode` decides every generation reply: "ok" (a refusal-free text), "empty" (""), "null" (content/text null),
"missing" (no content/text field), "echo" (the request's Authorization header in the text),
"hang" (no reply until `release` is set), "500". Judge calls (a rubric prompt: "#score") get
`judge_mode`: "ok" (`#score: 5`), "500", "echo" (the Authorization header, then a score).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import send_json_bytes


class FaultServer:
    def __init__(self, models: tuple[str, ...] = ("tiny", "judge")) -> None:
        self.models = list(models)
        self.mode = "ok"
        self.judge_mode = "ok"
        self.release = threading.Event()
        self.hang_after: int | None = None  # with mode "ok": answer this many generation requests, then hang
        self.seen: list[dict] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self.send(200, {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "me"}
                                                          for m in fake.models]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                auth = self.headers.get("Authorization", "")
                with fake.lock:
                    fake.seen.append({"path": self.path, "auth": auth, "body": body})
                judging = "#score" in json.dumps(body)
                mode = fake.judge_mode if judging else fake.mode
                with fake.lock:
                    if not judging and fake.hang_after is not None:
                        mode = "ok" if fake.hang_after > 0 else "hang"
                        fake.hang_after -= 1
                if mode == "hang":
                    fake.release.wait(300)
                    mode = "ok"
                if mode == "500":
                    return self.send(500, {"error": {"message": "server exploded"}})
                text = {"ok": "#score: 5" if judging else "Step one: gather the materials.", "null": None, "empty": "",
                        "echo": f"you sent {auth}" + ("\n#score: 1" if judging else "")}.get(mode)
                chat = self.path.endswith("/chat/completions")
                field = {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
                if mode == "missing":
                    field = {"message": {"role": "assistant"}} if chat else {}
                choices = [{"index": i, "finish_reason": "stop", **field} for i in range(body.get("n", 1))]
                self.send(200, {"id": "x", "object": "chat.completion" if chat else "text_completion", "created": 0,
                                "model": body.get("model"), "choices": choices,
                                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})

            def send(self, status: int, payload: dict) -> None:
                send_json_bytes(self, status, json.dumps(payload).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def url(self, credentials: str = "") -> str:
        return f"http://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}/v1"

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def shutdown(self) -> None:
        self.release.set()
        self.server.shutdown()

    def server_close(self) -> None:
        self.server.server_close()
