#pragma once

#include "common/clock.h"

namespace pw::testing {

// A clock that moves only when the test says so.
class FakeClock final : public Clock {
public:
    // pw::Clock
    [[nodiscard]] TimePoint now() const override { return now_; }

    void advance(std::chrono::steady_clock::duration by) { now_ += by; }

private:
    TimePoint now_{std::chrono::hours(1)};
};

} // namespace pw::testing
