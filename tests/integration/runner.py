#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Runs the integration tests: tests/integration/test_*.py, every test_* function.

    python3 tests/integration/runner.py [--list] [FILTER...]

FILTER keeps the tests whose "module.test_name" contains it (any of them).
Each test runs with a fresh harness state and is cleaned up after, pass or
fail. A test passes by returning, fails on any exception (AssertionError
included), and is skipped when it raises harness.Skip. The last line is
always "N passed, N failed, N skipped"; the exit status is 1 if any failed.

Per-test time limit: TCPOTEL_TEST_TIMEOUT seconds (default 180), or a
function attribute `timeout`. TCPOTEL_KEEP=1 keeps every test's scratch
directory (failed tests always keep theirs).
"""

import importlib
import inspect
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


class TestTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise TestTimeout("test exceeded its time limit")


def discover():
    """[(module name, [(test name, function)] or an import error string)], sorted by file."""
    out = []
    for fname in sorted(os.listdir(HERE)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        modname = fname[:-3]
        try:
            mod = importlib.import_module(modname)
        except Exception:
            out.append((modname, traceback.format_exc()))
            continue
        tests = []
        for name, fn in vars(mod).items():
            if name.startswith("test_") and inspect.isfunction(fn) and fn.__module__ == modname:
                tests.append((fn.__code__.co_firstlineno, name, fn))
        tests.sort(key=lambda t: t[0])
        out.append((modname, [(n, f) for _, n, f in tests]))
    return out


def _tail(text, n):
    lines = text.rstrip().splitlines()
    return "\n".join("    " + ln for ln in lines[-n:])


def run_one(fullname, fn):
    """Returns ("ok"|"FAIL"|"SKIP", detail)."""
    harness.reset()
    limit = int(getattr(fn, "timeout", 0) or os.environ.get("TCPOTEL_TEST_TIMEOUT", "180"))
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(limit)
    status, detail = "ok", ""
    try:
        fn()
    except harness.Skip as e:
        status, detail = "SKIP", str(e)
    except BaseException as e:
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            # The run is being cancelled: clean up this test and stop.
            signal.alarm(0)
            harness.cleanup()
            raise
        status = "FAIL"
        msg = str(e) or e.__class__.__name__
        if isinstance(e, TestTimeout):
            msg = "timed out after %ds" % limit
        detail = "    %s: %s\n%s" % (e.__class__.__name__, msg.splitlines()[0] if msg else "",
                                     _tail(traceback.format_exc(), 14))
        ctx = harness.failure_context()
        if ctx:
            detail += "\n" + ctx
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    if status == "FAIL" or os.environ.get("TCPOTEL_KEEP"):
        kept = harness.keep_workdir()
        if kept and status == "FAIL":
            detail += "\n    files kept in " + kept
    harness.cleanup()
    return status, detail


def _on_term(signum, frame):
    # SystemExit runs the cleanup paths (this test's, then atexit's).
    raise SystemExit(128 + signum)


def main(argv):
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)
    list_only = "--list" in argv
    filters = [a for a in argv if not a.startswith("--")]
    if os.geteuid() == 0:
        harness.cleanup_stale()
    passed = failed = skipped = 0
    for modname, tests in discover():
        if isinstance(tests, str):
            if filters and not any(f in modname for f in filters):
                continue
            print("FAIL %s (import)\n%s" % (modname, _tail(tests, 14)), flush=True)
            failed += 1
            continue
        for name, fn in tests:
            full = "%s.%s" % (modname, name)
            if filters and not any(f in full for f in filters):
                continue
            if list_only:
                print(full)
                continue
            t0 = time.monotonic()
            status, detail = run_one(full, fn)
            dt = time.monotonic() - t0
            if status == "ok":
                passed += 1
                print("ok   %s (%.1fs)" % (full, dt), flush=True)
            elif status == "SKIP":
                skipped += 1
                print("SKIP %s %s" % (full, detail), flush=True)
            else:
                failed += 1
                print("FAIL %s (%.1fs)\n%s" % (full, dt, detail), flush=True)
    if list_only:
        return 0
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
