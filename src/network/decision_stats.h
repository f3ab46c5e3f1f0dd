#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "firewall/decide.h"
#include "packet/verdict.h"

namespace pw::network {

// What the packet path decided, counted for metrics (GET /metrics): connections by verdict and
// by the step that decided (firewall::DecisionStep), and how long the decision of a new
// connection took from its first packet to its verdict. Plain counters: a few additions per
// new connection. Runs on the event-loop thread only.
class DecisionStats {
public:
    static constexpr std::size_t kVerdicts = 5; // packet::Verdict's values
    // Upper bounds of the latency buckets (Prometheus "le"), in microseconds; one more bucket
    // counts what is slower than the last.
    static constexpr std::array<std::uint32_t, 12> kLatencyBoundsMicros = {
        2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 20000, 100000};

    void decided(const firewall::Decision& decision) {
        ++by_verdict_and_step_.at(static_cast<std::size_t>(decision.verdict))
              .at(static_cast<std::size_t>(decision.step));
    }

    // A new connection decided on its first packet, `took` after the packet came in. (Those
    // that waited for another attribution attempt or for a prompt are not timed: their wait is
    // not the decision's cost.)
    void timed(std::chrono::nanoseconds took);

    [[nodiscard]] std::uint64_t count(packet::Verdict verdict, firewall::DecisionStep step) const {
        return by_verdict_and_step_.at(static_cast<std::size_t>(verdict))
            .at(static_cast<std::size_t>(step));
    }
    // Per bucket (not cumulative); the last one is beyond kLatencyBoundsMicros.
    [[nodiscard]] const std::array<std::uint64_t, kLatencyBoundsMicros.size() + 1>&
    latency_buckets() const {
        return latency_buckets_;
    }
    [[nodiscard]] std::chrono::nanoseconds latency_sum() const { return latency_sum_; }
    [[nodiscard]] std::uint64_t latency_count() const { return latency_count_; }

private:
    std::array<std::array<std::uint64_t, firewall::kDecisionSteps>, kVerdicts>
        by_verdict_and_step_{};
    std::array<std::uint64_t, kLatencyBoundsMicros.size() + 1> latency_buckets_{};
    std::chrono::nanoseconds latency_sum_{0};
    std::uint64_t latency_count_ = 0;
};

} // namespace pw::network
