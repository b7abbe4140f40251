#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Copies collector-config/*.yaml into the ConfigMaps of deploy/kubernetes/collector.yaml.

Every ConfigMap key of that manifest named like a file of collector-config/
("  k8s-agent.yaml: |") gets the file's text as its block, so the manifest
runs exactly the configurations the tests check. Run it after editing one of
them; tests/integration/test_collector_config.py fails until then.

    python3 scripts/sync-k8s-configmaps.py
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = os.path.join(ROOT, "deploy", "kubernetes", "collector.yaml")
SOURCE = os.path.join(ROOT, "collector-config")
KEY = re.compile(r"^(  )([a-z0-9-]+\.yaml): \|$")


def main():
    with open(MANIFEST, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out, i, done = [], 0, []
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        m = KEY.match(line)
        if not m or not os.path.exists(os.path.join(SOURCE, m.group(2))):
            continue
        # Skip the old block: every following line indented deeper than the key, or empty.
        while i < len(lines) and (lines[i] == "" or lines[i].startswith("    ")):
            i += 1
        with open(os.path.join(SOURCE, m.group(2)), encoding="utf-8") as f:
            text = f.read()
        if not text.endswith("\n") or text.endswith("\n\n"):
            sys.exit("%s must end with exactly one newline" % m.group(2))
        out.extend(("    " + t) if t else "" for t in text[:-1].split("\n"))
        done.append(m.group(2))
    with open(MANIFEST, "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    print("copied into %s: %s" % (os.path.relpath(MANIFEST, ROOT), ", ".join(done)))


if __name__ == "__main__":
    main()
