#!/usr/bin/env python3
# gen_seeds.py — regenerates the generated part of the seed corpus: tests/fuzz/corpus/record/
# and tests/fuzz/corpus/dbfile/ files named gen_*, from a small real database that the
# kdelta CLI writes (puts, an update, a delete, a batch, an embedding, a view), so the
# fuzzers start from valid log segments, commit payloads and checkpoints. The input
# layouts are described at the top of fuzz_record.c and fuzz_dbfile.c.
#   python3 tests/fuzz/gen_seeds.py [path/to/kdelta]     (default build/kdelta)
# Deterministic in structure; timestamps and ids differ on each run (they are real).
import os, shutil, struct, subprocess, sys, tempfile

KDELTA = sys.argv[1] if len(sys.argv) > 1 else "build/kdelta"
HERE = os.path.dirname(os.path.abspath(__file__))

def run(db, *args, stdin=None):
    subprocess.run([KDELTA, "--db", db, "--sync", "off", *args], check=True, input=stdin,
                   stdout=subprocess.DEVNULL, text=True)

def records(img):
    """(offset, payload) of each framed record after the 64-byte header."""
    off, out = 64, []
    while off + 9 <= len(img):
        (n,) = struct.unpack_from("<I", img, off)
        if n == 0 or off + 9 + n > len(img):
            break
        out.append((off, img[off + 9: off + 9 + n]))
        off += 9 + n
    return out, off

def main():
    tmp = tempfile.mkdtemp(prefix="kd_seeds_")
    db = os.path.join(tmp, "db")
    try:
        run(db, "set", "users/alice", '{"age":31,"name":"Alice","tags":["a","b"]}')
        run(db, "set", "users/bob", '{"age":40,"name":"Bob"}')
        run(db, "set", "users/alice", '{"age":32,"name":"Alice","tags":["a"]}')
        run(db, "delete", "users/bob")
        run(db, "batch", "-", stdin='{"op":"put","namespace":"orders","key":"1","value":{"total":9.5}}\n'
                                    '{"op":"put","namespace":"orders","key":"2","value":[1,2,3]}\n'
                                    '{"op":"put","namespace":"users","key":"carol","value":null}\n')
        run(db, "embed", "users/alice", "--vector", "[0.5,-1,2]")
        run(db, "view", "create", "adults", "users", "--filter", "age >= 18")
        seg = open(os.path.join(db, "log", "00000001.kdl"), "rb").read()
        recs, end = records(seg)
        seg = seg[:end]  # drop the zero-filled space ahead of the write position
        ck_path = os.path.join(db, "checkpoint")
        ckpt = open(ck_path, "rb").read() if os.path.exists(ck_path) else b""
    finally:
        shutil.rmtree(tmp)

    rdir, ddir = os.path.join(HERE, "corpus", "record"), os.path.join(HERE, "corpus", "dbfile")
    for d in (rdir, ddir):
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.startswith("gen_"):
                os.remove(os.path.join(d, f))
    def put(d, name, data):
        open(os.path.join(d, name), "wb").write(data)
    # record: flags byte, then bytes (fuzz_record.c)
    put(rdir, "gen_segment", b"\x00" + seg)
    put(rdir, "gen_records_fixcrc", b"\x03" + seg[64:])
    for i, (_, p) in enumerate(recs):
        put(rdir, "gen_payload_%02d" % i, b"\x00" + p)
    # dbfile: flags, u32 log length, log, checkpoint (fuzz_dbfile.c)
    def db_input(flags, log, ck):
        return bytes([flags]) + struct.pack("<I", len(log)) + log + ck
    put(ddir, "gen_log", db_input(0x00, seg, b""))
    put(ddir, "gen_log_checkpoint", db_input(0x00, seg, ckpt))
    put(ddir, "gen_records_fix_deep", db_input(0x0b, seg[64:], b""))
    put(ddir, "gen_records_ckpt_fix", db_input(0x07, seg[64:], ckpt))
    put(ddir, "gen_torn_tail", db_input(0x00, seg[:-7], b""))
    put(ddir, "gen_old_checkpoint", db_input(0x04, seg[: recs[3][0]] if len(recs) > 3 else seg, ckpt))
    print("records: %d, segment: %d bytes, checkpoint: %d bytes" % (len(recs), len(seg), len(ckpt)))

main()
