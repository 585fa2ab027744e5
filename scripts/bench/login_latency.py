"""End-to-end login latency through a running local stack: POST /api/auth/login, one
request at a time, after a warm-up. Prints percentiles.

usage: login_latency.py BASE_URL RUNS
"""

import json
import statistics
import sys
import time
import urllib.request
import uuid


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def main() -> None:
    base, runs = sys.argv[1], int(sys.argv[2])
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct horse battery staple"
    status, _ = post(f"{base}/api/auth/register", {"tenantName": "Bench", "email": email, "password": password, "name": "B"})
    assert status == 201, status
    login = {"email": email, "password": password}
    for _ in range(3):
        post(f"{base}/api/auth/login", login)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        status, _ = post(f"{base}/api/auth/login", login)
        samples.append((time.perf_counter() - started) * 1000)
        assert status == 200, status
    samples.sort()
    p95 = samples[max(0, int(round(0.95 * len(samples))) - 1)]
    print(f"login: {runs} sequential requests: median {statistics.median(samples):.1f} ms, p95 {p95:.1f} ms, max {samples[-1]:.1f} ms")


if __name__ == "__main__":
    main()
