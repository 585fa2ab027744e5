"""Makes the credentials a schemathesis run uses, against a fresh local stack.

Prints shell `export` lines: a registered tenant admin's access token (its channel the
sandbox, a customer who has just written, so that there is a conversation and sends to
that customer are accepted), an API key of that tenant, a partner platform's key and id
(with one user) and the operator's access token; and the ids of resources the run's
requests address (another platform, a delivery of a webhook subscription, the
conversation and its message), so that they reach real ones.
"""

import json
import os
import secrets
import sys
import time
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

user = f"fuzz-{tag}"
# The operators' routes address another platform: rotating a key twice ends the first
# key, which the platform routes use.
other = call("POST", "/api/admin/platforms", {"name": f"Rotated platform {tag}"}, operator)

receiver = f"{SANDBOX}/_sandbox/receiver/fuzz"
subscription = call("POST", "/api/webhooks", {"url": receiver, "events": ["*"]}, admin)["id"]
delivery = call("POST", f"/api/webhooks/{subscription}/test", {}, admin)["deliveryId"]
# The customer's message is processed by the stack's queue poller: wait for its conversation.
conversation = None
for _ in range(100):
    items = call("GET", "/api/conversations", None, admin)["items"]
    if items:
        conversation = items[0]["id"]
        break
    time.sleep(0.1)
if conversation is None:
    sys.exit("the customer's message never became a conversation")
message = call("GET", f"/api/conversations/{conversation}/messages", None, admin)["items"][0]["id"]

for name, value in [("ST_USER_TOKEN", admin), ("ST_API_KEY", api_key), ("ST_TENANT_ID", tenant),
                    ("ST_PLATFORM_KEY", platform), ("ST_PLATFORM_ID", made["platformId"]),
                    ("ST_OPERATOR_TOKEN", operator), ("ST_B2B_USER", user),
                    ("ST_OTHER_PLATFORM_ID", other["platformId"]),
                    ("ST_SUBSCRIPTION_ID", subscription),
                    ("ST_DELIVERY_ID", delivery), ("ST_CONVERSATION_ID", conversation),
                    ("ST_MESSAGE_ID", message)]:
    print(f"export {name}={value}")
