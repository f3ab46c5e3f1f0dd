#pragma once

#include <deque>
#include <functional>
#include <utility>

#include "common/guarded.h"
#include "profile/database.h"

namespace pw::testing {

// The owner's event loop in miniature: the database's worker posts completions here, and the
// test runs them on its own thread when it chooses (run()).
class TestLoop {
public:
    profile::Database::Poster poster() {
        return [this](std::function<void()> call) {
            pending_.with_lock([&](auto& calls) { calls.push_back(std::move(call)); });
        };
    }
    // Runs every completion posted so far, on the test's thread.
    void run() {
        auto calls = pending_.with_lock([](auto& pending) { return std::exchange(pending, {}); });
        for (auto& call : calls) {
            call();
        }
    }

private:
    Guarded<std::deque<std::function<void()>>> pending_;
};

} // namespace pw::testing
