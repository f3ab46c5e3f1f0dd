#include "network/repeat_aggregator.h"

#include <algorithm>
#include <utility>

namespace pw::network {

RepeatAggregator::RepeatAggregator(const Clock& clock, RepeatLimit limit, std::size_t max_keys)
    : clock_(clock), limit_(limit), max_keys_(max_keys) {}

RepeatAggregator::Admission RepeatAggregator::admit(std::string_view key, std::string_view line) {
    if (limit_.count == 0) {
        return Admission::Write;
    }
    const Clock::TimePoint now = clock_.now();
    auto found = windows_.find(key);
    if (found != windows_.end() && now >= found->second.start + limit_.window) {
        // The window ended before take_due() came by: keep its summary for take_due() and
        // start a new window with this event.
        if (found->second.suppressed.count > 0) {
            pending_.push_back(std::move(found->second.suppressed));
        }
        found->second = Window{.start = now, .written = 0, .suppressed = {}};
        next_due_ = std::min(next_due_, now + limit_.window);
    }
    if (found == windows_.end()) {
        if (windows_.size() >= max_keys_) {
            ++untracked_;
            return Admission::Write;
        }
        found =
            windows_.emplace(std::string(key), Window{.start = now, .written = 0, .suppressed = {}})
                .first;
        next_due_ = std::min(next_due_, now + limit_.window);
    }
    Window& window = found->second;
    if (window.written < limit_.count) {
        ++window.written;
        return Admission::Write;
    }
    Summary& summary = window.suppressed;
    if (summary.count == 0) {
        summary.first_line.assign(line);
        summary.first = now;
    }
    ++summary.count;
    summary.last = now;
    ++suppressed_;
    return Admission::Suppress;
}

void RepeatAggregator::set_limit(RepeatLimit limit) {
    limit_ = limit;
    windows_.clear();
    pending_.clear();
    next_due_ = Clock::TimePoint::max();
}

std::vector<RepeatAggregator::Summary> RepeatAggregator::take_due() {
    const Clock::TimePoint now = clock_.now();
    if (now < next_due_ && pending_.empty()) {
        return {};
    }
    return take(now, false);
}

std::vector<RepeatAggregator::Summary> RepeatAggregator::take_all() {
    return take(clock_.now(), true);
}

std::vector<RepeatAggregator::Summary> RepeatAggregator::take(Clock::TimePoint now,
                                                              bool everything) {
    std::vector<Summary> summaries = std::exchange(pending_, {});
    next_due_ = Clock::TimePoint::max();
    for (auto entry = windows_.begin(); entry != windows_.end();) {
        Window& window = entry->second;
        const Clock::TimePoint end = window.start + limit_.window;
        if (!everything && now < end) {
            next_due_ = std::min(next_due_, end);
            ++entry;
            continue;
        }
        if (window.suppressed.count > 0) {
            summaries.push_back(std::move(window.suppressed));
        }
        entry = windows_.erase(entry);
    }
    return summaries;
}

} // namespace pw::network
