#pragma once

#include <cstdint>

namespace pw::history {

// What the history may keep. The daemon maps the settings keys onto it: `history/enable`,
// `history/keep` (days) and `history/maxSize` (bytes).
struct HistorySettings {
    bool enable = true;
    std::int64_t keep_days = 30;
    // The cap on the database's used pages (the file does not shrink below what SQLite has
    // allocated, but freed pages are given back by incremental vacuum after each prune).
    std::uint64_t max_bytes = 1024ULL * 1024 * 1024;
};

} // namespace pw::history
