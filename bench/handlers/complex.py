"""Benchmark handler "Complex handler": the reference table's third row.

Deterministic CPU + JSON work of about 200 ms in a plain python3 process on
the 2-core benchmark machine (see bench/README.md, "Complex handler"):

1. build a fixed pseudo-random structure with a seeded 32-bit LCG
   (N_RECORDS records, each a dict with ints, a float, a string, a list);
2. json.dumps + json.loads it JSON_ROUNDS times;
3. sort the records by two keys;
4. SHA256_ROUNDS chained SHA-256 rounds over the serialised form.

The constants were calibrated ONCE on 2026-11-23 on the 2-core benchmark
machine with the host's python 3.11.7 (JSON_ROUNDS 12 gave ~115 ms, 22 gave
~194 ms, 23 gives a median of ~196 ms per call in-process after one warm-up
call; `python3 complex.py` prints five timings) and are fixed here on
purpose: the benchmark must do the same work on every machine, so
slower or faster machines show up as different timings, never as a
different workload. Do not auto-calibrate.

The result digest is deterministic and is checked by bench/run.py.
"""
import hashlib
import json

SEED = 12345
N_RECORDS = 2000
JSON_ROUNDS = 23
SHA256_ROUNDS = 20000


def _lcg(state):
    return (state * 1103515245 + 12345) & 0x7FFFFFFF


def _build():
    s = SEED
    records = []
    for i in range(N_RECORDS):
        s = _lcg(s)
        a = s % 1000
        s = _lcg(s)
        b = s
        s = _lcg(s)
        records.append({
            "id": i,
            "a": a,
            "b": b,
            "f": (s % 100000) / 997.0,
            "name": "rec-%08x" % b,
            "tags": [(b >> k) & 0xFF for k in range(0, 24, 3)],
        })
    return records


def work():
    data = _build()
    for _ in range(JSON_ROUNDS):
        data = json.loads(json.dumps(data, sort_keys=True))
    data.sort(key=lambda r: (r["a"], -r["b"]))
    blob = json.dumps(data, sort_keys=True).encode()
    h = hashlib.sha256(blob).digest()
    for _ in range(SHA256_ROUNDS):
        h = hashlib.sha256(h + blob[:64]).digest()
    return {"records": len(data), "first": data[0]["id"], "digest": h.hex()}


def handler(event, context):
    return work()


if __name__ == "__main__":
    import time
    work()
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        r = work()
        ts.append((time.perf_counter() - t) * 1000)
    print(r, ["%.1f ms" % x for x in ts])
