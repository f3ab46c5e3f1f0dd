#!/usr/bin/env python3
"""CI's second check after `make test`: the tests that need root, namespaces, cgroup v2, eBPF or
clang-19 really ran. A host without them would otherwise report "100% tests passed" with none of
them run: not registered at all (no python3, no clang-19), or skipped.

    check_test_counts.py BUILD_DIR JUNIT_XML

Reads the tests and their labels from `ctest --show-only=json-v1` and their outcomes from the
JUnit report of the run (`ctest --output-junit`). For each required label: at least the minimum
number of tests is registered, and every one of them ran and passed. Any skipped test anywhere
fails CI too. Exit 0 when all is well, 1 otherwise.
"""

import collections
import json
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

# label -> the fewest tests that must run: the count when this check was written. A label's
# tests may grow; fewer means a tier silently lost its tests.
REQUIRED = {
    "integration": 70,  # the python suites, the demo and the gtest netns/eBPF programs
    "ebpf": 13,         # tests/state_bpf: the real eBPF programs in the kernel
    "fuzz": 6,          # one per fuzz target
    "unit": 1000,
    "packaging": 1,     # tests/packaging: the Debian package with lintian
}


def registered_labels(build_dir):
    listing = subprocess.run(["ctest", "--test-dir", build_dir, "--show-only=json-v1"],
                             capture_output=True, text=True, check=True)
    labels = {}
    for test in json.loads(listing.stdout)["tests"]:
        for prop in test.get("properties", []):
            if prop["name"] == "LABELS":
                labels[test["name"]] = set(prop["value"])
        labels.setdefault(test["name"], set())
    return labels


def outcomes(junit_path):
    """test name -> "passed", "failed" or "skipped", as the JUnit report has it."""
    result = {}
    for case in ElementTree.parse(junit_path).getroot().iter("testcase"):
        if case.find("skipped") is not None or case.get("status") in ("notrun", "disabled"):
            result[case.get("name")] = "skipped"
        elif case.find("failure") is not None or case.get("status") == "fail":
            result[case.get("name")] = "failed"
        else:
            result[case.get("name")] = "passed"
    return result


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    build_dir, junit_path = sys.argv[1:]
    labels = registered_labels(build_dir)
    ran = outcomes(junit_path)
    problems = []
    skipped = sorted(name for name, outcome in ran.items() if outcome == "skipped")
    if skipped:
        problems.append(f"{len(skipped)} test(s) skipped (CI has everything): "
                        + ", ".join(skipped[:20]))
    per_label = collections.Counter()
    for name, test_labels in labels.items():
        for label in test_labels:
            if ran.get(name) == "passed":
                per_label[label] += 1
    for label, minimum in REQUIRED.items():
        members = [name for name, test_labels in labels.items() if label in test_labels]
        missing = [name for name in members if ran.get(name) != "passed"]
        print(f"ci: {label}: {per_label[label]} of {len(members)} registered tests ran and "
              f"passed (at least {minimum} required)")
        if len(members) < minimum:
            problems.append(f"{label}: only {len(members)} tests registered, {minimum} expected "
                            "(python3, clang-19 or eBPF tools missing?)")
        if missing:
            problems.append(f"{label}: did not run or pass: " + ", ".join(missing[:20]))
    for problem in problems:
        print(f"ci: FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
