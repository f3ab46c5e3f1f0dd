#!/usr/bin/env python3
"""How ctest runs the integration tier (tests/integration/CMakeLists.txt), so that a skip is told
by the exit code alone and never by a pattern in the output:

    runner.py unittest MODULE                     a unittest module of this directory
    runner.py command [--expect REGEX] -- ARGV    a program, e.g. scripts/demo.py --once

Exit codes: 0 passed; world.SKIP_EXIT_CODE (77, ctest's SKIP_RETURN_CODE) when nothing could run
here: the module's setUpModule raised unittest.SkipTest (no root, no namespaces, no cgroup v2, a
missing tool) or the program exited 77; 1 for anything else, including a module in which no test
ran and a program whose output lacks REGEX (it must also exit 0). With CI=true any skip, of a
module or of a single test, is a failure (exit 1).
"""

import argparse
import re
import subprocess
import sys
import unittest

import world


def run_module(name):
    suite = unittest.defaultTestLoader.loadTestsFromName(name)
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=2).run(suite)
    if not result.wasSuccessful():
        return 1
    # A SkipTest from setUpModule is recorded against a placeholder, not a TestCase, and its
    # tests are not run at all.
    skipped_tests = [test for test, _ in result.skipped if isinstance(test, unittest.TestCase)]
    passed = result.testsRun - len(skipped_tests) - len(result.expectedFailures)
    if result.skipped and world.skips_are_failures():
        reasons = "; ".join(f"{test}: {reason}" for test, reason in result.skipped)
        print(f"FAIL: {len(result.skipped)} skipped with CI=true, where everything must run: "
              f"{reasons}", file=sys.stderr)
        return 1
    if passed > 0:
        return 0
    if result.skipped:
        print(f"SKIPPED: {name}: nothing could run here", file=sys.stderr)
        return world.SKIP_EXIT_CODE
    print(f"FAIL: {name}: no test ran", file=sys.stderr)
    return 1


def run_command(argv, expect):
    output = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace") as process:
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            output.append(line)
        code = process.wait()
    if code == world.SKIP_EXIT_CODE:
        if world.skips_are_failures():
            print("FAIL: skipped with CI=true, where everything must run", file=sys.stderr)
            return 1
        return world.SKIP_EXIT_CODE
    if code != 0:
        print(f"FAIL: {argv[0]} exited with {code}", file=sys.stderr)
        return 1
    if expect and not re.search(expect, "".join(output), re.DOTALL):
        print(f"FAIL: the output lacks /{expect}/", file=sys.stderr)
        return 1
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    module = modes.add_parser("unittest")
    module.add_argument("module")
    command = modes.add_parser("command")
    command.add_argument("--expect", help="a regular expression the output must match")
    command.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.mode == "unittest":
        return run_module(args.module)
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        parser.error("command: no program given")
    return run_command(argv, args.expect)


if __name__ == "__main__":
    sys.exit(main())
