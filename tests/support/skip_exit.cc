#include "support/skip_exit.h"

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string_view>

#include <gtest/gtest.h>

namespace pw::testing {
namespace {

// gtest's own printer for everything but the lines that name skipped tests: those read
// "[ skipped  ]", which no skip pattern matches, so only the exit code tells ctest of a skip.
class SkipCodePrinter final : public ::testing::EmptyTestEventListener {
public:
    explicit SkipCodePrinter(::testing::TestEventListener* gtest_printer)
        : gtest_printer_(gtest_printer) {}

    // ::testing::TestEventListener
    void OnTestProgramStart(const ::testing::UnitTest& unit) override {
        gtest_printer_->OnTestProgramStart(unit);
    }
    void OnTestIterationStart(const ::testing::UnitTest& unit, int iteration) override {
        gtest_printer_->OnTestIterationStart(unit, iteration);
    }
    void OnEnvironmentsSetUpStart(const ::testing::UnitTest& unit) override {
        gtest_printer_->OnEnvironmentsSetUpStart(unit);
    }
    void OnTestSuiteStart(const ::testing::TestSuite& suite) override {
        gtest_printer_->OnTestSuiteStart(suite);
    }
    void OnTestStart(const ::testing::TestInfo& test) override {
        gtest_printer_->OnTestStart(test);
    }
    void OnTestPartResult(const ::testing::TestPartResult& result) override {
        gtest_printer_->OnTestPartResult(result);
    }
    void OnTestEnd(const ::testing::TestInfo& test) override {
        if (test.result()->Skipped()) {
            std::cout << "[ skipped  ] " << test.test_suite_name() << '.' << test.name() << '\n'
                      << std::flush; // as gtest's own lines: before a crash can lose them
            return;
        }
        gtest_printer_->OnTestEnd(test);
    }
    void OnTestSuiteEnd(const ::testing::TestSuite& suite) override {
        gtest_printer_->OnTestSuiteEnd(suite);
    }
    void OnEnvironmentsTearDownStart(const ::testing::UnitTest& unit) override {
        gtest_printer_->OnEnvironmentsTearDownStart(unit);
    }
    void OnTestIterationEnd(const ::testing::UnitTest& unit, int /*iteration*/) override {
        std::cout << "[==========] " << unit.test_to_run_count() << " tests from "
                  << unit.test_suite_to_run_count() << " test suites ran. (" << unit.elapsed_time()
                  << " ms total)\n";
        std::cout << "[  PASSED  ] " << unit.successful_test_count() << " tests.\n";
        print_tests(unit, "[ skipped  ]", &::testing::TestResult::Skipped);
        print_tests(unit, "[  FAILED  ]", &::testing::TestResult::Failed);
        std::cout << std::flush;
    }
    void OnTestProgramEnd(const ::testing::UnitTest& unit) override {
        gtest_printer_->OnTestProgramEnd(unit);
    }

private:
    static void print_tests(const ::testing::UnitTest& unit, const char* tag,
                            bool (::testing::TestResult::*selected)() const) {
        for (int suite_index = 0; suite_index < unit.total_test_suite_count(); ++suite_index) {
            const ::testing::TestSuite& suite = *unit.GetTestSuite(suite_index);
            for (int test_index = 0; test_index < suite.total_test_count(); ++test_index) {
                const ::testing::TestInfo& test = *suite.GetTestInfo(test_index);
                if (test.should_run() && (test.result()->*selected)()) {
                    std::cout << tag << ' ' << suite.name() << '.' << test.name() << '\n';
                }
            }
        }
    }

    std::unique_ptr<::testing::TestEventListener> gtest_printer_;
};

} // namespace

bool skips_are_failures() {
    const char* ci = std::getenv("CI"); // NOLINT(concurrency-mt-unsafe): before any thread
    return ci != nullptr && std::string_view(ci) == "true";
}

void use_skip_code_printer() {
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    ::testing::TestEventListener* gtest_printer =
        listeners.Release(listeners.default_result_printer());
    if (gtest_printer != nullptr) {
        listeners.Append(new SkipCodePrinter(gtest_printer)); // gtest owns its listeners
    }
}

int exit_code_with_skips(int result) {
    if (result != 0) {
        return result;
    }
    const ::testing::UnitTest& unit = *::testing::UnitTest::GetInstance();
    if (unit.skipped_test_count() == 0) {
        return 0;
    }
    if (skips_are_failures()) {
        std::cerr << "FAIL: " << unit.skipped_test_count()
                  << " test(s) skipped, and with CI=true every test must run\n";
        return 1;
    }
    return unit.successful_test_count() == 0 ? kSkipExitCode : 0;
}

} // namespace pw::testing
