"""The AWS emulator: moto's server, with DynamoDB requests made atomic as in AWS.

    .venv/bin/python scripts/emulator.py -H 127.0.0.1 -p 5000

moto's server is threaded, and its DynamoDB backend is not safe under concurrent requests.
TransactWriteItems applies its items one by one (conditions checked as it goes, even after
one failed) and on a failure puts back a copy of each table taken before it began. So while
one transaction runs, another request can read items of a transaction that is about to be
rolled back, and the rollback erases whatever other requests wrote meanwhile. DynamoDB never
shows either: a transaction is all or nothing, and a write is never undone by another one.

Our processors run batches concurrently (as Lambda does), so the tests met this as items
missing attributes and as writes that vanished. Serving one DynamoDB request at a time
restores AWS's guarantees. DynamoDB calls never wait on anything (unlike SQS long polls,
which stay concurrent), so this costs little.

moto's snapshot for that rollback is also slow: a deep copy of the whole table for every
item of the transaction, so a 76-item transaction against a table of a few thousand items
took seconds (a bulk create of 1,000 users: minutes). `transact_write_items` below does
what DynamoDB does instead: every condition is checked against the state before the
transaction, and only when all hold are the writes made (with the touched items kept, to
put back if a write fails after all).
"""

import copy
import threading

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_DYNAMODB = threading.Lock()
_call_action = DynamoHandler.call_action


def _one_at_a_time(self):
    with _DYNAMODB:
        return _call_action(self)


DynamoHandler.call_action = _one_at_a_time


def _key_of(backend, op_type, op):
    if op_type != "Put":
        return op["Key"]
    table = backend.get_table(op["TableName"])
    attrs = op["Item"]
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def _transact_write_items(self, transact_items):
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    ops, seen, errors = [], set(), []
    # Every condition, against the items as they are before the transaction.
    for entry in transact_items:
        if len(entry) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(entry.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        key = _key_of(self, op_type, op)
        unique = (op["TableName"], str(dict(sorted(key.items()))))
        if unique in seen:
            raise MultipleTransactionsException()
        seen.add(unique)
        current = self.get_item(op["TableName"], key)
        condition = op.get("ConditionExpression")
        failed = None
        if condition is not None:
            holds = get_filter_expression(
                condition,
                op.get("ExpressionAttributeNames"),
                op.get("ExpressionAttributeValues"),
            ).expr(current)
            if not holds:
                old = None
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    old = current.to_json()["Attributes"]
                failed = ("ConditionalCheckFailed", "The conditional request failed", old)
        errors.append(failed or (None, None, None))
        ops.append((op_type, op, key, copy.deepcopy(current)))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    # All hold: the writes, and the touched items put back if one of them fails.
    done = []
    try:
        for op_type, op, key, before in ops:
            table = op["TableName"]
            names = op.get("ExpressionAttributeNames")
            values = op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(table, op["Item"])
            elif op_type == "Delete":
                self.delete_item(table, key)
            elif op_type == "Update":
                self.update_item(
                    table,
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            done.append((table, key, before))
    except Exception:
        for table, key, before in reversed(done):
            if before is None:
                self.delete_item(table, key)
            else:
                self.put_item(table, before.to_json()["Attributes"])
        raise


DynamoDBBackend.transact_write_items = _transact_write_items

if __name__ == "__main__":
    main()
