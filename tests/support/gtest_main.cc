// The main() of every gtest program in tests/ (pw_gtest_main): GTest::gtest_main with skips
// reported by exit code (support/skip_exit.h).
#include <gtest/gtest.h>

#include "support/skip_exit.h"

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    pw::testing::use_skip_code_printer();
    return pw::testing::exit_code_with_skips(RUN_ALL_TESTS());
}
