#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "firewall/decide.h"

namespace pw::network {

// Filtering paused by a person (`portwarden pause --for 5m`, POST /api/v1/pause): while paused,
// nothing is blocked and nobody is asked. A decision that would block, drop or ask permits
// instead and says what it would have been; accepts and reroutes (astray DNS to our nameserver)
// stand, so that names are still learnt and connections still named. A pause always ends: at
// `until` (wall clock, so that a suspended laptop does not stay open for the time it slept:
// the daemon's one-second tick calls resume() once it has passed), at resume(), or when
// portwarden restarts (it is not stored). Whoever changes it re-evaluates the live connections.
// Runs on the event-loop thread only.
class FilterPause {
public:
    using WallClock = std::chrono::system_clock;

    void pause(WallClock::time_point until);
    void resume() {
        until_.reset();
        note_.clear();
    }

    [[nodiscard]] bool active() const { return until_.has_value(); }
    [[nodiscard]] std::optional<WallClock::time_point> until() const { return until_; }
    // Whether the pause has run out at `now` (the caller then resumes).
    [[nodiscard]] bool ended_by(WallClock::time_point now) const {
        return until_.has_value() && now >= *until_;
    }

    // "filtering paused until 2026-12-05T12:40:00Z", for reasons; empty when not paused.
    [[nodiscard]] const std::string& note() const { return note_; }

    // Applies the pause to `decision` when it is active: see the class comment.
    void apply(firewall::Decision& decision) const;

private:
    std::optional<WallClock::time_point> until_;
    std::string note_; // "filtering paused until 2026-12-05T12:40:00Z"
};

} // namespace pw::network
