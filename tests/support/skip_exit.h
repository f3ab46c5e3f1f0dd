#pragma once

namespace pw::testing {

// What a test program exits with when it could not run its tests here (no root, no eBPF, no
// namespaces). ctest's SKIP_RETURN_CODE reports it as "Skipped"; no test relies on a skip
// pattern in its output, so a failure that happens to print "needs root" stays a failure.
// Keep in step with pw_skip_code in tests/CMakeLists.txt and SKIP_EXIT_CODE in
// tests/integration/world.py.
inline constexpr int kSkipExitCode = 77;

// In CI (CI=true) everything the tests need is installed, so a skip means that a test did not
// run: it is reported as a failure.
[[nodiscard]] bool skips_are_failures();

// Replaces gtest's result printer with one that prints the same lines except "[  SKIPPED ]":
// gtest_discover_tests() gives every test SKIP_REGULAR_EXPRESSION "\[  SKIPPED \]", which would
// turn a crash after a skip into "Skipped". Call after InitGoogleTest().
void use_skip_code_printer();

// The program's exit code from RUN_ALL_TESTS()'s `result`: a failure stays a failure; when
// tests were skipped and none passed (ctest runs one test per process) kSkipExitCode, or 1 under
// CI=true. Some passed and some skipped: 0, as gtest has it (1 under CI=true).
[[nodiscard]] int exit_code_with_skips(int result);

} // namespace pw::testing
