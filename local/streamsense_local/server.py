"""moto's server on 127.0.0.1 and a free port, in its own process (default) or in a thread of
this one, with patches that keep AWS's behaviour and make it usable for the runtime:

- moto runs on the runtime's clock (clock.py): ``POST /_streamsense/clock`` sets an offset
  added to moto's ``utcnow``, so Kinesis arrival times, SQS visibility timeouts and S3 event
  times move with drain()'s skipped waits instead of disagreeing with them.

- S3 notifications carry AWS's full record (userIdentity, requestParameters, responseElements,
  bucket ownerIdentity, object versionId on versioned buckets and sequencer); moto's lacks them
  and URL-encodes the ``/`` of keys, which S3 does not.
- Kinesis GetRecords reads from the iterator's position instead of scanning the whole shard,
  and PutRecord finds the last sequence number without copying every key; moto's versions cost
  O(records in the shard) per call, which made a 100k-record replay quadratic. Sequence numbers
  are still moto's consecutive integers, so results are identical. GetRecords writes its JSON
  directly (moto stores the data base64-encoded already; its generic serializer decoded and
  re-encoded every record and was the slowest step of delivery).
- SQS message counts read the clock once per scan instead of twice per message: moto computes
  every queue attribute, counts included, on each SendMessage, so a quarantine queue holding
  thousands of messages made each send milliseconds slower (same comparisons, same results).
- DynamoDB without its costs that grow with the data (see _patch_dynamodb): AttributeValues
  read and written in one recursion instead of a botocore-model walk per member, item sizes
  and response JSON memoized per stored item, Query over its partition only, Scan sorting a
  table once per listing; and every request finds its backend once per host. What moto
  answers is unchanged: tests/integration/runtime/test_moto_dynamodb_patches.py compares
  every answer with moto's own, and in a replay the server's CPU went from 2.9 to ~1 ms
  per event.
- ``STREAMSENSE_PROFILE_DIR`` (with ``STREAMSENSE_PROFILE_EVERY=n``: a sample) writes a cProfile
  of the requests to ``<dir>/moto-<pid>.prof`` when the server exits.

Run directly: ``python -m streamsense_local.server --port 0`` prints nothing but serves; the
runtime passes ``--ready-fd`` to learn the port.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import io
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

_PATCHED = False
_clock_offset_s = 0.0
CLOCK_PATH = "/_streamsense/clock"
#: POST {"table": physical name, "items": [wire JSON items]}: put them straight into moto's
#: table (restoring a saved run for `query`: 67,000 items took ~40 s as BatchWriteItem calls).
LOAD_PATH = "/_streamsense/dynamodb/load"


def set_clock_offset(seconds: float) -> None:
    global _clock_offset_s
    _clock_offset_s = float(seconds)
_seq_lock = threading.Lock()
_last_sequencer = 0


def _sequencer() -> str:
    """S3's per-key ordering token: increasing hex (compared after left padding)."""
    global _last_sequencer
    with _seq_lock:
        _last_sequencer = max(_last_sequencer + 1, time.time_ns() // 1000)
        return f"{_last_sequencer:018X}"


def apply_patches() -> None:
    global _PATCHED
    if _PATCHED:
        return
    import datetime
    import hashlib

    import moto.core.utils as core_utils

    real_utcnow = core_utils.utcnow

    def utcnow() -> datetime.datetime:
        return real_utcnow() + datetime.timedelta(seconds=_clock_offset_s)

    core_utils.utcnow = utcnow  # unix_time() and the iso_8601 helpers call it by global name
    for name, module in list(sys.modules.items()):  # modules that imported it by name already
        if name.startswith("moto.") and getattr(module, "utcnow", None) is real_utcnow:
            module.utcnow = utcnow  # type: ignore[attr-defined]

    from moto.kinesis.models import Shard
    from moto.s3 import notifications

    original_event = notifications._get_s3_event

    def aws_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        moto_record = original_event(event_name, bucket, key, notification_id)["Records"][0]
        obj: dict[str, Any] = {
            "key": quote_plus(key.name, safe="/"),
            "size": key.size,
            "eTag": key.etag.replace('"', ""),
        }
        if bucket.is_versioned and key.version_id and key.version_id != "null":
            obj["versionId"] = key.version_id
        obj["sequencer"] = _sequencer()
        request_id = hashlib.sha1(f"{bucket.name}/{key.name}/{obj['sequencer']}".encode()).hexdigest()[:16].upper()
        return {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": moto_record["awsRegion"],
                    "eventTime": moto_record["eventTime"],
                    "eventName": moto_record["eventName"],
                    "userIdentity": {"principalId": "AWS:AIDASTREAMSENSELOCAL"},
                    "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                    "responseElements": {
                        "x-amz-request-id": request_id,
                        "x-amz-id-2": hashlib.sha256(request_id.encode()).hexdigest(),
                    },
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "configurationId": notification_id,
                        "bucket": {
                            "name": bucket.name,
                            "ownerIdentity": {"principalId": "A3STREAMSENSELOCAL"},
                            "arn": bucket.arn,
                        },
                        "object": obj,
                    },
                }
            ]
        }

    notifications._get_s3_event = aws_s3_event

    def get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
        # moto numbers a shard's records 1, 2, 3, ... (put_record uses max + 1).
        records = self.records
        last = int(last_sequence_id)
        results: list[Any] = []
        if records:
            seq = max(last + 1, next(iter(records)))
            while limit is None or len(results) < limit:
                rec = records.get(seq)
                if rec is None:
                    break
                results.append(rec)
                seq += 1
        if not results:
            return results, last, 0
        newest = records[next(reversed(records))]
        behind = int((newest.created_at - results[-1].created_at) * 1000)
        return results, results[-1].sequence_number, behind

    def get_max_sequence_number(self: Any) -> int:
        return next(reversed(self.records)) if self.records else 0

    def get_min_sequence_number(self: Any) -> int:
        return next(iter(self.records)) if self.records else 0

    import json

    from moto.kinesis.responses import KinesisResponse

    def get_records_response(self: Any) -> str:
        next_iterator, records, behind = self.kinesis_backend.get_records(
            self._get_param("StreamARN"), self._get_param("ShardIterator"), self._get_param("Limit")
        )
        return json.dumps(
            {
                "NextShardIterator": next_iterator,
                "Records": [
                    {
                        "Data": r.data,
                        "PartitionKey": r.partition_key,
                        "SequenceNumber": str(r.sequence_number),
                        "ApproximateArrivalTimestamp": r.created_at,
                    }
                    for r in records
                ],
                "MillisBehindLatest": behind,
            },
            separators=(",", ":"),
        )

    from moto.sqs.models import Queue

    def drop_expired(queue: Any, now: float) -> None:
        # SQS deletes a message once it outlives the queue's retention period. moto instead
        # marks it received and stops the receive there, so one expired message (e.g. the
        # s3:TestEvent sent at provisioning, once the runtime clock has moved on by more than
        # the retention) would block its queue for good.
        keep_ms = int(queue.message_retention_period) * 1000
        expired = [m for m in queue._messages if m.sent_timestamp + keep_ms <= now]
        for m in expired:
            queue._messages.remove(m)
            queue.pending_messages.discard(m)

    def visible_messages(self: Any) -> list[Any]:
        now = core_utils.unix_time_millis()
        drop_expired(self, now)
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    def delayed_count(self: Any) -> int:
        now = core_utils.unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def not_visible_count(self: Any) -> int:
        now = core_utils.unix_time_millis()
        drop_expired(self, now)
        return sum(1 for m in self._messages if not now > m.visible_at)

    _patch_dynamodb()
    Queue.messages = property(visible_messages)  # type: ignore[assignment,method-assign]
    Queue.approximate_number_of_messages_delayed = property(delayed_count)  # type: ignore[assignment,method-assign]
    Queue.approximate_number_of_messages_not_visible = property(not_visible_count)  # type: ignore[assignment,method-assign]
    KinesisResponse.get_records = get_records_response  # type: ignore[method-assign,assignment]
    Shard.get_records = get_records  # type: ignore[method-assign]
    Shard.get_max_sequence_number = get_max_sequence_number  # type: ignore[method-assign]
    Shard.get_min_sequence_number = get_min_sequence_number  # type: ignore[method-assign]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    _PATCHED = True


def _b64(value: str | bytes) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).strip().decode()


def attribute_value_json(value: Any) -> Any:
    """A DynamoDB AttributeValue as moto's shape-driven JSON serializer writes it (same members,
    same conversions: strings and numbers through ``str``, binary base64, ``None`` members and
    map entries dropped, a ``None`` list element kept), in one plain recursion instead of a
    model lookup per member."""
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for kind, v in value.items():
        if v is None:
            continue
        if kind in ("S", "N"):
            out[kind] = v if v in ([], {}) else str(v)
        elif kind == "M":
            out[kind] = {k: attribute_value_json(x) for k, x in v.items() if x is not None}
        elif kind == "L":
            out[kind] = [attribute_value_json(x) for x in v]
        elif kind == "B":
            out[kind] = _b64(v)
        elif kind in ("SS", "NS"):
            out[kind] = [x if x in ([], {}) or x is None else str(x) for x in v]
        elif kind == "BS":
            out[kind] = [_b64(x) for x in v]
        elif kind in ("BOOL", "NULL"):
            out[kind] = v
    return out


def parse_attribute_value(value: Any, blob: Any) -> Any:
    """A request's AttributeValue as moto's shape-driven JSON parser reads it (members in the
    model's order, ``None`` members dropped, binary base64-decoded by ``blob``, every other
    scalar as sent; map entries and list elements that are ``None`` kept)."""
    if value is None:
        return None
    out: dict[str, Any] = {}
    for kind in _AV_MEMBERS:
        v = value.get(kind)
        if v is None:
            continue
        if kind == "M":
            out[kind] = {k: parse_attribute_value(x, blob) for k, x in v.items()}
        elif kind == "L":
            out[kind] = [parse_attribute_value(x, blob) for x in v]
        elif kind == "B":
            out[kind] = blob(v)
        elif kind == "BS":
            out[kind] = [blob(x) for x in v]
        elif kind in ("SS", "NS"):
            out[kind] = list(v)
        else:
            out[kind] = v
    return out


_AV_MEMBERS = ("S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL")


def dynamo_type_size(t: Any) -> int:
    """moto's ``DynamoType.size()`` (the item-size rules behind the 400 KB limit and the 1 MB
    pages), computed without building a copy of every nested map value on the way down."""
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.utilities import bytesize

    kind, value = t.type, t.value
    if kind == "N":
        return len(str(value))
    if kind == "NS":
        return sum(len(str(v)) for v in value)
    if kind in ("SS", "BS"):
        return sum(1 if isinstance(v, bool) else bytesize(v) for v in value)
    if kind == "L":
        return sum(dynamo_type_size(v) for v in value)
    if kind == "M":
        return sum(
            bytesize(k) + dynamo_type_size(v if type(v) is DynamoType else DynamoType(v)) for k, v in value.items()
        )
    if isinstance(value, bool):
        return 1
    return bytesize(value)  # type: ignore[no-any-return]


class WireItem(dict[str, Any]):
    """An item's attributes already in wire JSON (what the serializer would write for them)."""


#: Bumped before and after every operation that can change a stored item in place (UpdateItem,
#: transactions, PartiQL): memoized sizes and wire JSON are valid only for the generation they
#: were computed in. Puts replace the Item object, so they never invalidate anything.
_generation = [0]
_generation_lock = threading.Lock()


def dynamo_type_wire(t: Any) -> Any:
    """A stored DynamoType as moto's response path writes it (dynamo_to_dict, then the
    serializer's AttributeValue rules; see attribute_value_json), in one pass."""
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.utilities import dynamo_to_dict

    if t is None:
        return None
    if not isinstance(t, DynamoType):
        return attribute_value_json(dynamo_to_dict(t))
    kind, v = t.type, t.value
    if v is None:
        return {}
    if kind == "B":
        return {"B": _b64(v if isinstance(v, bytes) else base64.b64decode(v))}
    if kind == "BS":
        return {"BS": [_b64(x if isinstance(x, bytes) else base64.b64decode(x)) for x in v]}
    if kind == "M":
        return {"M": {k: dynamo_type_wire(x) for k, x in v.items() if x is not None}}
    if kind == "L":
        return {"L": [dynamo_type_wire(x) for x in v]}
    if kind in ("S", "N"):
        return {kind: v if v in ([], {}) else str(v)}
    if kind in ("SS", "NS"):
        return {kind: [x if x in ([], {}) or x is None else str(x) for x in v]}
    if kind in ("BOOL", "NULL"):
        return {kind: v}
    return {}


_partition = threading.local()
#: moto's item size limit (LimitedSizeDict: between the official 400 KB and the measured ~410 KB).
ITEM_SIZE_LIMIT = 405_000


def _patch_dynamodb() -> None:
    """Costs of moto's DynamoDB that grow with the data, not with the request:

    - Responses go through moto's generic serializer, which walks the botocore model for every
      member of every AttributeValue (a 2 KB item is thousands of model lookups): it was two
      thirds of the server's time in a replay. AttributeValues (and maps of them: items, keys)
      are written by ``attribute_value_json`` instead; every other member still goes through
      moto's serializer. Requests' AttributeValues are read by ``parse_attribute_value``.
    - Item sizes (checked on every attribute a put sets, and twice per item a page returns)
      copied every nested map value: ``dynamo_type_size`` gives the same sizes without, and a
      new item is sized once, not once per attribute.
    - A table Query lists *every* item of the table, sorted, and then keeps the partition's:
      Query on one partition now lists that partition (same items, same order, same paging).
      Listing a table sorts by the keys' values directly (same order), and Scan no longer
      deep-copies every item it returns (see table_scan).
    """
    from moto.core.parse import BaseJSONParser
    from moto.core.serialize import BaseJSONSerializer
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, Table
    from moto.dynamodb.models.utilities import bytesize

    parse_structure = BaseJSONParser._parse_structure

    def parse_structure_fast(self: Any, shape: Any, value: Any) -> Any:
        if shape.name == "AttributeValue" and isinstance(value, dict):
            return parse_attribute_value(value, self._blob_parser)
        return parse_structure(self, shape, value)

    parse_map = BaseJSONParser._parse_map

    def parse_map_fast(self: Any, shape: Any, value: Any) -> Any:
        if shape.value.name == "AttributeValue" and isinstance(value, dict):
            parsed = self.MAP_TYPE()
            for k, v in value.items():
                parsed[k] = parse_attribute_value(v, self._blob_parser)
            return parsed
        return parse_map(self, shape, value)

    BaseJSONParser._parse_structure = parse_structure_fast  # type: ignore[method-assign]
    BaseJSONParser._parse_map = parse_map_fast  # type: ignore[method-assign]
    DynamoType.size = dynamo_type_size  # type: ignore[assignment,method-assign]

    def dynamo_type_init(self: Any, type_as_dict: Any) -> None:
        # moto's constructor, without building two lists to read a one-key dict
        if type(type_as_dict) is DynamoType:
            self.type, self.value = type_as_dict.type, type_as_dict.value
        elif type(type_as_dict) is dict and type_as_dict:
            for self.type, self.value in type_as_dict.items():
                break
        else:  # whatever moto does with anything else (its errors included)
            self.type = list(type_as_dict)[0]  # noqa: RUF015  (moto's exact errors)
            self.value = list(type_as_dict.values())[0]  # noqa: RUF015
        if self.type == "L":
            self.value = [DynamoType(v) for v in self.value]
        elif self.type == "M":
            self.value = {k: DynamoType(v) for k, v in self.value.items()}

    DynamoType.__init__ = dynamo_type_init  # type: ignore[method-assign]

    def item_init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        # moto checks the 400 KB limit on every attribute it sets, re-sizing the whole item each
        # time; sizes only grow as attributes are added, so one check of the finished item
        # raises exactly when moto's would.
        self.hash_key = hash_key
        self.range_key = range_key
        self.attrs = LimitedSizeDict()
        for key, value in attrs.items():
            dict.__setitem__(self.attrs, key, DynamoType(value))
        generation = _generation[0]
        size = sum(bytesize(str(k)) + v.size() for k, v in self.attrs.items())
        if size > ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        self._ss_size = (generation, size)

    def item_size(self: Any) -> int:
        # A stored item is sized on every page and every read that returns it; it only changes
        # through the operations that bump the generation.
        memo = self.__dict__.get("_ss_size")
        if memo is not None and memo[0] == _generation[0]:
            return memo[1]  # type: ignore[no-any-return]
        generation = _generation[0]
        size = sum(bytesize(key) + value.size() for key, value in self.attrs.items())
        self._ss_size = (generation, size)
        return size

    Item.__init__ = item_init  # type: ignore[method-assign]
    Item.size = item_size  # type: ignore[method-assign]

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    backend_for_host = DomainDispatcherApplication.get_backend_for_host

    def backend_for_host_cached(self: Any, host: str | None) -> Any:
        # moto lists its package folder and tries every service's URL pattern on every request
        # (under a lock every request takes); the answer depends on the host alone.
        cache = self.__dict__.setdefault("_ss_backend_for_host", {})
        if host not in cache:
            cache[host] = backend_for_host(self, host)
        return cache[host]

    DomainDispatcherApplication.get_backend_for_host = backend_for_host_cached  # type: ignore[method-assign]

    from moto.dynamodb import responses as dynamodb_responses
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models import utilities as dynamodb_utilities

    to_dict = dynamodb_utilities.dynamo_to_dict

    def dynamo_to_dict(obj: Any) -> Any:
        # An item's attributes (what every read returns) become their wire JSON once, then are
        # served from the memo until the item is replaced or changed in place.
        if type(obj) is LimitedSizeDict:
            memo = obj.__dict__.get("_ss_wire")
            if memo is not None and memo[0] == _generation[0]:
                return memo[1]
            generation = _generation[0]
            wire = WireItem({k: dynamo_type_wire(v) for k, v in obj.items() if v is not None})
            obj._ss_wire = (generation, wire)  # type: ignore[attr-defined]
            return wire
        return to_dict(obj)

    dynamodb_utilities.dynamo_to_dict = dynamo_to_dict
    dynamodb_responses.dynamo_to_dict = dynamo_to_dict  # type: ignore[attr-defined]

    def bump() -> None:
        with _generation_lock:
            _generation[0] += 1

    def bumping(method: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bump()
            try:
                return method(*args, **kwargs)
            finally:
                bump()

        return wrapper

    for name in ("update_item", "transact_write_items", "execute_statement", "execute_transaction", "batch_execute_statement"):
        setattr(DynamoDBBackend, name, bumping(getattr(DynamoDBBackend, name)))

    structure = BaseJSONSerializer._serialize_type_structure
    mapping = BaseJSONSerializer._serialize_type_map

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.name == "AttributeValue" and isinstance(value, dict):
            serialized[self.get_serialized_name(shape, key)] = attribute_value_json(value)
            return
        structure(self, serialized, value, shape, key)

    def serialize_map(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if isinstance(value, WireItem):
            self._default_serialize(serialized, value, shape, key)
            return
        if shape.value.name == "AttributeValue" and isinstance(value, dict):
            self._default_serialize(
                serialized,
                {k: attribute_value_json(v) for k, v in value.items() if v is not None},
                shape,
                key,
            )
            return
        mapping(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_structure = serialize_structure  # type: ignore[method-assign]
    BaseJSONSerializer._serialize_type_map = serialize_map  # type: ignore[method-assign]

    query = Table.query

    def listing(self: Any) -> tuple[list[Any], list[tuple[Any, ...]]]:
        """The table's items in all_items' order, (hash key, range key) compared by the cast
        values DynamoType compares, and those keys. Kept until the table's items change (a put
        or delete bumps the table's version; in-place updates the generation), so the pages of
        one Scan sort the table once, not once per page."""
        stamp = (id(self.items), self.__dict__.get("_ss_version", 0), _generation[0])
        memo = self.__dict__.get("_ss_listing")
        if memo is not None and memo[0] == stamp:
            return memo[1], memo[2]
        items: list[Any] = []
        for partition in list(self.items.values()):
            if self.range_key_attr:
                items.extend(partition.values())
            else:
                items.append(partition)
        keys: list[tuple[Any, ...]] = (
            [(x.hash_key.cast_value, x.range_key.cast_value) for x in items]
            if self.range_key_attr
            else [(x.hash_key.cast_value,) for x in items]
        )
        keyed = sorted(zip(keys, items, strict=True), key=lambda kx: kx[0])  # keys are unique
        result = [x for _, x in keyed], [k for k, _ in keyed]
        self._ss_listing = (stamp, *result)
        return result

    def sorted_items(self: Any) -> list[Any]:
        return list(listing(self)[0])  # a copy: callers may reorder what they get

    def versioned(method: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            finally:
                self._ss_version = self.__dict__.get("_ss_version", 0) + 1

        return wrapper

    Table.put_item = versioned(Table.put_item)  # type: ignore[method-assign]
    Table.delete_item = versioned(Table.delete_item)  # type: ignore[method-assign]

    def start_after(self: Any, start: dict[str, Any] | None) -> int | None:
        """Where the page after ``start`` begins in listing() order: the first item moto's
        _item_comes_before_dct would not skip (None when the key is not one this table's key
        types describe; the caller then skips item by item as moto does)."""
        if start is None:
            return 0
        attrs = [self.hash_key_attr] + ([self.range_key_attr] if self.range_key_attr else [])
        types = [self.hash_key_type] + ([self.range_key_type] if self.range_key_attr else [])
        key = []
        for attr, kind in zip(attrs, types, strict=True):
            value = start.get(attr)
            if not isinstance(value, dict) or list(value) != [kind]:
                return None
            key.append(DynamoType(value).cast_value)
        return bisect.bisect_right(listing(self)[1], tuple(key))

    def partition_items(self: Any) -> list[Any]:
        wanted = getattr(_partition, "key", None)
        if wanted is None or wanted[0] is not self:
            return sorted_items(self)
        found = self.items.get(wanted[1])
        if found is None:
            return []
        if not self.range_key_attr:
            return [found]
        return sorted(found.values(), key=lambda x: x.range_key)

    def partition_query(
        self: Any,
        hash_key: Any,
        range_comparison: Any,
        range_objs: Any,
        limit: Any,
        exclusive_start_key: Any,
        scan_index_forward: Any,
        projection_expressions: Any,
        index_name: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        call = (self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
                projection_expressions, index_name, *args)
        if index_name is not None or hash_key is None:
            return query(*call, **kwargs)
        known = {"consistent_read", "filter_expression", "hash_key_conditions", "range_key_conditions"}
        if len(args) <= 2 and set(kwargs) <= known:  # no legacy QueryFilter (filter_kwargs)
            filter_expression = args[1] if len(args) > 1 else kwargs.get("filter_expression")
            return partition_query_fast(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key,
                                        scan_index_forward, projection_expressions, filter_expression)
        _partition.key = (self, hash_key)
        try:
            return query(*call, **kwargs)
        finally:
            _partition.key = None

    def partition_query_fast(
        self: Any,
        hash_key: Any,
        range_comparison: str | None,
        range_objs: list[Any],
        limit: int,
        exclusive_start_key: dict[str, Any] | None,
        scan_index_forward: bool,
        projection_expressions: list[list[str]] | None,
        filter_expression: Any,
    ) -> tuple[list[Any], int, dict[str, Any] | None]:
        # moto's Query on a table (no index, no QueryFilter), step for step: the partition in
        # range-key order, pages by ExclusiveStartKey, Limit and 1 MB, the key condition on the
        # range key, then the filter and the projection. What it skips: listing the whole table
        # (see partition_items) and a deep copy of every item returned (see table_scan).
        found = self.items.get(hash_key)
        if found is None:
            candidates: list[Any] = []
        elif self.range_key_attr:
            candidates = sorted(found.values(), key=lambda x: x.range_key.cast_value, reverse=not scan_index_forward)
        else:
            candidates = [found]
        hash_attrs, range_attrs = [self.hash_key_attr], [self.range_key_attr]
        results: list[Any] = []
        result_size = scanned_count = 0
        last_evaluated_key = None
        previous_page = exclusive_start_key is not None
        for item in candidates:
            if previous_page:
                if self._item_comes_before_dct(item, exclusive_start_key, hash_attrs, range_attrs, scan_index_forward):
                    continue
                previous_page = False
            size = item.size()
            if len(results) == limit or result_size + size > RESULT_SIZE_LIMIT:
                last_evaluated_key = self._get_last_evaluated_key(results[-1], None)
                break
            if not range_comparison or item.range_key.compare(range_comparison, range_objs):
                results.append(item)
                result_size += size
                scanned_count += 1
        if filter_expression is not None:
            results = [item for item in results if filter_expression.expr(item)]
        if projection_expressions:
            results = [r.project(projection_expressions) for r in results]
        return results, scanned_count, last_evaluated_key

    scan = Table.scan

    def table_scan(
        self: Any,
        filters: dict[str, Any],
        limit: int,
        exclusive_start_key: dict[str, Any],
        filter_expression: Any = None,
        index_name: str | None = None,
        consistent_read: bool = False,
        projection_expression: list[list[str]] | None = None,
        segments: Any = (None, None),
    ) -> tuple[list[Any], int, dict[str, Any] | None]:
        # moto's own loop (same order, pages, filters and counts) with each item's size computed
        # once instead of twice, and no deep copy of every item returned: the response is built
        # from fresh dicts (DynamoResult) and a projection builds new items, so nothing the
        # caller gets can reach the stored item. A page starts at its ExclusiveStartKey by
        # bisection instead of comparing every item before it.
        if index_name:
            return scan(self, filters, limit, exclusive_start_key, filter_expression, index_name,  # type: ignore[no-any-return]
                        consistent_read, projection_expression, segments)
        results: list[Any] = []
        result_size = scanned_count = 0
        last_evaluated_key = None
        hash_attrs, range_attrs = [self.hash_key_attr], [self.range_key_attr]
        items = listing(self)[0]
        first = start_after(self, exclusive_start_key)
        previous_page = first is None
        for item in items if first is None else items[first:]:
            if not item.is_within_segment(segments):
                continue
            if previous_page:
                if self._item_comes_before_dct(item, exclusive_start_key, hash_attrs, range_attrs, True):
                    continue
                previous_page = False
            size = item.size()
            if len(results) == limit or result_size + size > RESULT_SIZE_LIMIT:
                last_evaluated_key = self._get_last_evaluated_key(results[-1], index_name)
                break
            passes = True
            for attribute_name, (operator, values) in filters.items():
                attribute = item.attrs.get(attribute_name)
                if attribute:
                    if not attribute.compare(operator, values):
                        passes = False
                        break
                elif operator != "NULL":
                    passes = False
                    break
            if passes:
                results.append(item)
                result_size += size
            scanned_count += 1
        if filter_expression is not None:
            results = [item for item in results if filter_expression.expr(item)]
        if projection_expression:
            results = [r.project(projection_expression) for r in results]
        return results, scanned_count, last_evaluated_key

    Table.all_items = partition_items  # type: ignore[method-assign]
    Table.query = partition_query  # type: ignore[method-assign]
    Table.scan = table_scan  # type: ignore[method-assign]


#: Connections kept open after their response (KeepAliveRequestHandler). After each response
#: werkzeug reads whatever else the client has sent, for 10 ms, to discard an unread body: on
#: a kept connection that is the next request, so its selector reports these as idle.
_KEEP_ALIVE: set[Any] = set()


class _Selectors:
    """werkzeug.serving's ``selectors``: the post-response drain skips kept-alive connections
    (their body was read in full before the application ran); others drain as before."""

    EVENT_READ = selectors.EVENT_READ

    class DefaultSelector:
        def __init__(self) -> None:
            self._inner = selectors.DefaultSelector()
            self._idle = False

        def register(self, fileobj: Any, events: int) -> Any:
            self._idle = fileobj in _KEEP_ALIVE
            return self._inner.register(fileobj, events)

        def select(self, timeout: float | None = None) -> list[Any]:
            return [] if self._idle else self._inner.select(timeout)

        def close(self) -> None:
            self._inner.close()


def bulk_put(table_name: str, items: list[dict[str, Any]]) -> int:
    """Put wire-JSON items into a table of any account and region through moto's backend (the
    same put_item a PutItem request reaches, without the request around it)."""
    from moto.dynamodb.models import dynamodb_backends

    for regions in list(dynamodb_backends.values()):
        for backend in list(regions.values()):
            if table_name in backend.tables:
                for item in items:
                    backend.put_item(table_name, item)
                return len(items)
    raise KeyError(table_name)


def _make_server(host: str, port: int) -> Any:
    import werkzeug.serving
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    werkzeug.serving.selectors = _Selectors  # type: ignore[assignment]
    apply_patches()
    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == CLOCK_PATH and environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            set_clock_offset(float(environ["wsgi.input"].read(length).decode()))
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        if environ.get("PATH_INFO") == LOAD_PATH and environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length))
            try:
                n = bulk_put(body["table"], body["items"])
            except KeyError as exc:
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [f"no table {exc}".encode()]
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [str(n).encode()]
        return moto_app(environ, start_response)

    class KeepAliveRequestHandler(MotoRequestHandler):
        """werkzeug's development server closes every connection after its response, since
        http.server cannot skip a request body the application left unread: every AWS call
        then paid a TCP connect and a new server thread (botocore's connection pool never got
        a connection back). Here the body is read before the application runs, so the next
        request line is where it should be, and the connection stays open unless the request
        was chunked or the response is (those still close)."""

        # The status line, headers and body leave in separate writes: with Nagle's algorithm a
        # kept connection waits for the client's delayed ACK (~40 ms) before the body.
        disable_nagle_algorithm = True

        def make_environ(self) -> dict[str, Any]:
            environ: dict[str, Any] = super().make_environ()
            self._keep_alive = "wsgi.input_terminated" not in environ  # not a chunked request
            if self._keep_alive:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                environ["wsgi.input"] = io.BytesIO(self.rfile.read(length) if length > 0 else b"")
                _KEEP_ALIVE.add(self.connection)
            return environ

        def send_header(self, keyword: str, value: str) -> None:
            if keyword.lower() == "transfer-encoding":
                self._keep_alive = False  # a chunked response: its end is the connection's
                _KEEP_ALIVE.discard(self.connection)
            if keyword.lower() == "connection" and value.lower() == "close" and getattr(self, "_keep_alive", False):
                return
            super().send_header(keyword, value)

        def finish(self) -> None:
            _KEEP_ALIVE.discard(self.connection)
            super().finish()

    return make_server(host, port, app, threaded=True, request_handler=KeepAliveRequestHandler)


def die_with_parent(parent_pid: int) -> None:
    """Exit when the runtime process is gone, so no orphan is left behind. (Not
    PR_SET_PDEATHSIG: that fires when the spawning *thread* ends, and the runtime spawns
    containers from worker threads.)"""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(0)
            time.sleep(1.0)

    if os.getppid() != parent_pid:
        os._exit(0)
    # Ctrl-C reaches the whole process group: the runtime alone decides when its children stop
    # (it still needs the server to finish and report), so they ignore SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class MotoServer:
    """A running moto server; ``mode`` is "process" (a child process) or "thread"."""

    def __init__(self, mode: str = "process", host: str = "127.0.0.1", log_path: Path | None = None) -> None:
        if mode not in ("process", "thread"):
            raise ValueError("mode must be 'process' or 'thread'")
        self.mode = mode
        self.host = host
        self._proc: subprocess.Popen[bytes] | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        started = time.perf_counter()
        if mode == "thread":
            # moto's backends are process-global: a second stack in this process starts clean.
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()
            set_clock_offset(0.0)
            self._server = _make_server(host, 0)
            self.port = int(self._server.server_address[1])
            self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
            self._thread.start()
        else:
            read_fd, write_fd = os.pipe()
            log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "streamsense_local.server", "--host", host, "--port", "0",
                     "--ready-fd", str(write_fd), "--parent", str(os.getpid())],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    pass_fds=(write_fd,),
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            finally:
                os.close(write_fd)
                if log is not subprocess.DEVNULL:
                    log.close()  # type: ignore[union-attr]
            with os.fdopen(read_fd, "rb") as ready:
                line = ready.readline()
            if not line:
                code = self._proc.wait(timeout=10)
                raise RuntimeError(f"moto server exited with {code} before it was ready (log: {log_path})")
            self.port = int(line.decode().strip())
        self.start_s = time.perf_counter() - started

    def cpu_s(self) -> float | None:
        """CPU seconds the server process has used (None in thread mode: it shares ours)."""
        if self._proc is None:
            return None
        from streamsense_local.processes import process_cpu_s

        return process_cpu_s(self._proc.pid)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def set_clock_offset(self, seconds: float) -> None:
        """Move moto's clock to the runtime's (wall clock + ``seconds``)."""
        if self.mode == "thread":
            set_clock_offset(seconds)
            return
        import urllib.request

        request = urllib.request.Request(self.url + CLOCK_PATH, data=repr(seconds).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


def _profile_requests(server: Any, dest: Path, every: int = 1) -> None:
    """cProfile every ``every``-th request and write the stats to ``dest`` when the server exits.
    Profiled requests run one at a time (a profiler follows one thread); with ``every`` > 1 the
    others run as usual, so a long replay keeps its pace and the profile is a sample of it."""
    import atexit
    import cProfile
    import itertools

    profiler = cProfile.Profile()
    lock = threading.Lock()
    inner = server.app
    counter = itertools.count()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if next(counter) % every:
            return inner(environ, start_response)
        with lock:
            profiler.enable()
            try:
                return list(inner(environ, start_response))
            finally:
                profiler.disable()

    server.app = app
    atexit.register(lambda: profiler.dump_stats(str(dest)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto server with streamsense's patches")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-fd", type=int, default=None, help="write the bound port to this fd")
    parser.add_argument("--parent", type=int, default=None, help="exit when this process exits")
    args = parser.parse_args(argv)
    if args.parent:
        die_with_parent(args.parent)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = _make_server(args.host, args.port)
    profile_dir = os.environ.get("STREAMSENSE_PROFILE_DIR")
    if profile_dir:
        every = int(os.environ.get("STREAMSENSE_PROFILE_EVERY", "1"))
        _profile_requests(server, Path(profile_dir) / f"moto-{os.getpid()}.prof", every)
    port = server.server_address[1]
    if args.ready_fd is not None:
        os.write(args.ready_fd, f"{port}\n".encode())
        os.close(args.ready_fd)
    else:
        print(f"moto listening on http://{args.host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
