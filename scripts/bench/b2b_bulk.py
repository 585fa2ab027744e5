"""Bulk creation of B2B users end to end through a running local stack: the operator makes
a platform, which creates RUNS batches of 1,000 new users (POST /api/b2b/users/bulk), then
sends the last batch again (all `existing`). Prints each call's time and the median.

The stack must have been started with OPERATOR_EMAIL and OPERATOR_PASSWORD.

usage: b2b_bulk.py BASE_URL OPERATOR_EMAIL OPERATOR_PASSWORD RUNS
"""

import json
import statistics
import sys
import time
import urllib.request
import uuid


def call(url: str, body: dict, token: str | None = None) -> tuple[int, dict]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def main() -> None:
    base, email, password, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    status, login = call(f"{base}/api/auth/login", {"email": email, "password": password})
    assert status == 200, login
    status, platform = call(f"{base}/api/admin/platforms", {"name": "Bench"}, login["accessToken"])
    assert status == 201, platform
    key = platform["apiKey"]
    times, body = [], None
    for run in range(runs):
        prefix = uuid.uuid4().hex[:6]
        body = {"users": [{"userId": f"{prefix}-{n:04}", "platformUserId": f"p{n}"} for n in range(1000)]}
        started = time.perf_counter()
        status, result = call(f"{base}/api/b2b/users/bulk", body, key)
        elapsed = time.perf_counter() - started
        assert status == 200 and result["created"] == 1000, result
        times.append(elapsed)
        print(f"bulk create of 1,000 new users, run {run + 1}: {elapsed:.2f} s")
    started = time.perf_counter()
    status, result = call(f"{base}/api/b2b/users/bulk", body, key)
    repeat = time.perf_counter() - started
    assert status == 200 and result["existing"] == 1000, result
    print(f"bulk create of 1,000 new users: median {statistics.median(times):.2f} s over {runs} runs")
    print(f"the same 1,000 again (all existing): {repeat:.2f} s")


if __name__ == "__main__":
    main()
