#include "network/decision_stats.h"

#include <algorithm>

namespace pw::network {

void DecisionStats::timed(std::chrono::nanoseconds took) {
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(took).count();
    const auto bucket = std::ranges::lower_bound(
        kLatencyBoundsMicros, micros, std::ranges::less{},
        [](std::uint32_t bound) { return static_cast<std::int64_t>(bound); });
    ++latency_buckets_.at(static_cast<std::size_t>(bucket - kLatencyBoundsMicros.begin()));
    latency_sum_ += took;
    ++latency_count_;
}

} // namespace pw::network
