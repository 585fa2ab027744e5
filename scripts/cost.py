#!/usr/bin/env python3
"""`make cost`: dollars per million inbound and outbound messages, per million partner
webhook deliveries and B2B users, and per connected WhatsApp Web session-month, at the
list prices of infra/prices-us-east-1.json.

Reads what the counting tests recorded (`COST_RECORD`, see tests/support/cost.rs): every
AWS request of each flow with its body and answer, each phase's wall time, and the size of
every item the flows left in the tables. Prices each request:

- DynamoDB: a write is ceil(item size / 1 KB) write units (twice that inside a
  transaction), plus as many again for each index the item is in (ALL projection), twice
  for an update that sets an index key (the old index entry is deleted); an item's size is
  the one it has at the end of the test (its request's, when it is gone). A read is
  ceil(size / 4 KB) read units, half for an eventually consistent one, twice in a
  transaction; a query sums the sizes it returns. A condition check in a transaction is
  priced as a transactional read.
- SQS per request (FIFO queues at their price); KMS per request; API Gateway (HTTP API)
  per API call; Lambda per invocation and per GB-second at the template's memory sizes.
- Lambda durations are the measured wall times of the handlers in the counting tests,
  against the emulator in a debug build: an upper bound (moto on loopback answers slower
  than DynamoDB in-region).
- A Lambda reading SQS costs the event source's ReceiveMessage and DeleteMessageBatch per
  batch; idle long polls are a fixed cost, left out.

- Meta's webhooks (inbound messages, and the status webhooks that follow each outbound
  message) come through the meta-webhook function's URL (template output MetaWebhookUrl),
  not API Gateway; `--meta-through-api-gateway` prices them as if given the API's address.

Usage: scripts/cost.py RECORDS.jsonl [--markdown OUT.md] [--meta-through-api-gateway]
"""

import json
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
META_THROUGH_API_GATEWAY = False
PRICES = json.loads((ROOT / "infra/prices-us-east-1.json").read_text())


# --- the template: each function's memory -------------------------------------------

def memory_sizes():
    text = (ROOT / "infra/template.yaml").read_text()
    default = int(re.search(r"^Globals:.*?MemorySize: (\d+)", text, re.S | re.M).group(1))
    sizes = {}
    for block in re.split(r"\n  (?=\w+:\n    Type: )", text):
        code = re.search(r"CodeUri: \.\./functions/([\w-]+)", block)
        if code:
            memory = re.search(r"\n      MemorySize: (\d+)", block)
            sizes[code.group(1)] = int(memory.group(1)) if memory else default
    return sizes


# --- DynamoDB item sizes -----------------------------------------------------------------

def value_size(value):
    (kind, v), = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return math.ceil(len(v.lstrip("-")) / 2) + 1
    if kind == "B":
        return len(v) * 3 // 4
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS",):
        return sum(len(x.encode()) for x in v)
    if kind == "NS":
        return sum(math.ceil(len(x) / 2) + 1 for x in v)
    if kind == "L":
        return 3 + sum(value_size(e) + 1 for e in v)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(e) + 1 for k, e in v.items())
    return 0


def item_size(item):
    return sum(len(k.encode()) + value_size(v) for k, v in item.items())


def key_of(key):
    return (key.get("pk", {}).get("S"), key.get("sk", {}).get("S"))


class Items:
    """The items the tests left, by table and key."""

    def __init__(self, records):
        self.by_key = {}
        for line in records:
            for item in line.get("items", []):
                self.by_key[(item["table"], item["pk"], item["sk"])] = item

    def find(self, table, key):
        return self.by_key.get((table, *key_of(key)))


INDEX_KEYS = {"gsi1": ("gsi1pk", "gsi1sk"), "gsi2": ("gsi2pk", "gsi2sk")}


def write_units(items, table, key, put_item=None, update_expression=None, transactional=False):
    found = items.find(table, key)
    if put_item is not None:
        size = item_size(put_item)
        indexes = [g for g, (pk, _) in INDEX_KEYS.items() if pk in put_item]
    else:
        size = found["size"] if found else item_size(key)
        indexes = found["indexes"] if found else []
    units = max(1, math.ceil(size / 1024))
    table_units = units * (2 if transactional else 1)
    index_units = 0
    for index in indexes:
        sets_key = update_expression and any(k in update_expression for k in INDEX_KEYS[index])
        index_units += units * (2 if sets_key else 1)
    return table_units + index_units


def read_units(size, consistent, transactional=False):
    units = max(1, math.ceil(size / 4096))
    factor = 2 if transactional else (1 if consistent else 0.5)
    return units * factor


def price_dynamodb(call, items):
    """(write units, read units) of one DynamoDB request."""
    op = call["op"].split(".", 1)[1]
    req, res = call["request"] or {}, call["response"] or {}
    table = req.get("TableName")
    if op == "PutItem":
        return write_units(items, table, req["Item"], put_item=req["Item"]), 0
    if op == "UpdateItem":
        return write_units(items, table, req["Key"], update_expression=req.get("UpdateExpression")), 0
    if op == "DeleteItem":
        return write_units(items, table, req["Key"]), 0
    if op == "GetItem":
        size = item_size(res.get("Item", {}))
        return 0, read_units(size, req.get("ConsistentRead", False))
    if op == "Query" or op == "Scan":
        size = sum(item_size(i) for i in res.get("Items", []))
        return 0, read_units(size, req.get("ConsistentRead", False))
    if op == "BatchGetItem":
        reads = 0
        for t, found in res.get("Responses", {}).items():
            consistent = req["RequestItems"][t].get("ConsistentRead", False)
            reads += sum(read_units(item_size(i), consistent) for i in found)
        return 0, reads
    if op == "BatchWriteItem":
        writes = 0
        for t, requests in req.get("RequestItems", {}).items():
            for r in requests:
                if "PutRequest" in r:
                    item = r["PutRequest"]["Item"]
                    writes += write_units(items, t, item, put_item=item)
                else:
                    writes += write_units(items, t, r["DeleteRequest"]["Key"])
        return writes, 0
    if op == "TransactWriteItems":
        writes = reads = 0
        for entry in req["TransactItems"]:
            (kind, body), = entry.items()
            t = body["TableName"]
            if kind == "Put":
                writes += write_units(items, t, body["Item"], put_item=body["Item"], transactional=True)
            elif kind == "Update":
                writes += write_units(items, t, body["Key"], update_expression=body.get("UpdateExpression"), transactional=True)
            elif kind == "Delete":
                writes += write_units(items, t, body["Key"], transactional=True)
            else:  # ConditionCheck
                found = items.find(t, body["Key"])
                reads += read_units(found["size"] if found else 0, True, transactional=True)
        return writes, reads
    if op == "TransactGetItems":
        return 0, sum(read_units(item_size(r.get("Item", {})), True, True) for r in res.get("Responses", []))
    raise SystemExit(f"no price for DynamoDB {op}")


def price_calls(calls, items):
    """Request units and dollars of a list of calls, by line."""
    p = PRICES
    lines = defaultdict(float)
    counts = defaultdict(float)
    for call in calls:
        service = call["op"].split(".", 1)[0]
        if service == "DynamoDB":
            writes, reads = price_dynamodb(call, items)
            lines["DynamoDB writes"] += writes * p["dynamodb"]["write_request_unit"]
            lines["DynamoDB reads"] += reads * p["dynamodb"]["read_request_unit"]
            counts["WRU"] += writes
            counts["RRU"] += reads
        elif service == "SQS":
            url = (call["request"] or {}).get("QueueUrl", "")
            fifo = url.endswith(".fifo")
            lines["SQS"] += p["sqs"]["fifo_request" if fifo else "standard_request"]
            counts["SQS"] += 1
        elif service == "KMS":
            lines["KMS"] += p["kms"]["request"]
            counts["KMS"] += 1
        else:
            raise SystemExit(f"no price for {call['op']}")
    return lines, counts


# --- flows ----------------------------------------------------------------------------

class Flow:
    def __init__(self, name, per):
        self.name, self.per = name, per
        self.lines = defaultdict(float)
        self.counts = defaultdict(float)

    def add_calls(self, step, scale=1.0):
        lines, counts = price_calls(step["calls"], ITEMS)
        for k, v in lines.items():
            self.lines[k] += v * scale
        for k, v in counts.items():
            self.counts[k] += v * scale

    def api_call(self, scale=1.0):
        self.lines["API Gateway"] += PRICES["apigateway"]["http_api_request"] * scale

    def lambda_run(self, function, step, scale=1.0):
        gb = MEMORY[function] / 1024
        seconds = step["elapsedMs"] / 1000
        self.lines["Lambda requests"] += PRICES["lambda"]["request"] * scale
        self.lines["Lambda duration"] += gb * seconds * PRICES["lambda"]["arm64_gb_second"] * scale
        self.counts["Lambda ms"] += step["elapsedMs"] * scale

    def event_source(self, scale=1.0):
        """The SQS event source: one receive and one delete per batch."""
        self.lines["SQS"] += 2 * PRICES["sqs"]["standard_request"] * scale
        self.counts["SQS"] += 2 * scale

    def total(self):
        return sum(self.lines.values())


# Meta's status webhooks per outbound message: sent, delivered, read.
STATUSES_PER_MESSAGE = 3


def statuses(flow, steps, count):
    """`count` status webhooks: each one ingested as an inbound webhook is (API Gateway, the
    webhook function, its raw item put at the size the processor reads back, one
    SendMessage) and processed as the counting test processed them."""
    step = steps["outbound.status"]
    per = count / step["units"]
    ingest = steps["inbound.ingest.warm"]
    raw_puts = [
        max(1, math.ceil(item_size(c["response"].get("Item", {})) / 1024))
        for c in step["calls"]
        if c["op"] == "DynamoDB.GetItem" and (key_of(c["request"]["Key"])[1] or "").startswith("RAW#")
    ]
    if META_THROUGH_API_GATEWAY:
        flow.api_call(count)
    flow.lambda_run("meta-webhook", ingest, count)
    flow.lines["DynamoDB writes"] += sum(raw_puts) * per * PRICES["dynamodb"]["write_request_unit"]
    flow.counts["WRU"] += sum(raw_puts) * per
    flow.lines["SQS"] += PRICES["sqs"]["standard_request"] * count
    flow.counts["SQS"] += count
    flow.add_calls(step, per)
    flow.lambda_run("webhook-processor", step, per)
    flow.event_source(count)


def flows(steps):
    out = []

    inbound = Flow("inbound message (Cloud API webhook, warm, known contact)", "per million")
    if META_THROUGH_API_GATEWAY:
        inbound.api_call()
    inbound.add_calls(steps["inbound.ingest.warm"])
    inbound.lambda_run("meta-webhook", steps["inbound.ingest.warm"])
    inbound.add_calls(steps["inbound.process.known_contact"])
    inbound.lambda_run("webhook-processor", steps["inbound.process.known_contact"])
    inbound.event_source()
    out.append(inbound)

    for name, step, per in [
        ("outbound message (template, warm, sender batch of one, 3 statuses)", "outbound.send.warm", 1),
        ("outbound message (template, warm, sender batch of ten, 3 statuses)", "outbound.send.batch_of_ten", 10),
    ]:
        outbound = Flow(name, "per million")
        outbound.api_call()
        outbound.add_calls(steps["outbound.accept.next"])
        outbound.lambda_run("messages", steps["outbound.accept.next"])
        outbound.add_calls(steps[step], 1 / per)
        outbound.lambda_run("message-sender", steps[step], 1 / per)
        outbound.event_source(1 / per)
        statuses(outbound, steps, STATUSES_PER_MESSAGE)
        out.append(outbound)

    delivery = Flow("partner webhook delivery (warm, batch of ten)", "per million")
    step = steps["webhooks.deliver.warm"]
    delivery.add_calls(step, 1 / step["units"])
    delivery.lambda_run("webhook-dispatcher", step, 1 / step["units"])
    delivery.event_source(1 / step["units"])
    out.append(delivery)

    users = Flow("B2B user created (bulk, 100 per call)", "per million")
    step = steps["b2b.bulk_create"]
    users.api_call(1 / step["units"])
    users.add_calls(step, 1 / step["units"])
    users.lambda_run("b2b", step, 1 / step["units"])
    out.append(users)
    return out


# --- WhatsApp Web sessions: from the session host's settings -------------------------------

HOSTS = 2                     # template: SessionHostCount default
TASK_VCPU, TASK_GB = 0.5, 1.0  # template: Cpu 512, Memory 1024, ARM64
HEARTBEAT_S = 10              # SESSION_HEARTBEAT_MS: one conditional UpdateItem per connection
CLAIM_S = 1                   # SESSION_CLAIM_MS: one consistent Query per tier per host
POLL_S = 10                   # each connection's FIFO queue long-polled for min(lease / 3, 10 s)
TIERS = {                     # domain::sessions::PoolPolicy: users per connection, connections
    "standard": (10, 100),
    "professional": (3, 100),
    "enterprise": (1, 500),
    "enterprise_b2b": (5, 25),
}
MONTH_S = 30 * 24 * 3600


def sessions():
    """Per connected session-month, each tier's pool full, every host sharing all four."""
    p = PRICES
    rows = []
    total_sessions = sum(u * c for u, c in TIERS.values())
    task_month = (TASK_VCPU * p["fargate"]["arm64_vcpu_hour"] + TASK_GB * p["fargate"]["arm64_gb_hour"]) * MONTH_S / 3600
    # A tier's connection list: about 200 bytes per connection item, read consistently.
    claims = 0.0
    for users, connections in TIERS.values():
        units = max(1, math.ceil(connections * 200 / 4096))
        claims += HOSTS * (MONTH_S / CLAIM_S) * units * p["dynamodb"]["read_request_unit"]
    for tier, (users, connections) in TIERS.items():
        fargate = HOSTS * task_month / total_sessions
        scans = claims / total_sessions
        heartbeats = (MONTH_S / HEARTBEAT_S) * p["dynamodb"]["write_request_unit"] / users
        polls = (MONTH_S / POLL_S) * p["sqs"]["fifo_request"] / users
        rows.append((tier, users, connections, fargate, scans, heartbeats, polls))
    return rows, task_month, total_sessions


# --- report ---------------------------------------------------------------------------

def money(x):
    return f"${x:,.2f}"


def report(all_flows):
    columns = ["API Gateway", "Lambda requests", "Lambda duration", "DynamoDB writes",
               "DynamoDB reads", "SQS", "KMS"]
    entry = "API Gateway" if META_THROUGH_API_GATEWAY else "the meta-webhook function's URL"
    out = [f"Prices: infra/prices-us-east-1.json (checked {PRICES['checked']}), us-east-1 list prices. "
           f"Meta's webhooks through {entry}.", ""]
    out.append("| per million | " + " | ".join(columns) + " | **total** | largest |")
    out.append("|---|" + "---|" * (len(columns) + 2))
    for flow in all_flows:
        cells = [money(flow.lines.get(c, 0) * 1e6) for c in columns]
        largest = max(flow.lines, key=flow.lines.get)
        out.append(f"| {flow.name} | " + " | ".join(cells) + f" | **{money(flow.total() * 1e6)}** | {largest} |")
    out.append("")
    out.append("| per message, units | DynamoDB WRU | DynamoDB RRU | SQS requests | KMS requests | Lambda ms (measured, upper bound) |")
    out.append("|---|---|---|---|---|---|")
    for flow in all_flows:
        c = flow.counts
        out.append(f"| {flow.name} | {c['WRU']:.1f} | {c['RRU']:.1f} | {c['SQS']:.1f} | {c['KMS']:.1f} | {c['Lambda ms']:.0f} |")
    out.append("")
    rows, task_month, total = sessions()
    out.append(f"WhatsApp Web, per connected session-month, every pool full ({total:,} sessions on "
               f"{HOSTS} Fargate tasks of {TASK_VCPU} vCPU / {TASK_GB:g} GB ARM at {money(task_month)} a month each):")
    out.append("")
    out.append("| tier | users per connection | Fargate | connection scans | heartbeats | queue polls | **total** |")
    out.append("|---|---|---|---|---|---|---|")
    for tier, users, connections, fargate, scans, heartbeats, polls in rows:
        total_cost = fargate + scans + heartbeats + polls
        out.append(f"| {tier} | {users} | ${fargate:.4f} | ${scans:.4f} | ${heartbeats:.4f} | ${polls:.4f} | **${total_cost:.4f}** |")
    return "\n".join(out)


def main():
    path = Path(sys.argv[1])
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    global ITEMS, MEMORY, META_THROUGH_API_GATEWAY
    META_THROUGH_API_GATEWAY = "--meta-through-api-gateway" in sys.argv
    ITEMS = Items(records)
    MEMORY = memory_sizes()
    steps = {r["step"]: r for r in records if "step" in r}
    text = report(flows(steps))
    print(text)
    if "--markdown" in sys.argv:
        Path(sys.argv[sys.argv.index("--markdown") + 1]).write_text(text + "\n")


if __name__ == "__main__":
    main()
