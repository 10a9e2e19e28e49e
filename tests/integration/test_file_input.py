"""The file input: lines appended to a tailed file reach the route's output
in order; a clean restart resumes where the last run stopped (no line lost,
none read twice); a rotated file (renamed, written to a little more, then
replaced by a new one) loses nothing. Each test writes a last line END and
waits for it: the input reads the file in order, so whatever came before
END, re-read or not, has been delivered by then."""

import json
import os

from harness import Gateway, base_config, free_port, wait_until


def config(admin_port, src, out):
    return base_config(admin_port=admin_port) + f"""
connectors:
  src: {{ type: file }}
  out: {{ type: file, path: "{out}" }}
routes:
  tail:
    from: {{ connector: src, path: "{src}" }}
    to: [ {{ connector: out }} ]
"""


def delivered(out):
    """Every message the output wrote, as dicts, in file order."""
    try:
        with open(out) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


def bodies(out):
    return [m["body"] for m in delivered(out)]


def write_lines(path, lines, mode="a"):
    with open(path, mode) as f:
        for l in lines:
            f.write(l + "\n")


def wait_for_end(out, n_end=1, timeout=60):
    wait_until(lambda: bodies(out).count("END") >= n_end, timeout, f"END number {n_end} in {out}")


def setup():
    admin = free_port()
    gw = Gateway("")
    src = os.path.join(gw.dir, "in.log")
    out = os.path.join(gw.dir, "out.jsonl")
    with open(gw.config, "w") as f:
        f.write(config(admin, src, out))
    return gw, admin, src, out


def test_file_input_delivers_lines_appended_while_running_and_reads_jsonl_back():
    gw, admin, src, out = setup()
    try:
        # A message as the file output writes it is read back as that message.
        written = {
            "id": "0190f5e6-0000-7000-8000-00000000abcd",
            "key": "c1",
            "timestamp": 1700000000000,
            "headers": {"content-type": "application/json", "x-a": "1"},
            "body": {"customer": {"id": "c1"}, "total": 12.5},
        }
        write_lines(src, ["before-0", "before-1", json.dumps(written)], mode="w")
        gw.start(admin)
        wait_until(lambda: len(delivered(out)) >= 3, 60, "the lines written before start")
        for i in range(200):  # appended while running, in several writes
            write_lines(src, [f"line-{i}"])
        write_lines(src, ["END"])
        wait_for_end(out)
        got = delivered(out)
        assert [m["body"] for m in got[:2]] == ["before-0", "before-1"]
        back = got[2]
        assert back["id"] == written["id"]
        assert back["key"] == "c1"
        assert back["timestamp"] == written["timestamp"]
        assert back["headers"] == written["headers"]
        assert back["body"] == written["body"]
        assert [m["body"] for m in got[3:]] == [f"line-{i}" for i in range(200)] + ["END"]
        gw.stop()
    finally:
        gw.cleanup()


def test_file_input_clean_restart_resumes_where_it_stopped():
    gw, admin, src, out = setup()
    try:
        write_lines(src, [f"a-{i}" for i in range(100)], mode="w")
        gw.start(admin)
        wait_until(lambda: len(delivered(out)) >= 100, 60, "the first 100 lines")
        gw.stop()
        # written while the gateway is down
        write_lines(src, [f"b-{i}" for i in range(100)])
        gw.start(admin)
        write_lines(src, [f"c-{i}" for i in range(50)] + ["END"])
        wait_for_end(out)
        want = [f"a-{i}" for i in range(100)] + [f"b-{i}" for i in range(100)]
        want += [f"c-{i}" for i in range(50)] + ["END"]
        assert bodies(out) == want
        gw.stop()
        pos = os.path.join(gw.dir, "data", "file_input", "tail.pos")
        with open(pos) as f:
            version, ino, offset = f.read().split()
        assert (int(ino), int(offset)) == (os.stat(src).st_ino, os.path.getsize(src))
    finally:
        gw.cleanup()


def test_file_input_rotation_rename_and_new_file_loses_nothing():
    gw, admin, src, out = setup()
    try:
        write_lines(src, [f"old-{i}" for i in range(100)], mode="w")
        gw.start(admin)
        wait_until(lambda: len(delivered(out)) >= 100, 60, "the first 100 lines")
        # A writer that keeps its file open across the rename, as a logger
        # does until it reopens: its late lines belong to the old file, even
        # those written after the gateway has seen the new one.
        with open(src, "a") as writer:
            writer.write("".join(f"old-{i}\n" for i in range(100, 150)))
            writer.flush()
            os.rename(src, src + ".1")
            write_lines(src, [f"new-{i}" for i in range(50)], mode="w")
            wait_until(lambda: "was rotated; reading the old file" in gw.log_tail(200), 60,
                       "the gateway to notice the rotation")
            writer.write("".join(f"old-{i}\n" for i in range(150, 200)))
            writer.flush()
        write_lines(src, [f"new-{i}" for i in range(50, 100)] + ["END"])
        wait_for_end(out)
        want = [f"old-{i}" for i in range(200)] + [f"new-{i}" for i in range(100)] + ["END"]
        assert bodies(out) == want
        gw.stop()
    finally:
        gw.cleanup()


def test_file_input_truncated_file_is_read_again_from_the_start():
    gw, admin, src, out = setup()
    try:
        write_lines(src, [f"first-{i}" for i in range(20)], mode="w")
        gw.start(admin)
        wait_until(lambda: len(delivered(out)) >= 20, 60, "the first 20 lines")
        write_lines(src, ["x"], mode="w")  # truncated, then one short line
        write_lines(src, ["END"])
        wait_for_end(out)
        assert bodies(out) == [f"first-{i}" for i in range(20)] + ["x", "END"]
        gw.stop()
    finally:
        gw.cleanup()
