"""Cold-start time of a Lambda bootstrap binary: from process start until it asks the
Runtime API for its first event (GET /2018-06-01/runtime/invocation/next), i.e. until the
function is ready. A stand-in Runtime API on loopback records that moment; nothing is
invoked and no AWS service is contacted (SDK clients connect lazily).

usage: init_time.py BINARY RUNS [NAME=VALUE ...]
"""

import http.server
import os
import statistics
import subprocess
import sys
import threading
import time


def function_name(binary: str) -> str:
    """target/lambda/<name>/bootstrap, or target/debug/<name> in smoke runs."""
    if os.path.basename(binary) == "bootstrap":
        return os.path.basename(os.path.dirname(binary))
    return os.path.basename(binary)


def measure(binary: str, extra_env: dict) -> float:
    ready = threading.Event()

    class RuntimeApi(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            if self.path.endswith("/runtime/invocation/next"):
                ready.set()
                time.sleep(5)  # hold the long poll; the process is killed before this ends

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": function_name(binary),
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_GROUP_NAME": "bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        **extra_env,
    }
    started = time.perf_counter()
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if not ready.wait(10):
        process.kill()
        raise SystemExit(f"{binary} never asked for an event: {process.stderr.read().decode()[-500:]}")
    elapsed = time.perf_counter() - started
    process.kill()
    process.wait()
    server.shutdown()
    return elapsed * 1000


def main() -> None:
    binary, runs = sys.argv[1], int(sys.argv[2])
    extra = dict(arg.split("=", 1) for arg in sys.argv[3:])
    samples = sorted(measure(binary, extra) for _ in range(runs))
    p95 = samples[max(0, int(round(0.95 * len(samples))) - 1)]
    print(
        f"{function_name(binary)}: init {runs} runs: "
        f"min {samples[0]:.1f} ms, median {statistics.median(samples):.1f} ms, p95 {p95:.1f} ms"
    )


if __name__ == "__main__":
    main()
