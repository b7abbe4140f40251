# SPDX-License-Identifier: Apache-2.0
"""The pace of the machine the integration tests run on.

The kernel matrix (tests/kernels/) runs some of these tests inside QEMU
guests without hardware virtualisation (TCG), where everything takes 10 to
30 times longer. There it sets TCPOTEL_TEST_SLOWDOWN (10, say): time
tolerances and waits stretch by that factor, and what only makes a test
long, not more exact (how many connections, how many exchanges), shrinks
by it, never below what the test needs to cover its cases (every size of
a size list, both families). What is compared, and how exactly, stays the
same. At the default 1 every test runs as written.
"""

import os

SLOWDOWN = max(1.0, float(os.environ.get("TCPOTEL_TEST_SLOWDOWN") or 1))


def longer(seconds):
    """A wait or a time tolerance, stretched by the slowdown."""
    return seconds * SLOWDOWN


def fewer(n, least=1):
    """A count of connections or exchanges, shrunk by the slowdown, never below `least`."""
    return max(least, int(round(n / SLOWDOWN)))
