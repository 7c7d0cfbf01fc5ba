"""Lambda's DynamoDB stream event source mapping, as template.yaml configures it, for `make run` and tests.

What AWS does (Lambda Developer Guide: "Using AWS Lambda with Amazon DynamoDB", "Configuring partial
batch response with DynamoDB and Lambda", "Retaining discarded records for a DynamoDB event source"),
and so what this does:
- each shard is read in order, one batch at a time (up to BatchSize records), from StartingPosition;
- a batch is one invocation with `{"Records": [...]}`, each record as the stream gives it plus
  `eventSourceARN`;
- with ReportBatchItemFailures, `{"batchItemFailures": [{"itemIdentifier": <SequenceNumber>}]}` makes
  the lowest failed sequence number the checkpoint: that record and every later one are retried;
- a function error retries the batch; with BisectBatchOnFunctionError a failed batch is split in two
  first (splitting does not count as a retry);
- after MaximumRetryAttempts retries the batch is given up: its description (shard, first and last
  sequence numbers: `DDBStreamBatchInfo`) goes to the on-failure destination, and reading goes on.

The calls it makes to read the stream are the function's own in AWS (the mapping uses its execution
role): tests attribute them to the function, and IAM conformance judges them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from local.template import StreamMappingSpec

log = logging.getLogger("local")


@dataclass(frozen=True)
class Result:
    """What an invocation came back with: ok (the handler returned `response`) or a function error."""

    ok: bool
    response: Any = None


class NoStream(Exception):
    """The table the mapping reads has no stream enabled."""


Invoke = Callable[[dict[str, Any]], Result]
DeadLetter = Callable[[dict[str, Any]], None]


class StreamMapping:
    def __init__(self, spec: StreamMappingSpec, streams: Any, stream_arn: str, invoke: Invoke, dead_letter: DeadLetter):
        self.spec = spec
        self.stream_arn = stream_arn
        self._streams = streams
        self._invoke = invoke
        self._dead_letter = dead_letter
        self._iterators: dict[str, str | None] = {}  # shard -> next iterator (None: shard closed)

    @classmethod
    def for_table(
        cls, spec: StreamMappingSpec, streams: Any, table_name: str, invoke: Invoke, dead_letter: DeadLetter
    ) -> StreamMapping:
        found = streams.list_streams(TableName=table_name)["Streams"]
        if not found:
            raise NoStream(f"{table_name} has no stream (a table created before it had one)")
        return cls(spec, streams, found[0]["StreamArn"], invoke, dead_letter)

    def poll(self) -> int:
        """Read every shard to its end once, delivering what is new; the number of records read."""
        shards = self._streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        read = 0
        for shard in shards:
            records = self._read(shard["ShardId"])
            read += len(records)
            for start in range(0, len(records), self.spec.batch_size):
                self._deliver(shard["ShardId"], records[start : start + self.spec.batch_size])
        return read

    def _read(self, shard_id: str) -> list[dict[str, Any]]:
        if shard_id not in self._iterators:
            position = self.spec.starting_position
            self._iterators[shard_id] = self._streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType=position
            )["ShardIterator"]
        records: list[dict[str, Any]] = []
        while (iterator := self._iterators[shard_id]) is not None:
            page = self._streams.get_records(ShardIterator=iterator, Limit=1000)
            self._iterators[shard_id] = page.get("NextShardIterator")
            if not page["Records"]:
                break
            records.extend(page["Records"])
        return [self._lambda_record(record) for record in records]

    def _lambda_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record as Lambda passes it: the stream's JSON (times in epoch seconds) and its source."""
        dynamodb = dict(record["dynamodb"])
        created = dynamodb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
        return {**record, "dynamodb": dynamodb, "eventSourceARN": self.stream_arn}

    def _deliver(self, shard_id: str, records: list[dict[str, Any]]) -> None:
        retries = 0
        while records:
            result = self._invoke({"Records": records})
            if result.ok:
                failed = self._checkpoint(records, result.response)
                if failed is None:
                    return
                records = records[failed:]
            elif self.spec.bisect_on_error and len(records) > 1:
                half = len(records) // 2
                self._deliver(shard_id, records[:half])
                self._deliver(shard_id, records[half:])
                return
            retries += 1
            if 0 <= self.spec.maximum_retry_attempts < retries:
                self._give_up(shard_id, records, retries)
                return

    def _checkpoint(self, records: list[dict[str, Any]], response: Any) -> int | None:
        """The index of the first record to retry (the lowest failed sequence number), or None."""
        failures = (response or {}).get("batchItemFailures") if self.spec.report_item_failures else None
        if not failures:
            return None
        numbers = [r["dynamodb"]["SequenceNumber"] for r in records]
        failed = [numbers.index(f["itemIdentifier"]) for f in failures if f.get("itemIdentifier") in numbers]
        return min(failed) if failed else 0  # an identifier that names no record: the whole batch failed

    def _give_up(self, shard_id: str, records: list[dict[str, Any]], invocations: int) -> None:
        first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
        self._dead_letter(
            {
                "requestContext": {
                    "condition": "RetryAttemptsExhausted",
                    "approximateInvokeCount": invocations,
                },
                "version": "1.0",
                "timestamp": datetime.now().astimezone().isoformat(),
                "DDBStreamBatchInfo": {
                    "shardId": shard_id,
                    "startSequenceNumber": first["SequenceNumber"],
                    "endSequenceNumber": last["SequenceNumber"],
                    "approximateArrivalOfFirstRecord": first.get("ApproximateCreationDateTime"),
                    "approximateArrivalOfLastRecord": last.get("ApproximateCreationDateTime"),
                    "batchSize": len(records),
                    "streamArn": self.stream_arn,
                },
            }
        )


class Poller:
    """`make run`: every mapping polled in the background (about four times a second)."""

    def __init__(self, mappings: list[StreamMapping], interval: float = 0.25) -> None:
        self._mappings = mappings
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-mappings", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            for mapping in self._mappings:
                try:
                    mapping.poll()
                except Exception:
                    log.exception("reading the %s stream failed; retrying", mapping.spec.table)


def dead_letter_to_console(spec: StreamMappingSpec) -> DeadLetter:
    def send(record: Mapping[str, Any]) -> None:
        info = record["DDBStreamBatchInfo"]
        log.error(
            "%s gave up a batch of %s records after its retries (sequence %s..%s): it would go to %s",
            spec.logical_id,
            info["batchSize"],
            info["startSequenceNumber"],
            info["endSequenceNumber"],
            spec.on_failure,
        )

    return send
