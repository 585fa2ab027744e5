"""Makes the credentials a schemathesis run uses, against a fresh local stack.

Prints shell `export` lines: a registered tenant admin's access token (its channel the
sandbox, a customer who has just written, so that there is a conversation and sends to
that customer are accepted), an API key of that tenant, a partner platform's key and id
(with one user) and the operator's access token.
"""

import json
import os
import secrets
import sys
import urllib.request

BASE = sys.argv[1]
SANDBOX = sys.argv[2]


def call(method, path, body=None, token=None, base=BASE):
    request = urllib.request.Request(base + path, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(request, data, timeout=30) as response:
        text = response.read()
        return json.loads(text) if text else None


tag = secrets.token_hex(4)
registered = call("POST", "/api/auth/register", {
    "tenantName": f"Fuzzed {tag}",
    "email": f"admin-{tag}@fuzz.example",
    "password": "a long fuzzing password",
    "name": "Fuzz Admin",
})
admin, tenant = registered["accessToken"], registered["tenant"]["id"]
call("PUT", "/api/whatsapp/channel", {"provider": "sandbox"}, admin)
call("POST", "/_sandbox/inbound", {"tenantId": tenant, "from": "+15551234567", "text": "Hello"},
     base=SANDBOX)
api_key = call("POST", "/api/api-keys", {"name": "fuzzing"}, admin)["key"]
operator = call("POST", "/api/auth/login", {
    "email": os.environ["OPERATOR_EMAIL"], "password": os.environ["OPERATOR_PASSWORD"],
})["accessToken"]
made = call("POST", "/api/admin/platforms", {"name": f"Fuzz platform {tag}"}, operator)
platform = made["apiKey"]
call("POST", "/api/b2b/users", {"userId": f"fuzz-{tag}", "platformUserId": "p-1"}, platform)

for name, value in [("ST_USER_TOKEN", admin), ("ST_API_KEY", api_key), ("ST_TENANT_ID", tenant),
                    ("ST_PLATFORM_KEY", platform), ("ST_PLATFORM_ID", made["platformId"]),
                    ("ST_OPERATOR_TOKEN", operator)]:
    print(f"export {name}={value}")
