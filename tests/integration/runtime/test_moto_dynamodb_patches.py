"""The local runtime's DynamoDB patches (server._patch_dynamodb) change how fast moto answers,
never what it answers: the fast AttributeValue serializer and parser give exactly what moto's
own give, item sizes are the same, and Query on one partition returns the same items, order
and pages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from streamsense_local.server import MotoServer

# Every AttributeValue kind, nested, with the edge cases moto's serializer treats specially
# (None map entries dropped, a None list element kept, binary from bytes and from str).
_SERIALIZE = r"""
import json, sys
from moto.core.serialize import XFormedAttributePicker, get_serializer_class
from moto.core.utils import get_service_model
if sys.argv[1] == "patched":
    from streamsense_local.server import apply_patches
    apply_patches()
    from moto.core.parse import BaseJSONParser
    from moto.core.serialize import BaseJSONSerializer
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    assert BaseJSONSerializer._serialize_type_structure.__name__ == "serialize_structure"
    assert Item.size.__name__ == "item_size"
    from moto.dynamodb.models.table import Table
    assert Table.query.__name__ == "partition_query"
    assert BaseJSONParser._parse_structure.__name__ == "parse_structure_fast"
    assert DynamoType.size.__name__ == "dynamo_type_size"
    assert DynamoType.__init__.__name__ == "dynamo_type_init"
item = {
    "pk": {"S": "seg#rnd#US|wifi|tv"}, "sk": {"S": "day#2026-01-01#shard-0"},
    "n_int": {"N": "42"}, "n_float": {"N": "0.125"}, "blob": {"B": b"\x00\x01sketch\xff"},
    "blob_str": {"B": "text-as-binary"}, "flag": {"BOOL": False}, "nothing": {"NULL": True},
    "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": [b"x", b"\xfe"]},
    "empty_s": {"S": ""}, "empty_l": {"L": []}, "empty_m": {"M": {}},
    "nested": {"M": {"rows": {"L": [{"M": {"title": {"S": "t1"}, "score": {"N": "0.5"},
                                       "why": {"L": [{"S": "because"}, {"NULL": True}]}}},
                                    {"L": [{"B": b"\x10"}, {"BOOL": True}]}, None]},
                     "dropped": None, "deep": {"M": {"x": {"M": {"y": {"N": "-3"}}}}}}},
}
model = get_service_model("dynamodb")
out = {}
for op, result in [
    ("Scan", {"Items": [item, {"pk": {"S": "p2"}, "sk": {"S": "s"}}], "Count": 2, "ScannedCount": 2,
              "LastEvaluatedKey": {"pk": {"S": "p2"}, "sk": {"S": "s"}}}),
    ("GetItem", {"Item": item}),
    ("BatchGetItem", {"Responses": {"t": [item]}, "UnprocessedKeys": {}}),
    ("Query", {"Items": [], "Count": 0, "ScannedCount": 0}),
]:
    ser = get_serializer_class("dynamodb", "json")(
        operation_model=model.operation_model(op), pretty_print=False, value_picker=XFormedAttributePicker()
    )
    out[op] = json.loads(ser.serialize(result)["body"])
# requests: what moto's parser hands the backend, and the item sizes it computes from that
import base64
from moto.core.parse import JSONParser
from moto.dynamodb.models.dynamo_type import DynamoType, Item
wire = json.loads(out["GetItem"] and json.dumps({"TableName": "t", "Item": out["GetItem"]["Item"]}))
wire["Item"]["with_null_entry"] = {"M": {"a": None, "b": {"S": "x"}}}
wire["Item"]["sparse_list"] = {"L": [None, {"N": "1"}]}
parsed = JSONParser(model.operation_model("PutItem")).parse({"body": json.dumps(wire).encode(), "headers": {}, "method": "POST", "values": {}, "url_path": "/", "url_params": {}})
def plain(v):
    if isinstance(v, bytes):
        return {"bytes": base64.b64encode(v).decode()}
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v
out["PutItem.parsed"] = plain(parsed)
attrs = {k: v for k, v in parsed["Item"].items() if k not in ("with_null_entry", "sparse_list")}
rows = attrs["nested"]["M"]["rows"]
rows["L"] = [x for x in rows["L"] if x is not None]  # a stored item has no None elements
item = Item(DynamoType(attrs["pk"]), DynamoType(attrs["sk"]), attrs)
out["sizes"] = {"item": item.size(), **{k: v.size() for k, v in item.attrs.items()}}
print(json.dumps(out, sort_keys=True))
"""


# The same calls against moto as shipped and against the patched moto (in-process, mock_aws):
# pages of 1 MB (items of very different sizes), Limit pages, filters, projections, parallel
# scan segments, queries forwards and backwards, reads; every answer is printed and compared.
_SCENARIO = r"""
import json, random, sys
import boto3
from moto import mock_aws
if sys.argv[1] == "patched":
    from streamsense_local.server import apply_patches
    apply_patches()
rng = random.Random(7)
def value(depth):
    kind = rng.choice(["S", "N", "B", "M", "L", "BOOL", "SS", "NS", "BS", "NULL"] if depth < 3 else ["S", "N", "B"])
    if kind == "SS":
        return {"SS": sorted({f"s{rng.randint(0, 99)}" for _ in range(rng.randint(1, 4))})}
    if kind == "NS":
        return {"NS": sorted({str(rng.randint(-99, 99)) for _ in range(rng.randint(1, 4))})}
    if kind == "BS":
        return {"BS": sorted({bytes([rng.randrange(256), rng.randrange(256)]) for _ in range(rng.randint(1, 4))})}
    if kind == "NULL":
        return {"NULL": True}
    if kind == "S":
        return {"S": "x" * rng.randint(0, 300)}
    if kind == "N":
        return {"N": str(rng.choice([rng.randint(-10**6, 10**6), rng.random()]))}
    if kind == "B":
        return {"B": bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))}
    if kind == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    if kind == "M":
        return {"M": {f"k{i}": value(depth + 1) for i in range(rng.randint(0, 6))}}
    return {"L": [value(depth + 1) for _ in range(rng.randint(0, 6))]}
with mock_aws():
    c = boto3.client("dynamodb", region_name="us-east-1")
    c.create_table(
        TableName="t", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
    )
    for i in range(240):
        item = {"pk": {"S": f"p{i % 7}"}, "sk": {"S": f"s{i:04d}"}, "n": {"N": str(i)},
                "body": value(0), "pad": {"S": "y" * rng.choice([10, 2000, 40000])}}
        c.put_item(TableName="t", Item=item)
    out = {}
    def pages(op, **kw):
        got = []
        while True:
            r = getattr(c, op)(TableName="t", **kw)
            r.pop("ResponseMetadata", None)
            got.append(r)
            if "LastEvaluatedKey" not in r:
                return got
            kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]
    out["scan"] = pages("scan")
    out["scan_limit"] = pages("scan", Limit=17)
    out["scan_filter_projection"] = pages("scan", FilterExpression="n > :v", ProjectionExpression="pk, sk, body",
                                          ExpressionAttributeValues={":v": {"N": "100"}})
    out["scan_segment"] = pages("scan", Segment=1, TotalSegments=3)
    out["query"] = pages("query", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p3"}})
    out["query_back"] = pages("query", KeyConditionExpression="pk = :p AND begins_with(sk, :s)", Limit=5,
                              ScanIndexForward=False, ExpressionAttributeValues={":p": {"S": "p5"}, ":s": {"S": "s01"}})
    out["query_filter_projection"] = pages(
        "query", KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b", FilterExpression="n > :v",
        ProjectionExpression="sk, n, body", Limit=9,
        ExpressionAttributeValues={":p": {"S": "p4"}, ":a": {"S": "s0050"}, ":b": {"S": "s0200"}, ":v": {"N": "80"}})
    out["query_legacy_filter"] = pages(
        "query", KeyConditions={"pk": {"AttributeValueList": [{"S": "p6"}], "ComparisonOperator": "EQ"}},
        QueryFilter={"n": {"AttributeValueList": [{"N": "100"}], "ComparisonOperator": "GT"}})
    out["get"] = c.get_item(TableName="t", Key={"pk": {"S": "p1"}, "sk": {"S": "s0001"}})["Item"]
    # in-place changes (UpdateItem, transactions) after the items were read once: reads see them
    key = {"pk": {"S": "p2"}, "sk": {"S": "s0002"}}
    c.update_item(TableName="t", Key=key, UpdateExpression="SET body = :b, extra = :e REMOVE #pad",
                  ExpressionAttributeNames={"#pad": "pad"}, ExpressionAttributeValues={":b": {"M": {"nested": {"L": [{"S": "new"}, {"B": b"\x01"}]}}}, ":e": {"N": "7"}})
    c.update_item(TableName="t", Key=key, UpdateExpression="SET body.nested[0] = :s, n = n + :one",
                  ExpressionAttributeValues={":s": {"S": "changed"}, ":one": {"N": "1"}})
    c.transact_write_items(TransactItems=[{"Update": {"TableName": "t", "Key": {"pk": {"S": "p3"}, "sk": {"S": "s0003"}},
                                                      "UpdateExpression": "SET #pad = :p", "ExpressionAttributeNames": {"#pad": "pad"}, "ExpressionAttributeValues": {":p": {"S": "q" * 50000}}}}])
    # pages of a scan while the table changes between them (a put after the cursor, a delete
    # before it, a new item that sorts first)
    first = c.scan(TableName="t", Limit=50)
    c.put_item(TableName="t", Item={"pk": {"S": "p9"}, "sk": {"S": "s9999"}, "n": {"N": "1"}})
    c.put_item(TableName="t", Item={"pk": {"S": "a0"}, "sk": {"S": "s0000"}, "n": {"N": "2"}})
    c.delete_item(TableName="t", Key={"pk": first["Items"][3]["pk"], "sk": first["Items"][3]["sk"]})
    rest = pages("scan", Limit=60, ExclusiveStartKey=first["LastEvaluatedKey"])
    first.pop("ResponseMetadata", None)
    out["scan_while_changing"] = [first, *rest]
    # a table with a hash key only
    c.create_table(TableName="h", BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                   AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}])
    for i in range(40):
        c.put_item(TableName="h", Item={"id": {"N": str((i * 37) % 101 - 50)}, "v": value(1)})
    kw = {"TableName": "h", "Limit": 7}
    out["hash_only_pages"] = []
    while True:
        r = c.scan(**kw)
        r.pop("ResponseMetadata", None)
        out["hash_only_pages"].append(r)
        if "LastEvaluatedKey" not in r:
            break
        kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]
    out["after_update_get"] = c.get_item(TableName="t", Key=key)["Item"]
    out["after_update_scan"] = pages("scan")
    out["after_update_query"] = pages("query", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p3"}})
    out["batch_get"] = sorted(c.batch_get_item(RequestItems={"t": {"Keys": [
        {"pk": {"S": f"p{i % 7}"}, "sk": {"S": f"s{i:04d}"}} for i in range(0, 240, 9)]}})["Responses"]["t"],
        key=lambda i: i["sk"]["S"])
    assert len(out["scan"]) > 2  # several 1 MB pages
    out["size_limit"] = {}
    for pad in (404_980, 404_990):  # the item is pad + 17 bytes: just under and just over moto's limit
        try:
            c.put_item(TableName="t", Item={"pk": {"S": "big"}, "sk": {"S": str(pad)}, "pad": {"S": "z" * pad}})
            out["size_limit"][pad] = "stored"
        except c.exceptions.ClientError as exc:
            out["size_limit"][pad] = [exc.response["Error"]["Code"], exc.response["Error"]["Message"]]
def plain(v):
    if isinstance(v, bytes):
        return {"bytes": v.hex()}
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v
print(json.dumps(plain(out), sort_keys=True))
"""


def _run(script: str, mode: str) -> dict[str, Any]:
    # moto's projections rebuild string sets through Python sets: fix the hash seed so both
    # runs list their members in the same order.
    done = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONHASHSEED": "0"})
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_patched_moto_answers_every_call_exactly_as_moto() -> None:
    moto, patched = _run(_SCENARIO, "moto"), _run(_SCENARIO, "patched")
    assert patched == moto
    assert sum(p["Count"] for p in patched["scan"]) == 240
    assert [len(p["Items"]) for p in patched["scan_limit"]][:3] == [17, 17, 17]
    assert all(set(i) == {"pk", "sk", "body"} for p in patched["scan_filter_projection"] for i in p["Items"])
    assert [i["sk"]["S"] for i in patched["query_back"][0]["Items"]] == ["s0194", "s0187", "s0180", "s0173", "s0166"]
    assert patched["after_update_get"]["body"] == {"M": {"nested": {"L": [{"S": "changed"}, {"B": {"bytes": "01"}}]}}}
    assert patched["after_update_get"]["n"] == {"N": "3"} and "pad" not in patched["after_update_get"]
    assert [p["Count"] for p in patched["after_update_scan"]] != [p["Count"] for p in patched["scan"]]  # pages moved
    assert sum(p["Count"] for p in patched["scan_while_changing"]) == 241  # the first page, then 190 + 1 put after the cursor
    assert sum(p["Count"] for p in patched["hash_only_pages"]) == 40 and len(patched["hash_only_pages"]) == 6
    assert [i["sk"]["S"] for p in patched["query_filter_projection"] for i in p["Items"]][:3] == ["s0081", "s0088", "s0095"]
    assert all(int(i["n"]["N"]) > 100 for p in patched["query_legacy_filter"] for i in p["Items"])
    assert patched["size_limit"]["404980"] == "stored"
    assert patched["size_limit"]["404990"][0] == "ValidationException"


def _serialized(mode: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _SERIALIZE, mode], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_fast_attribute_values_serialize_exactly_as_moto() -> None:
    moto, patched = _serialized("moto"), _serialized("patched")
    assert patched == moto
    item = patched["GetItem"]["Item"]
    assert item["blob"] == {"B": "AAFza2V0Y2j/"}
    assert item["blob_str"] == {"B": "dGV4dC1hcy1iaW5hcnk="}
    assert item["nested"]["M"]["rows"]["L"][2] is None
    assert "dropped" not in item["nested"]["M"]
    assert patched["Scan"]["LastEvaluatedKey"] == {"pk": {"S": "p2"}, "sk": {"S": "s"}}
    assert patched["PutItem.parsed"]["Item"]["blob"] == {"B": {"bytes": "AAFza2V0Y2j/"}}
    assert patched["PutItem.parsed"]["Item"]["with_null_entry"] == {"M": {"a": None, "b": {"S": "x"}}}
    assert patched["sizes"]["n_float"] == 5
    assert patched["sizes"]["ns"] == 4
    assert patched["sizes"]["item"] == sum(v for k, v in patched["sizes"].items() if k != "item") + sum(
        len(k) for k in patched["sizes"] if k != "item"
    )


def _client(server: MotoServer) -> Any:
    return boto3.client(
        "dynamodb", endpoint_url=server.url, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )


def _create_table(client: Any, name: str) -> None:
    """A pk/sk string-keyed on-demand table (the product's tables' key shape)."""
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture(scope="module")
def ddb() -> Iterator[Any]:
    server = MotoServer("process")
    try:
        client = _client(server)
        _create_table(client, "t")
        items = [
            {"PutRequest": {"Item": {"pk": {"S": f"p{p}"}, "sk": {"S": f"day#{d:02d}"}, "v": {"N": str(p * 100 + d)}}}}
            for p in range(5) for d in (7, 3, 11, 1, 5, 9)
        ]
        for i in range(0, len(items), 25):
            client.batch_write_item(RequestItems={"t": items[i : i + 25]})
        yield client
    finally:
        server.stop()


def _pages(client: Any, **kwargs: Any) -> list[list[str]]:
    pages = []
    while True:
        resp = client.query(TableName="t", **kwargs)
        pages.append([i["sk"]["S"] for i in resp["Items"]])
        if "LastEvaluatedKey" not in resp:
            return pages
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def test_query_lists_one_partition_in_order_with_paging(ddb: Any) -> None:
    values = {":pk": {"S": "p3"}}
    assert _pages(ddb, KeyConditionExpression="pk = :pk", ExpressionAttributeValues=values) == [
        ["day#01", "day#03", "day#05", "day#07", "day#09", "day#11"]
    ]
    assert _pages(ddb, KeyConditionExpression="pk = :pk", ExpressionAttributeValues=values, Limit=4, ScanIndexForward=False) == [
        ["day#11", "day#09", "day#07", "day#05"], ["day#03", "day#01"]
    ]
    resp = ddb.query(
        TableName="t", KeyConditionExpression="pk = :pk AND begins_with(sk, :d)",
        ExpressionAttributeValues={**values, ":d": {"S": "day#0"}},
    )
    assert [(i["sk"]["S"], i["v"]["N"]) for i in resp["Items"]] == [
        ("day#01", "301"), ("day#03", "303"), ("day#05", "305"), ("day#07", "307"), ("day#09", "309")
    ]
    assert ddb.query(TableName="t", KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "none"}})["Items"] == []
    # a scan still sees every partition
    assert ddb.scan(TableName="t")["Count"] == 30


def test_connections_stay_open_between_requests() -> None:
    """One TCP connection carries request after request (werkzeug's server closed each one),
    a chunked request still gets its answer and then the connection closes."""
    import http.client

    server = MotoServer("process")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
        }
        create = {"TableName": "k", "BillingMode": "PAY_PER_REQUEST", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                  "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}
        answers = []
        for target, body in [("CreateTable", create), ("PutItem", {"TableName": "k", "Item": {"pk": {"S": "a"}}}),
                             ("ListTables", {}), ("GetItem", {"TableName": "k", "Key": {"pk": {"S": "a"}}})]:
            conn.request("POST", "/", body=json.dumps(body), headers={**headers, "X-Amz-Target": f"DynamoDB_20120810.{target}"})
            resp = conn.getresponse()
            answers.append((resp.status, resp.getheader("Connection"), json.loads(resp.read())))
        sock = conn.sock
        assert [a[0] for a in answers] == [200, 200, 200, 200]
        assert all(a[1] is None for a in answers)  # no "Connection: close"
        assert answers[2][2] == {"TableNames": ["k"]} and answers[3][2] == {"Item": {"pk": {"S": "a"}}}
        assert conn.sock is sock is not None  # still the first connection
        # a chunked request body: answered, then the connection is closed
        conn.putrequest("POST", "/")
        for k, v in {**headers, "X-Amz-Target": "DynamoDB_20120810.ListTables", "Transfer-Encoding": "chunked"}.items():
            conn.putheader(k, v)
        conn.endheaders()
        conn.send(b"2\r\n{}\r\n0\r\n\r\n")
        resp = conn.getresponse()
        assert (resp.status, resp.getheader("Connection"), json.loads(resp.read())) == (200, "close", {"TableNames": ["k"]})
        conn.close()
    finally:
        server.stop()


def test_bulk_load_stores_what_batch_write_would() -> None:
    """The restore path of `query` (server.LOAD_PATH) puts wire-JSON items through moto's own
    put_item: a Scan then answers exactly as for the same items written by BatchWriteItem."""
    from streamsense_local.stack import RawDynamoDB

    server = MotoServer("process")
    try:
        client = _client(server)
        for name in ("loaded", "written"):
            _create_table(client, name)
        items = [
            {"pk": {"S": f"p{i % 7}"}, "sk": {"S": f"s{i:05d}"}, "n": {"N": str(i)}, "b": {"B": "AAE="},
             "m": {"M": {"l": {"L": [{"S": "x"}, {"N": "1.5"}, {"NULL": True}]}}}}
            for i in range(6_000)  # more than one load request (5,000 a request)
        ]
        raw = RawDynamoDB(server.url, "us-east-1", "test")
        raw.put_all("loaded", items)
        # boto3 takes binary as bytes (the wire JSON, as saved, has it base64-encoded)
        as_boto = [{**it, "b": {"B": b"\x00\x01"}} for it in items]
        for i in range(0, len(as_boto), 25):
            client.batch_write_item(RequestItems={"written": [{"PutRequest": {"Item": it}} for it in as_boto[i : i + 25]]})
        loaded, written = raw.scan("loaded"), raw.scan("written")
        assert len(loaded) == 6_000 and loaded == written
        with pytest.raises(RuntimeError, match="no table"):
            raw.put_all("missing", items[:1])
    finally:
        server.stop()
