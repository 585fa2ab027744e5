"""Webhook ingest throughput through a running local stack: signed webhooks posted by
CONCURRENCY threads. `make bench` compares it with the emulator's own rate for the same
two calls (local/examples/emulator_rate.rs), measured in the same run.

usage: ingest.py BASE_URL FIXTURE TOTAL CONCURRENCY
"""

import concurrent.futures as cf
import hashlib
import hmac
import json
import statistics
import sys
import time
import urllib.request
import uuid



def call(url, body=None, token=None, method="POST", headers=None):
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})})
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


def run(total, concurrency, task):
    latencies = []

    def timed(i):
        started = time.perf_counter()
        task(i)
        return (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    with cf.ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(timed, range(total)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return total / elapsed, statistics.median(latencies), latencies[int(0.95 * len(latencies)) - 1]


def main():
    base, fixture, total, concurrency = sys.argv[1:5]
    total, concurrency = int(total), int(concurrency)
    template = open(fixture).read()
    secret = "bench-app-secret-0123456789"

    email = f"ingest-{uuid.uuid4().hex[:8]}@example.com"
    _, body = call(f"{base}/api/auth/register", json.dumps({"tenantName": "Bench", "email": email, "password": "correct horse battery staple", "name": "B"}))
    registered = json.loads(body)
    tenant, token = registered["tenant"]["id"], registered["accessToken"]
    channel = {"provider": "cloud", "phoneNumberId": str(500000000000000 + int(time.time()) % 100000), "wabaId": "1",
               "accessToken": "bench-token", "appSecret": secret, "verifyToken": "bench"}
    call(f"{base}/api/whatsapp/channel", json.dumps(channel), token, method="PUT")

    def webhook(i):
        payload = template.replace("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", f"wamid.bench.{uuid.uuid4().hex}")
        signature = "sha256=" + hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        status, _ = call(f"{base}/api/whatsapp/webhook/{tenant}", payload, headers={"x-hub-signature-256": signature})
        assert status == 200, status

    webhook(-1)  # warm the secret cache
    ingest_rate, ingest_p50, ingest_p95 = run(total, concurrency, webhook)

    print(f"ingest through the local stack: {total} webhooks, {concurrency} concurrent: {ingest_rate:.0f}/s, median {ingest_p50:.1f} ms, p95 {ingest_p95:.1f} ms")


if __name__ == "__main__":
    main()
