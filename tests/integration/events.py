"""Deterministic Lambda DynamoDB stream events for tests and benchmarks.

The records have exactly the shape Lambda delivers (eventID, eventName, eventVersion,
eventSource, awsRegion, eventSourceARN, dynamodb{ApproximateCreationDateTime, Keys, NewImage,
OldImage, SequenceNumber, SizeBytes, StreamViewType}) over a table with a composite key
(customer: S, order: N). Every fourth item uses every DynamoDB type; the others are small, so
that 10,000 records make the ~6 MB event Lambda can send.
"""
import base64
import json
import random

TABLE = "Orders"
KEYS_SETTING = "Orders=customer,order"


def arn(table=TABLE, label="2025-01-01T00:00:00.000"):
    return "arn:aws:dynamodb:us-east-1:123456789012:table/%s/stream/%s" % (table, label)


def seq_number(n):
    """A 21-digit sequence number, as DynamoDB issues them."""
    return "%021d" % (100000000000000000000 + n)


def item(rng, customer, order, pad=0, rich=True):
    """An item; a rich one holds every DynamoDB type, a plain one four attributes."""
    plain = {
        "customer": {"S": customer},
        "order": {"N": str(order)},
        "status": {"S": rng.choice(["new", "paid", "shipped", "returned"])},
        "total": {"N": "%d.%02d" % (rng.randrange(1, 10000), rng.randrange(100))},
    }
    if not rich:
        return plain | ({"comment": {"S": "x" * pad}} if pad else {})
    return plain | {
        "qty": {"N": str(rng.randrange(1, 50))},
        "gift": {"BOOL": rng.random() < 0.5},
        "note": {"NULL": True},
        "tags": {"SS": sorted(rng.sample(["red", "blue", "green", "xl", "sale", "new"], 3))},
        "sizes": {"NS": [str(x) for x in rng.sample(range(30, 50), 3)]},
        "blob": {"B": base64.b64encode(rng.randbytes(12)).decode()},
        "address": {"M": {"city": {"S": rng.choice(["Lyon", "Oslo", "Lima"])},
                          "geo": {"L": [{"N": "45.76"}, {"N": "4.83"}]}}},
    } | ({"comment": {"S": "x" * pad}} if pad else {})


def record(rng, n, customer, order, name="INSERT", table=TABLE, pad=0, created=1735689600,
           view="NEW_IMAGE"):
    keys = {"customer": {"S": customer}, "order": {"N": str(order)}}
    ddb = {"ApproximateCreationDateTime": created + n // 100, "Keys": keys,
           "SequenceNumber": seq_number(n), "StreamViewType": view}
    if name in ("INSERT", "MODIFY"):
        ddb["NewImage"] = item(rng, customer, order, pad, rich=n % 4 == 0)
    if view == "NEW_AND_OLD_IMAGES" and name in ("MODIFY", "REMOVE"):
        ddb["OldImage"] = item(rng, customer, order)
    ddb["SizeBytes"] = len(json.dumps(ddb))
    return {"eventID": "%032x" % rng.getrandbits(128), "eventName": name, "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "eventSourceARN": arn(table),
            "dynamodb": ddb}


def event(count, first=0, seed=1, customers=50, pad=0, view="NEW_IMAGE"):
    """An event of count records with sequence numbers first..first+count-1. Items are spread
    over customers x 10 orders; each key is inserted, then modified, sometimes removed."""
    rng = random.Random(seed)
    seen = set()
    records = []
    for i in range(count):
        n = first + i
        customer = "cust-%d" % rng.randrange(customers)
        order = rng.randrange(10)
        key = (customer, order)
        if key not in seen:
            name = "INSERT"
            seen.add(key)
        elif rng.random() < 0.1:
            name = "REMOVE"
            seen.discard(key)
        else:
            name = "MODIFY"
        records.append(record(rng, n, customer, order, name, pad=pad, view=view))
    return {"Records": records}


def dumps(ev):
    """The event as Lambda sends it: compact JSON."""
    return json.dumps(ev, separators=(",", ":"))
