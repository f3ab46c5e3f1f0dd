#include "state/retry_policy.h"

#include <chrono>
#include <optional>

#include <gtest/gtest.h>

namespace pw::state {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

constexpr RetryPolicy kPolicy{
    .attempts = 4, .first_delay = microseconds(100), .total_budget = milliseconds(2)};

TEST(NextRetryDelay, DoublesTheDelayAfterEveryMiss) {
    EXPECT_EQ(next_retry_delay(kPolicy, 1, microseconds(0)), microseconds(100));
    EXPECT_EQ(next_retry_delay(kPolicy, 2, microseconds(100)), microseconds(200));
    EXPECT_EQ(next_retry_delay(kPolicy, 3, microseconds(300)), microseconds(400));
}

TEST(NextRetryDelay, GivesUpAfterTheLastAttempt) {
    EXPECT_EQ(next_retry_delay(kPolicy, 4, microseconds(700)), std::nullopt);
    EXPECT_EQ(next_retry_delay(kPolicy, 40, microseconds(0)), std::nullopt);
}

TEST(NextRetryDelay, NeverWaitsBeyondTheTotalBudget) {
    // 1,900 µs spent (a slow lookup): the next one happens at the end of the budget, not later.
    EXPECT_EQ(next_retry_delay(kPolicy, 3, microseconds(1900)), microseconds(100));
    EXPECT_EQ(next_retry_delay(kPolicy, 2, milliseconds(2)), std::nullopt);
    EXPECT_EQ(next_retry_delay(kPolicy, 2, milliseconds(5)), std::nullopt);
}

TEST(NextRetryDelay, ASingleAttemptPolicyNeverRetries) {
    const RetryPolicy once{
        .attempts = 1, .first_delay = microseconds(100), .total_budget = milliseconds(10)};
    EXPECT_EQ(next_retry_delay(once, 1, microseconds(0)), std::nullopt);
}

TEST(NextRetryDelay, NoAttemptMadeYetIsACallerError) {
    EXPECT_EQ(next_retry_delay(kPolicy, 0, microseconds(0)), std::nullopt);
    EXPECT_EQ(next_retry_delay(kPolicy, -1, microseconds(0)), std::nullopt);
}

TEST(NextRetryDelay, ManyAttemptsDoNotOverflowTheDoubling) {
    const RetryPolicy patient{
        .attempts = 1000, .first_delay = microseconds(1), .total_budget = milliseconds(50)};
    const auto delay = next_retry_delay(patient, 999, microseconds(10));
    ASSERT_TRUE(delay.has_value());
    EXPECT_EQ(*delay, microseconds(50'000 - 10));
}

TEST(NextRetryDelay, TheDefaultPolicyStaysWithinItsBudget) {
    const RetryPolicy policy;
    microseconds elapsed{0};
    int attempts = 1;
    while (const auto delay = next_retry_delay(policy, attempts, elapsed)) {
        EXPECT_GE(delay->count(), 0);
        elapsed += *delay;
        ++attempts;
    }
    EXPECT_EQ(attempts, policy.attempts);
    EXPECT_LE(elapsed, policy.total_budget);
}

} // namespace
} // namespace pw::state
