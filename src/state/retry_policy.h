#pragma once

#include <chrono>
#include <optional>

namespace pw::state {

// How long to keep asking for a socket that is not visible yet (a connect() racing with its
// first packet, a UDP socket about to be bound). The library never sleeps: the daemon arms a
// timer with the delay next_retry_delay() returns and looks up again when it fires.
struct RetryPolicy {
    int attempts = 4;                          // lookups in total, the first included
    std::chrono::microseconds first_delay{50}; // doubled after every retry
    std::chrono::milliseconds total_budget{std::chrono::milliseconds(2)}; // from the first lookup
};

// The wait before the next lookup, after `attempts_made` lookups (≥ 1) that found nothing and
// `elapsed` time since the first one; nullopt when the caller should give up. Delays double
// (first_delay, 2×, 4×, …) and are cut so that the last lookup happens no later than
// total_budget after the first. Pure: no clock, no sleep.
[[nodiscard]] std::optional<std::chrono::microseconds> next_retry_delay(
    const RetryPolicy& policy, int attempts_made, std::chrono::microseconds elapsed);

} // namespace pw::state
