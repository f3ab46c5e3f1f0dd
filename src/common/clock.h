#pragma once

#include <chrono>

namespace pw {

// Time is injected so that expiry logic is tested without sleeping (CONVENTIONS rule 17).
// SteadyClock in the daemon; tests use FakeClock from tests/fakes/.
class Clock {
public:
    using TimePoint = std::chrono::steady_clock::time_point;
    virtual ~Clock() = default;
    [[nodiscard]] virtual TimePoint now() const = 0;
};

class SteadyClock final : public Clock {
public:
    // pw::Clock
    [[nodiscard]] TimePoint now() const override { return std::chrono::steady_clock::now(); }
};

} // namespace pw
