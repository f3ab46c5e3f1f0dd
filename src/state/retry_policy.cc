#include "state/retry_policy.h"

#include <algorithm>

namespace pw::state {

std::optional<std::chrono::microseconds> next_retry_delay(const RetryPolicy& policy,
                                                          int attempts_made,
                                                          std::chrono::microseconds elapsed) {
    if (attempts_made < 1 || attempts_made >= policy.attempts || policy.first_delay.count() < 0) {
        return std::nullopt;
    }
    const std::chrono::microseconds budget = policy.total_budget;
    if (elapsed >= budget) {
        return std::nullopt;
    }
    const std::chrono::microseconds remaining = budget - elapsed;
    // Doubling beyond the budget is pointless and, after ~60 retries, would overflow: stop
    // doubling as soon as the delay covers what is left.
    std::chrono::microseconds delay = policy.first_delay;
    for (int retry = 1; retry < attempts_made && delay < remaining; ++retry) {
        delay *= 2;
    }
    return std::min(delay, remaining);
}

} // namespace pw::state
