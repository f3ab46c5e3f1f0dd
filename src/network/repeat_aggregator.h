#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"

namespace pw::network {

// How many identical events are written individually: at most `count` per `window` for each
// kind of event; the rest are counted and summed up in one line when the window ends.
// `count` 0 turns aggregation off (every event is written).
struct RepeatLimit {
    std::uint32_t count = 0;
    std::chrono::seconds window{60};
};

// Rate limit for repeated identical events (issue 10 item 6): a remote peer making 23k inbound
// connections/s wrote 2.4 MB/s of "decided" lines that all said the same thing. Each event has
// a key (what makes two events "the same": not their ID, time or ephemeral port); the first
// `count` events of a key in a window are written, the others only counted, and when the window
// ends one summary ("N more like this") stands for them. Pure bookkeeping over an injected
// clock: no I/O. Runs on the event-loop thread only (owned by the event writer).
class RepeatAggregator {
public:
    enum class Admission : std::uint8_t { Write, Suppress };

    // What a window suppressed: `count` events like `first_line` (the first one suppressed,
    // as written, without its newline), the first at `first` and the last at `last`.
    struct Summary {
        std::string first_line;
        std::uint64_t count = 0;
        Clock::TimePoint first;
        Clock::TimePoint last;
    };

    // The keys followed at once. A flood from many distinct sources must not grow the table
    // without bound: a key beyond this is written without aggregation (and counted).
    static constexpr std::size_t kDefaultMaxKeys = 4096;

    RepeatAggregator(const Clock& clock, RepeatLimit limit, std::size_t max_keys = kDefaultMaxKeys);

    // Whether the event with `key` is written now or only counted. `line` is the event as it
    // would be written; it is kept when it is the first one suppressed in its window.
    [[nodiscard]] Admission admit(std::string_view key, std::string_view line);

    // The summaries of windows that have ended, oldest key first; forgets those windows. Cheap
    // when no window is due (one comparison), so it may run after every batch of packets.
    [[nodiscard]] std::vector<Summary> take_due();
    // Every pending summary, whether or not its window ended (at shutdown or reopen).
    [[nodiscard]] std::vector<Summary> take_all();

    [[nodiscard]] RepeatLimit limit() const { return limit_; }
    // A new limit ends every window: take_all() first, or their summaries are lost.
    void set_limit(RepeatLimit limit);
    // Events suppressed so far, and events written unaggregated because the table was full.
    [[nodiscard]] std::uint64_t suppressed() const { return suppressed_; }
    [[nodiscard]] std::uint64_t untracked() const { return untracked_; }
    [[nodiscard]] std::size_t keys() const { return windows_.size(); }

private:
    struct Window {
        Clock::TimePoint start;
        std::uint32_t written = 0;
        Summary suppressed;
    };

    [[nodiscard]] std::vector<Summary> take(Clock::TimePoint now, bool everything);

    const Clock& clock_;
    RepeatLimit limit_;
    std::size_t max_keys_;
    // std::less<> for lookups by string_view without building a key string per event.
    std::map<std::string, Window, std::less<>> windows_;
    // Summaries of windows that admit() found ended (and restarted) before take_due() came by.
    std::vector<Summary> pending_;
    // The earliest end of any window: take_due() scans the table only from then on.
    Clock::TimePoint next_due_ = Clock::TimePoint::max();
    std::uint64_t suppressed_ = 0;
    std::uint64_t untracked_ = 0;
};

} // namespace pw::network
