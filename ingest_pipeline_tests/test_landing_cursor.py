"""The landing cursor against real listings of the S3 emulator (moto server over HTTP)."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import boto3
import pytest
from dagster_aws.s3.sensor import get_objects

from ingest_pipeline.domain.landing_cursor import LandingCursor, batched, run_key, take_new


@pytest.fixture
def bucket(s3_endpoint):
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="landing")
    return client


def listing(client, cursor: LandingCursor):
    return get_objects(
        "landing", prefix="logs/", since_last_modified=cursor.list_since, client=client
    )


def tick(client, cursor: LandingCursor, limit: int = 10_000):
    taken, cursor = take_new(listing(client, cursor), cursor, limit)
    # The cursor survives as JSON (Dagster stores sensor cursors as strings).
    return [o["Key"] for o in taken], LandingCursor.from_json(cursor.to_json())


def test_objects_in_the_cursors_second_are_not_skipped_nor_taken_twice(bucket):
    bucket.put_object(Bucket="landing", Key="logs/acme/a.log", Body=b"a")
    first, cursor = tick(bucket, LandingCursor())
    assert first == ["logs/acme/a.log"]
    # Written within the same second as a.log (S3 time has one-second resolution).
    bucket.put_object(Bucket="landing", Key="logs/acme/b.log", Body=b"b")
    head = bucket.head_object(Bucket="landing", Key="logs/acme/b.log")
    same_second = head["LastModified"].replace(microsecond=0) == cursor.last_modified
    second, cursor = tick(bucket, cursor)
    assert second == ["logs/acme/b.log"], f"same second: {same_second}"
    third, cursor = tick(bucket, cursor)
    assert third == []
    # The same key uploaded again with new content is new again (new ETag); same bytes are not.
    bucket.put_object(Bucket="landing", Key="logs/acme/a.log", Body=b"a, edited")
    assert tick(bucket, cursor)[0] == ["logs/acme/a.log"]


def test_same_second_bookkeeping_on_synthetic_listings():
    second = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
    objects = [{"Key": f"logs/t/{n}", "ETag": f'"e{n}"', "LastModified": second} for n in range(3)]
    taken, cursor = take_new(objects[:2], LandingCursor(), limit=10)
    assert [o["Key"] for o in taken] == ["logs/t/0", "logs/t/1"]
    taken, cursor = take_new(objects, cursor, limit=10)  # the third arrives in the same second
    assert [o["Key"] for o in taken] == ["logs/t/2"]
    assert cursor.seen_in_last_second == {run_key(o) for o in objects}


# A backlog of several listing pages (S3 lists 1,000 keys a page) with many objects in each
# second: 2,000 objects taken at most 800 a tick, in batches of at most 100. The test's earlier
# 10,000 at 4,000 and 500 scaled down by five: the same pages, ticks cut inside a second and
# batches (10,000 puts and four listings of them took 1-3 minutes on two loaded cores).
BACKLOG, PER_TICK, PER_BATCH = 2_000, 800, 100


def test_a_backlog_of_waiting_objects_is_taken_in_bounded_ticks_and_batches(bucket):
    def put(n: int) -> None:
        bucket.put_object(Bucket="landing", Key=f"logs/acme/{n:05d}.log", Body=b"x")

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, range(BACKLOG)))
    cursor, taken_all, ticks = LandingCursor(), [], 0
    while True:
        taken, cursor = tick(bucket, cursor, limit=PER_TICK)
        if not taken:
            break
        ticks += 1
        taken_all += taken
        assert len(taken) <= PER_TICK
        batches = list(batched([{"Key": k} for k in taken], PER_BATCH))
        assert all(len(b) <= PER_BATCH for b in batches) and sum(map(len, batches)) == len(taken)
    assert ticks == 3  # 800 + 800 + 400
    assert len(taken_all) == len(set(taken_all)) == BACKLOG
