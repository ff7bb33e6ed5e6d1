"""Persistence of lambdad's state across restarts: a graceful stop (SIGTERM),
a power cut (SIGKILL), a SIGKILL in the middle of a burst of creates or of
group-committed creates and updates (also with the journal as the only copy), torn
temporary files left by an interrupted write, and --ephemeral.

The promise under test: a change is on disk before the API acknowledges it,
so whatever a client saw succeed is there after any restart, and nothing a
crash leaves behind stops the server from starting.
"""
import hashlib
import os
import threading
import time

import pytest
from botocore.exceptions import ClientError

from helpers import (code_sha256, create_function, download, make_zip, py_zip, strip_meta,
                     tree_snapshot, unique_name, wait_for)


def full_state(client):
    """Everything observable about every function in the client's
    namespace: {name: (configuration, tags, code bytes)}."""
    listed = client.get_paginator("list_functions").paginate().build_full_result()["Functions"]
    state = {}
    for f in listed:
        got = client.get_function(FunctionName=f["FunctionName"])
        status, body = download(got["Code"]["Location"])
        assert status == 200
        assert code_sha256(body) == got["Configuration"]["CodeSha256"]
        state[f["FunctionName"]] = (got["Configuration"], got.get("Tags", {}), body)
        assert f == got["Configuration"], "ListFunctions item differs from GetFunction"
    return state


def populate(client):
    """A mix of creates, updates and a delete. Returns the deleted name."""
    a, b, c, gone = (unique_name(p) for p in ("keep", "code", "conf", "gone"))
    create_function(client, a, Environment={"Variables": {"KEY": "v"}}, Tags={"t": "1"},
                    Description="kept as created", MemorySize=512)
    create_function(client, b, py_zip("b1"))
    client.update_function_code(FunctionName=b, ZipFile=make_zip({
        "lambda_function.py": "def handler(e, c):\n    return 2\n",
        "bin/run": ("#!/bin/sh\nexit 0\n", 0o755)}))
    create_function(client, c)
    client.update_function_configuration(FunctionName=c, Timeout=60, Handler="other.handler",
                                         EphemeralStorage={"Size": 2048},
                                         Environment={"Variables": {"XX": "1", "YY": "2"}})
    create_function(client, gone)
    client.delete_function(FunctionName=gone)
    return gone


def assert_gone(client, name):
    with pytest.raises(ClientError) as ei:
        client.get_function(FunctionName=name)
    assert ei.value.response["Error"]["Code"] == "ResourceNotFoundException"


@pytest.mark.smoke
def test_restart_after_sigterm_restores_everything(lambdad_factory):
    srv = lambdad_factory()
    client = srv.client()
    gone = populate(client)
    eu = srv.client(region="eu-west-1")
    create_function(eu, unique_name("eu"))
    before, before_eu = full_state(client), full_state(eu)
    assert len(before) == 3 and len(before_eu) == 1
    assert tree_snapshot(srv.data_dir), "nothing was written to --data-dir"

    srv.restart()
    client, eu = srv.client(), srv.client(region="eu-west-1")
    assert full_state(client) == before
    assert full_state(eu) == before_eu
    assert_gone(client, gone)
    # The restored registry is live: conflicts, updates and deletes work.
    some = sorted(before)[0]
    with pytest.raises(client.exceptions.ResourceConflictException):
        create_function(client, some)
    rev = before[some][0]["RevisionId"]
    upd = client.update_function_configuration(FunctionName=some, Timeout=7, RevisionId=rev)
    assert upd["RevisionId"] != rev
    client.delete_function(FunctionName=some)
    assert_gone(client, some)


def test_code_blobs_outlive_a_restart_until_their_last_user_is_gone(lambdad_factory):
    """Who uses a stored zip is counted in memory (server/coderefs.h) and
    rebuilt at start-up: after a restart a zip shared by two functions, a
    published version and a layer version stays until the last of them is
    deleted, and a zip only one function used goes with it."""
    srv = lambdad_factory()
    client = srv.client()
    shared, own = py_zip("shared"), py_zip("own")
    a, b, c, layer = (unique_name(p) for p in ("a", "b", "c", "lyr"))
    create_function(client, a, shared)
    create_function(client, b, shared)
    create_function(client, c, own)
    client.publish_version(FunctionName=a)
    lv = client.publish_layer_version(LayerName=layer, Content={"ZipFile": shared})["Version"]

    def stored(data):
        name = hashlib.sha256(data).hexdigest() + ".zip"
        return any(name in fs for _, _, fs in os.walk(srv.data_dir))

    assert stored(shared) and stored(own)
    srv.restart()
    client = srv.client()
    client.delete_function(FunctionName=c)
    wait_for(lambda: not stored(own), 10, what="the zip of the deleted function to go")
    client.delete_function(FunctionName=a)  # $LATEST and version 1
    client.delete_function(FunctionName=b)
    assert stored(shared), "a zip still used by a layer version was removed"
    client.delete_layer_version(LayerName=layer, VersionNumber=lv)
    wait_for(lambda: not stored(shared), 10, what="the zip of the last user to go")


def test_restart_after_kill9_restores_everything(lambdad_factory):
    srv = lambdad_factory()
    client = srv.client()
    gone = populate(client)
    before = full_state(client)
    srv.restart(kill=True)
    client = srv.client()
    assert full_state(client) == before
    assert_gone(client, gone)


@pytest.mark.parametrize("acked_before_kill,checkpoint_bytes", [(8, None), (1500, 1 << 20), (1500, None)],
                         ids=["8", "1500-rotating", "1500-growing"])
def test_kill9_during_create_burst(lambdad_factory, acked_before_kill, checkpoint_bytes):
    """1,500 creates write more than 1 MiB of journal. With a checkpoint
    every 1 MiB (LAMBDAD_TEST_JOURNAL_CHECKPOINT) the kill also lands among
    journal rotations and background checkpoints; with the default (16 MiB)
    among the steps that extend the journal's pre-zeroed part."""
    env = {"LAMBDAD_TEST_JOURNAL_CHECKPOINT": str(checkpoint_bytes)} if checkpoint_bytes else {}
    srv = lambdad_factory(env=env)
    acked = {}  # name -> (CodeSha256, zip bytes), only for 2xx answers
    lock = threading.Lock()
    stop = threading.Event()
    failures = []

    def worker(t):
        client = srv.client()
        for i in range(100000):
            if stop.is_set():
                return
            name = f"burst-{t}-{i}"
            zip_bytes = py_zip(f"{name}-{os.urandom(4).hex()}")
            try:
                resp = create_function(client, name, zip_bytes)
            except Exception as e:  # connection reset/refused once killed
                if not stop.is_set():
                    failures.append(f"{name}: {e!r}")
                return
            with lock:
                acked[name] = (resp["CodeSha256"], zip_bytes)

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    wait_for(lambda: len(acked) >= acked_before_kill, timeout=120,
             what=f"{acked_before_kill} acknowledged creates")
    stop.set()
    srv.kill9()
    for t in threads:
        t.join(30)
        assert not t.is_alive(), "a creator thread hung after the kill"
    assert not failures, failures[:5]
    with lock:
        acked_now = dict(acked)
    print(f"{len(acked_now)} creates acknowledged before the kill")
    fdir = os.path.join(srv.data_dir, "functions")
    if checkpoint_bytes:
        # Documents are written only by a checkpoint: the burst went through
        # at least one journal rotation before the kill.
        assert any(f.endswith(".json") for f in os.listdir(fdir)), sorted(os.listdir(fdir))[:10]
    elif acked_before_kill > 8:
        # No checkpoint yet: the journal holds every change, past its first
        # 1.25 MiB of zeros (extended at least once).
        assert not any(f.endswith(".json") for f in os.listdir(fdir)), sorted(os.listdir(fdir))[:10]
        assert os.path.getsize(os.path.join(fdir, "journal")) >= (9 << 18)

    srv.start()  # must come up despite whatever the kill left half-written
    client = srv.client()
    for name, (sha, zip_bytes) in sorted(acked_now.items()):
        got = client.get_function(FunctionName=name)
        assert got["Configuration"]["CodeSha256"] == sha == code_sha256(zip_bytes), name
        assert download(got["Code"]["Location"])[1] == zip_bytes, name
    # Creates in flight at the kill may or may not exist, but whatever exists
    # is whole (full_state checks every listed function's code).
    state = full_state(client)
    assert set(acked_now) <= set(state)
    assert all(n.startswith("burst-") for n in state)


@pytest.mark.parametrize("journal_only", [False, True], ids=["docs", "journal-only"])
def test_kill9_during_group_commit_of_creates_and_updates(lambdad_factory, journal_only):
    """4 writers mixing CreateFunction and UpdateFunctionConfiguration share
    group commits (server/persist.h: one journal flush for many changes).
    After a SIGKILL mid-burst every acknowledged create exists and every
    function shows its last acknowledged update (or the one in flight at the
    kill, never an older one). journal-only: lambdad never updates the
    document files (LAMBDAD_TEST_JOURNAL_ONLY=1), so every acknowledged change
    must come back from the journal replay at start-up."""
    env = {"LAMBDAD_TEST_JOURNAL_ONLY": "1"} if journal_only else {}
    srv = lambdad_factory(env=env)
    acked = {}    # name -> last acknowledged SEQ
    tried = {}    # name -> last SEQ sent
    lock = threading.Lock()
    stop = threading.Event()
    failures = []
    zip_bytes = py_zip("group-commit")

    def worker(t):
        client = srv.client()
        mine = []
        for i in range(100000):
            if stop.is_set():
                return
            try:
                if i % 3 == 0 or not mine:
                    name = f"gc-{t}-{len(mine)}"
                    with lock:
                        tried[name] = 0
                    create_function(client, name, zip_bytes,
                                    Environment={"Variables": {"SEQ": "0"}})
                    mine.append(name)
                    with lock:
                        acked[name] = 0
                else:
                    name = mine[i % len(mine)]
                    seq = tried[name] + 1
                    with lock:
                        tried[name] = seq
                    client.update_function_configuration(
                        FunctionName=name, Environment={"Variables": {"SEQ": str(seq)}})
                    with lock:
                        acked[name] = seq
            except Exception as e:  # connection reset/refused once killed
                if not stop.is_set():
                    failures.append(f"{t}/{i}: {e!r}")
                return

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= 12 and sum(acked.values()) >= 24, timeout=60,
             what="acknowledged creates and updates")
    stop.set()
    srv.kill9()
    for t in threads:
        t.join(30)
        assert not t.is_alive(), "a writer thread hung after the kill"
    assert not failures, failures[:5]
    with lock:
        acked_now, tried_now = dict(acked), dict(tried)
    print(f"{len(acked_now)} creates, {sum(acked_now.values())} updates acknowledged")

    srv.start()
    client = srv.client()
    for name, seq in sorted(acked_now.items()):
        got = client.get_function(FunctionName=name)["Configuration"]
        have = int(got["Environment"]["Variables"]["SEQ"])
        assert seq <= have <= tried_now[name], (name, seq, have, tried_now[name])
    state = full_state(client)
    assert set(acked_now) <= set(state) <= set(tried_now)
    # And it keeps working: a graceful restart after more writes.
    client.update_function_configuration(FunctionName=sorted(acked_now)[0], Timeout=33)
    srv.restart()
    got = srv.client().get_function(FunctionName=sorted(acked_now)[0])["Configuration"]
    assert got["Timeout"] == 33


def _find_function_file(data_dir, name):
    """The file the server persisted a function's configuration in: the
    one file under data_dir whose name contains the function's name."""
    hits = []
    for dirpath, _, files in os.walk(data_dir):
        for f in files:
            if name in f:
                hits.append(os.path.join(dirpath, f))
    assert len(hits) == 1, f"expected one file named after {name}, found {hits}"
    return hits[0]


def test_torn_temp_files_do_not_prevent_startup(lambdad_factory):
    srv = lambdad_factory()
    client = srv.client()
    names = [unique_name("torn") for _ in range(2)]
    for n in names:
        create_function(client, n)
    before = full_state(client)
    srv.stop()

    path = _find_function_file(srv.data_dir, names[0])
    fdir, fname = os.path.split(path)
    with open(path, "rb") as f:
        real = f.read()
    torn = real[: len(real) // 2]
    ghost = "ghost-function"
    ghost_fname = fname.replace(names[0], ghost)
    # What an interrupted atomic write (write temp, fsync, rename) leaves:
    # temp files next to the real ones, half-written or garbage, for an
    # existing function and for one that was never acknowledged. The first
    # two follow the server's own naming (server/persist.c:
    # ".<id>.json.tmp.<pid>.<seq>"); the others are other plausible shapes.
    own_pattern = {
        f".{fname}.tmp.4242.1": torn,
        f".{ghost_fname}.tmp.4242.2": torn.replace(names[0].encode(), ghost.encode()),
    }
    other = {
        f"{fname}.tmp": torn,
        f".{fname}.tmp": b"\x00\x01garbage{{{",
        f".{fname}.XXXXXX": b"",
        f"{ghost_fname}.tmp": b'{"FunctionName": "ghost-funct',
        f".tmp-{ghost}": b"\xff" * 100,
    }
    for gname, content in {**own_pattern, **other}.items():
        with open(os.path.join(fdir, gname), "wb") as f:
            f.write(content)
    # The code store's temp shapes (runtime/codestore.c: ".tmp-<hex>.zip-XXXXXX"
    # files and ".tmp-<hex>-XXXXXX" extraction directories), next to the
    # stored zips if the store keeps them in a directory of their own.
    zips = [os.path.join(d, f) for d, _, fs in os.walk(srv.data_dir) for f in fs
            if f.endswith(".zip") and not f.startswith(".")]
    assert zips, "no stored zip found in the data dir"
    code_dir = os.path.dirname(zips[0])
    hexkey = "ab" * 32
    with open(os.path.join(code_dir, f".tmp-{hexkey}.zip-Ab12Cd"), "wb") as f:
        f.write(b"PK\x03\x04torn")
    os.makedirs(os.path.join(code_dir, f".tmp-{hexkey}-Zz99Yy", "sub"))
    with open(os.path.join(code_dir, f".tmp-{hexkey}-Zz99Yy", "sub", "half.py"), "wb") as f:
        f.write(b"def hand")

    srv.start()
    client = srv.client()
    assert full_state(client) == before
    assert_gone(client, ghost)
    # persist.h promises that start-up deletes its own torn temp files.
    for gname in own_pattern:
        assert not os.path.exists(os.path.join(fdir, gname)), f"{gname} was not cleaned up"
    # Writing still works in that directory.
    n = unique_name("after")
    create_function(client, n)
    srv.restart()
    assert n in full_state(srv.client())


def test_ephemeral_writes_nothing_and_forgets(lambdad_factory, tmp_path):
    data_dir = str(tmp_path / "eph-data")
    os.makedirs(data_dir)
    srv = lambdad_factory(ephemeral=True, data_dir=data_dir)
    client = srv.client()
    populate(client)
    assert len(full_state(client)) == 3
    assert tree_snapshot(data_dir) == set(), "--ephemeral wrote into the data dir"
    srv.restart()
    assert tree_snapshot(data_dir) == set()
    assert srv.client().list_functions()["Functions"] == []
