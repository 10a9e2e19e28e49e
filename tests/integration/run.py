#!/usr/bin/env python3
"""Runs the integration tests: every test_* function of every
tests/integration/test_*.py, against the real sluice binary. One line per
test, a traceback and the gateway's log tail on failure, and a closing line
'N passed, N failed'. Usage: run.py --sluice PATH [-k SUBSTRING]..."""

import argparse
import glob
import importlib.util
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
harness = None  # imported in main, once the test directory is on sys.path


def print_gateway_logs():
    """The log tail of every gateway the failed test started."""
    for i, gw in enumerate(harness.STARTED):
        tail = getattr(gw, "last_log", None) or gw.log_tail(60)
        print(f"---- log of gateway {i + 1} of {len(harness.STARTED)} (last lines) ----")
        print(tail.rstrip() or "(empty)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", default="build-asan/sluice")
    ap.add_argument("-k", action="append", default=[], help="run tests whose name contains this")
    args = ap.parse_args()
    os.environ["SLUICE_BIN"] = os.path.abspath(args.sluice)
    sys.path.insert(0, HERE)
    global harness
    import harness as harness_module
    harness = harness_module
    passed = failed = 0
    failures = []
    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for fname in sorted(n for n in dir(mod) if n.startswith("test_")):
            full = f"{name}.{fname}"
            if args.k and not any(k in full for k in args.k):
                continue
            t0 = time.monotonic()
            harness.STARTED.clear()
            try:
                getattr(mod, fname)()
                passed += 1
                print(f"PASS {full} ({time.monotonic() - t0:.1f}s)", flush=True)
            except Exception:  # a failing test, whatever it raised
                failed += 1
                failures.append(full)
                print(f"FAIL {full} ({time.monotonic() - t0:.1f}s)", flush=True)
                traceback.print_exc()
                print_gateway_logs()
                sys.stdout.flush()
    if failures:
        print("failed: " + ", ".join(failures))
    print(f"integration: {passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
