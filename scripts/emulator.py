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
"""

import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_DYNAMODB = threading.Lock()
_call_action = DynamoHandler.call_action


def _one_at_a_time(self):
    with _DYNAMODB:
        return _call_action(self)


DynamoHandler.call_action = _one_at_a_time

if __name__ == "__main__":
    main()
