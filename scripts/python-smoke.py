"""Smoke test of the original MictlanX Python client (`mictlanx` 0.1.0a5) against our router.

Run it with the launcher that makes the client importable, against a running cluster:

    MICTLANX_URI='mictlanx://router-0@127.0.0.1:PORT/?protocol=http&api_version=4&http2=0' \
        ../shared/pyref/python scripts/python-smoke.py

(`scripts/python-smoke.sh` starts a local cluster and does exactly that.) It puts, gets,
reads metadata, lists and deletes through the client's `AsyncClient`, prints one line per
check (`ok: ...`, `FAIL: ...`, `skip: ...`) and ends with `N passed, M failed`; the exit code
is 1 when any check failed. Every call is bounded by a timeout, so it cannot hang. The client
prints some responses and progress bars of its own; ours are the lines above.
"""

import asyncio
import hashlib
import os
import sys
import time
import traceback
import uuid

import httpx
from mictlanx import AsyncClient
from mictlanx.asyncx.utils import AsyncClientUtils
from mictlanx.utils.segmentation import Chunk
from option import Some

CALL_TIMEOUT = float(os.environ.get("MICTLANX_SMOKE_CALL_TIMEOUT", "60"))

PASSED = 0
FAILED = 0


def say(line):
    print(line, flush=True)


def ok(name):
    global PASSED
    PASSED += 1
    say(f"ok: {name}")


def fail(name, detail):
    global FAILED
    FAILED += 1
    say(f"FAIL: {name}: {detail}")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def unwrap(res, what):
    """The value of an `option.Result`, or an AssertionError naming `what` and the error."""
    if res.is_err:
        err = res.unwrap_err()
        raise AssertionError(f"{what} returned Err: {type(err).__name__}: {err!r}")
    return res.unwrap()


def expect(cond, detail):
    if not cond:
        raise AssertionError(detail)


async def check(name, coro_fn, timeout=CALL_TIMEOUT):
    """Runs one check (an async function that raises on failure); never raises itself."""
    try:
        extra = await asyncio.wait_for(coro_fn(), timeout=timeout)
        ok(f"{name}{f' ({extra})' if extra else ''}")
        return True
    except asyncio.TimeoutError:
        fail(name, f"timed out after {timeout:.0f} s")
    except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
        fail(name, f"{type(e).__name__}: {e}")
        traceback.print_exc(file=sys.stderr)
    return False


async def main():
    uri = os.environ.get("MICTLANX_URI", "")
    if not uri:
        say("FAIL: MICTLANX_URI is not set")
        say("0 passed, 1 failed")
        return 1
    say(f"router URI: {uri}")

    client = AsyncClient(uri=uri, client_id="python-smoke", debug=False, max_workers=2)
    router = client.rlb.get_router()
    run = uuid.uuid4().hex[:10]
    bucket = f"pysmoke-{run}"
    bucket2 = f"pysmoke2-{run}"

    # --- how many peers answer (our router's /health; not a Python client call) ---
    peers_up = 0

    async def health():
        nonlocal peers_up
        async with httpx.AsyncClient(timeout=10, trust_env=False) as h:
            r = await h.get(f"{router.base_url()}/health")
            r.raise_for_status()
            peers_up = int(r.json().get("peers_up", 0))
        expect(peers_up >= 1, f"peers_up = {peers_up}")
        return f"peers_up={peers_up}"

    await check("router /health", health)

    # Values: a small one, and a multi-chunk one whose size is an exact multiple of the chunk
    # size (0.1.0a5 folds a short last piece into the previous chunk yet still counts it in
    # `num_chunks`, so its own get would then miss a chunk; that is the client, not the router).
    small = b"hello from the python client " + run.encode()
    small2 = b"replicated twice " + run.encode()
    chunk_size = "512KiB"
    big = os.urandom(6 * 512 * 1024)  # 3 MiB in 6 chunks
    big_chunks = 6

    async def get_bytes(bkt, key):
        res = await client.get(bucket_id=bkt, key=key, max_retries=3, delay=0.2, max_delay=1)
        return unwrap(res, f"get({bkt}/{key})").data.tobytes()

    async def get_fails(bkt, key):
        res = await client.get(bucket_id=bkt, key=key, max_retries=1, delay=0.1, max_delay=0.2)
        if res.is_ok:
            raise AssertionError(f"get({bkt}/{key}) still returned {len(res.unwrap().data)} bytes")
        err = res.unwrap_err()
        # The raw endpoint behind it: a missing chunk's metadata must be a 404.
        raw = await router.get_metadata(bucket_id=bkt, key=f"{key}_0", timeout=30)
        expect(raw.is_err, f"GET metadata of {key}_0 still answers {raw}")
        raw_err = raw.unwrap_err()
        status = getattr(getattr(raw_err, "response", None), "status_code", None)
        expect(status == 404, f"GET metadata of {key}_0: {type(raw_err).__name__}: {raw_err}")
        return f"{type(err).__name__}, metadata HTTP {status}"

    # --- put / get ---
    async def put_small():
        done = unwrap(await client.put(bucket_id=bucket, key="small", value=small, rf=1), "put")
        expect(done is True, f"put returned Ok({done!r}), expected Ok(True)")

    async def get_small():
        data = await get_bytes(bucket, "small")
        expect(data == small, f"got {data[:64]!r} ({len(data)} B), put {small!r}")
        return f"{len(data)} bytes identical"

    async def dotted_name_kept():
        # The Python client's `put` sends the key as written (only its `get` sanitises), so
        # `photo.v1.jpg` is stored as `photo.v1.jpg_0`, as on MictlanX peers, and read back
        # under that exact key.
        dotted = f"pysmoke3-{run}"
        done = unwrap(
            await client.put(bucket_id=dotted, key="photo.v1.jpg", value=small, rf=1), "put"
        )
        expect(done is True, f"put returned Ok({done!r})")
        meta = unwrap(
            await router.get_metadata(bucket_id=dotted, key="photo.v1.jpg_0", timeout=30),
            "router.get_metadata",
        )
        expect(meta.metadata.key == "photo.v1.jpg_0", f"key = {meta.metadata.key!r}")
        expect(meta.metadata.size == len(small), f"size = {meta.metadata.size}")
        return "stored under photo.v1.jpg_0"

    async def put_small_rf2():
        done = unwrap(
            await client.put(bucket_id=bucket, key="small2", value=small2, rf=2), "put rf=2"
        )
        expect(done is True, f"put returned Ok({done!r}), expected Ok(True)")

    async def get_small_rf2():
        data = await get_bytes(bucket, "small2")
        expect(data == small2, f"got {data[:64]!r}, put {small2!r}")
        return f"{len(data)} bytes identical"

    async def put_chunk_rf2_peers():
        # The client's own per-chunk upload (what `put` does per chunk), to see the router's
        # answer: with rf=2 the bytes must land on two peers.
        chunk = Chunk(group_id="raw2", index=0, data=small2, chunk_id=Some("raw2_0"))
        res = await AsyncClientUtils.put_chunk(
            router=router, client_id="python-smoke", ball_id="raw2", bucket_id=bucket2,
            key=chunk.chunk_id, chunk=chunk, rf=2, timeout=30,
            metadata={"num_chunks": "1", "full_checksum": sha256(small2)},
        )
        resp = unwrap(res, "put_chunk rf=2")
        expect(len(set(resp.peer_ids)) == 2, f"peer_ids = {resp.peer_ids}, expected 2 peers")
        expect(resp.size == len(small2), f"size = {resp.size}, expected {len(small2)}")
        return f"peer_ids={resp.peer_ids}"

    async def put_big():
        done = unwrap(
            await client.put(bucket_id=bucket, key="big", value=big, chunk_size=chunk_size, rf=1),
            "put",
        )
        expect(done is True, f"put returned Ok({done!r}), expected Ok(True)")

    async def get_big():
        data = await get_bytes(bucket, "big")
        expect(len(data) == len(big), f"got {len(data)} bytes, put {len(big)}")
        expect(data == big, "same length, different bytes")
        return f"{len(data)} bytes in {big_chunks} chunks identical"

    await check("put rf=1", put_small)
    await check("get rf=1 bytes match", get_small)
    await check("a dotted name is stored as written", dotted_name_kept)
    if peers_up >= 2:
        await check("put rf=2", put_small_rf2)
        await check("get rf=2 bytes match", get_small_rf2)
        await check("put chunk rf=2 lands on 2 peers", put_chunk_rf2_peers)
    else:
        say(f"skip: rf=2 (the cluster has {peers_up} peer(s) up)")
    await check(f"put multi-chunk ({len(big)} B, chunk_size={chunk_size})", put_big)
    await check("get multi-chunk bytes match", get_big)

    # --- metadata ---
    async def metadata_by_key():
        resp = unwrap(await client.get_metadata_by_key(bucket_id=bucket, key="small_0"), "get_metadata_by_key")
        m = resp.metadata
        expect(m.key == "small_0", f"key = {m.key!r}")
        expect(m.ball_id == "small", f"ball_id = {m.ball_id!r}")
        expect(m.size == len(small), f"size = {m.size}, expected {len(small)}")
        expect(m.checksum == sha256(small), f"checksum = {m.checksum}, expected {sha256(small)}")
        expect(m.tags.get("full_checksum") == sha256(small), f"tags = {m.tags}")
        expect(m.tags.get("num_chunks") == "1", f"num_chunks tag = {m.tags.get('num_chunks')!r}")
        return f"size={m.size} peer_id={resp.peer_id}"

    async def metadata_ball():
        ball = unwrap(await client.get_metadata(bucket_id=bucket, ball_id="big"), "get_metadata")
        expect(len(ball.chunks) == big_chunks, f"{len(ball.chunks)} chunks, expected {big_chunks}")
        expect(ball.size == len(big), f"size = {ball.size}, expected {len(big)}")
        expect(ball.checksum == sha256(big), f"checksum = {ball.checksum}, expected {sha256(big)}")
        piece = 512 * 1024
        for c in ball.chunks:
            i = int(c.tags.get("index", "-1"))
            expect(0 <= i < big_chunks, f"chunk {c.key} has index tag {c.tags.get('index')!r}")
            expect(c.key == f"big_{i}", f"chunk key {c.key!r} with index {i}")
            expect(c.size == piece, f"chunk {c.key} size {c.size}, expected {piece}")
            want = sha256(big[i * piece:(i + 1) * piece])
            expect(c.checksum == want, f"chunk {c.key} checksum {c.checksum}, expected {want}")
        raw = unwrap(await router.get_chunks_metadata(bucket_id=bucket, key="big", timeout=30), "router.get_chunks_metadata")
        expect(raw.size_bytes == len(big), f"size_bytes = {raw.size_bytes}, expected {len(big)}")
        return f"{len(ball.chunks)} chunks, size={ball.size}, checksum ok"

    await check("get_metadata_by_key size/checksum/tags", metadata_by_key)
    await check("get_metadata (ball) size/checksum/chunks", metadata_ball)

    # --- listing ---
    expected_balls = {"small": len(small), "big": len(big)}
    if peers_up >= 2:
        expected_balls["small2"] = len(small2)

    async def listing():
        b = unwrap(await client.get_bucket_metadata(bucket_id=bucket), "get_bucket_metadata")
        got = {ball.ball_id: ball.size for ball in b}
        missing = sorted(set(expected_balls) - set(got))
        expect(not missing, f"missing {missing}; listed {sorted(got)}")
        for k, size in expected_balls.items():
            expect(got[k] == size, f"{k}: listed size {got[k]}, expected {size}")
        expect(b.size_bytes() == sum(expected_balls.values()), f"bucket size_bytes = {b.size_bytes()}")
        return f"{len(b)} balls: {sorted(got)}"

    await check("get_bucket_metadata lists the balls", listing)

    # --- delete ---
    async def delete_ball():
        resp = unwrap(await client.delete(bucket_id=bucket, ball_id="big"), "delete")
        expect(resp.n_deletes >= big_chunks, f"n_deletes = {resp.n_deletes}, expected >= {big_chunks}")
        return f"n_deletes={resp.n_deletes}"

    async def delete_key():
        resp = unwrap(await client.delete_by_key(bucket_id=bucket, key="small_0"), "delete_by_key")
        expect(resp.n_deletes >= 1, f"n_deletes = {resp.n_deletes}")
        return f"n_deletes={resp.n_deletes}"

    async def delete_rf2():
        resp = unwrap(await client.delete(bucket_id=bucket, ball_id="small2"), "delete")
        expect(resp.n_deletes >= 1, f"n_deletes = {resp.n_deletes}")
        return f"n_deletes={resp.n_deletes}"

    async def listing_after_delete():
        b = unwrap(await client.get_bucket_metadata(bucket_id=bucket), "get_bucket_metadata")
        got = sorted(ball.ball_id for ball in b)
        expect(not got, f"still listed: {got}")
        return "empty"

    await check("delete (ball, multi-chunk)", delete_ball)
    await check("get after delete fails (multi-chunk)", lambda: get_fails(bucket, "big"))
    await check("delete_by_key", delete_key)
    await check("get after delete_by_key fails", lambda: get_fails(bucket, "small"))
    if peers_up >= 2:
        await check("delete rf=2 ball", delete_rf2)
        await check("get after delete fails (rf=2)", lambda: get_fails(bucket, "small2"))
        try:  # cleanup of the raw rf=2 chunk; not a check
            await asyncio.wait_for(client.delete_bucket(bucket_id=bucket2), timeout=CALL_TIMEOUT)
        except Exception as e:  # noqa: BLE001
            say(f"note: cleanup of {bucket2} failed: {type(e).__name__}: {e}")
    await check("get_bucket_metadata no longer lists them", listing_after_delete)
    await check("get of a key never put fails", lambda: get_fails(bucket, "never-put"))

    say(f"{PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    t0 = time.time()
    try:
        code = asyncio.run(asyncio.wait_for(main(), timeout=float(os.environ.get("MICTLANX_SMOKE_TIMEOUT", "600"))))
    except asyncio.TimeoutError:
        say("FAIL: the whole smoke test timed out")
        say(f"{PASSED} passed, {FAILED + 1} failed")
        code = 1
    print(f"python smoke test took {time.time() - t0:.1f} s", file=sys.stderr, flush=True)
    sys.exit(code)
