"""WhatsApp Web sessions at scale through a running local stack, the sandbox and session
hosts started by scripts/bench/sessions.sh:

1. a platform bulk-creates N B2B users and connects each (16 at a time): connect -> QR
   latency is the time of the 202 answer, which carries the QR the host wrote;
2. every QR is scanned; when all N sessions are online, the host's RSS over its baseline
   (read before the first connect) divided by N is the memory per connected session;
3. the host is killed (SIGKILL) and a second one, already running, takes the sessions
   over: failover time is from the kill until every session is online again, on the same
   linked devices (the sandbox's pairing count must not move).

usage: sessions.py BASE_URL SANDBOX_URL OPERATOR_EMAIL OPERATOR_PASSWORD N HOST_PID HOST_BIN HEALTH_PORT
(the second host is HOST_BIN, started with this environment and HEALTH_PORT)
"""

import concurrent.futures
import json
import os
import signal
import subprocess
import statistics
import sys
import time
import urllib.request
import uuid


def call(method: str, url: str, body=None, token=None, timeout=120):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def wait_for(what: str, check, limit: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if check():
            return time.perf_counter() - started
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    base, sandbox, email, password = sys.argv[1:5]
    n, host_pid = int(sys.argv[5]), int(sys.argv[6])
    host_bin, health_port = sys.argv[7], sys.argv[8]
    status, login = call("POST", f"{base}/api/auth/login", {"email": email, "password": password})
    assert status == 200, login
    status, platform = call("POST", f"{base}/api/admin/platforms", {"name": "Sessions bench"}, login["accessToken"])
    assert status == 201, platform
    key = platform["apiKey"]
    prefix = uuid.uuid4().hex[:6]
    users = [f"{prefix}-{i:04}" for i in range(n)]
    for start in range(0, n, 1000):
        rows = [{"userId": u, "platformUserId": u} for u in users[start:start + 1000]]
        status, created = call("POST", f"{base}/api/b2b/users/bulk", {"users": rows}, key)
        assert status == 200 and created["created"] == len(rows), created

    time.sleep(2)
    baseline = rss_kib(host_pid)

    def connect(item):
        index, user = item
        started = time.perf_counter()
        status, body = call("POST", f"{base}/api/b2b/users/{user}/connect", None, key)
        elapsed = time.perf_counter() - started
        assert status == 202 and body.get("qr"), (status, body)
        # Scanned at once, while the QR is fresh.
        phone = f"+1555{index:07}"
        status, scanned = call("POST", f"{sandbox}/_sandbox/web/scan", {"qr": body["qr"], "phoneNumber": phone})
        assert status == 200, scanned
        return elapsed

    def percentiles(latencies):
        latencies = sorted(latencies)
        p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
        return f"p50 {p(0.5):.0f} ms, p95 {p(0.95):.0f} ms, max {latencies[-1] * 1000:.0f} ms"

    # One at a time first (what one user sees on a quiet system), then the rest 16 at a time.
    alone = min(20, n)
    single = [connect(item) for item in enumerate(users[:alone])]
    print(f"connect -> QR, one at a time ({alone} users): {percentiles(single)}")
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        rest = list(pool.map(connect, list(enumerate(users))[alone:]))
    if rest:
        print(f"connect -> QR, 16 at a time ({len(rest)} users): {percentiles(rest)}")

    stats = lambda: call("GET", f"{sandbox}/_sandbox/web/stats")[1]
    took = wait_for("every session online", lambda: stats()["online"] == n, 600)
    print(f"all {n} sessions connected {took:.1f} s after the last scan")
    time.sleep(3)
    after = rss_kib(host_pid)
    per = (after - baseline) / n
    print(f"host RSS: {baseline / 1024:.1f} MiB with no session, {after / 1024:.1f} MiB with {n} connected; {per:.1f} KiB per connected session")

    # The second host starts once the first holds every connection, and takes over when
    # the first dies.
    env = dict(os.environ, HEALTH_PORT=health_port, HOST_ID="bench-host-2")
    second = subprocess.Popen([host_bin], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def healthy() -> bool:
        try:
            return call("GET", f"http://127.0.0.1:{health_port}/health", timeout=2)[0] == 200
        except OSError:
            return False

    wait_for("the second host", healthy, 60)
    before = stats()
    os.kill(host_pid, signal.SIGKILL)
    killed = time.perf_counter()
    # The dead host's connections are gone at the sandbox only once the survivor connects
    # the devices again: every device is connected once more, none paired again.
    target = before["connections"] + n
    first = wait_for("the first session resumed", lambda: stats()["connections"] > before["connections"], 600)
    wait_for("every session resumed", lambda: stats()["connections"] >= target and stats()["online"] == n, 900)
    total = time.perf_counter() - killed
    after_stats = stats()
    assert after_stats["pairings"] == before["pairings"], (before, after_stats)
    print(f"failover after SIGKILL ({n} sessions): first resumed after {first:.1f} s, all after {total:.1f} s; pairings unchanged ({after_stats['pairings']})")
    second.kill()


if __name__ == "__main__":
    main()
