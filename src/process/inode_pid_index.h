#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/unique_fd.h"

namespace pw::process {

// The process that holds a socket open.
struct Owner {
    int pid = 0;
};

// What the index did, so that tests and benchmarks can see the cost of each lookup.
struct IndexCounters {
    std::uint64_t lookups = 0;
    std::uint64_t cache_hits = 0;
    std::uint64_t found_by_refresh = 0;
    std::uint64_t not_found = 0;
    std::uint64_t proc_listings = 0;    // readdir of <proc_root>
    std::uint64_t new_pid_scans = 0;    // step (a): fd directories of PIDs never scanned before
    std::uint64_t uid_rescans = 0;      // step (b): known PIDs of the hinted UID
    std::uint64_t other_rescans = 0;    // step (c): every other known PID
    std::uint64_t links_read = 0;       // readlinkat() calls on fd entries
    std::uint64_t vanished_pids = 0;    // PIDs that were gone from the listing or mid-scan
    std::uint64_t unreadable_pids = 0;  // fd directory not readable (EACCES, or a zombie)
    std::uint64_t budget_exhausted = 0; // lookups that stopped at max_pid_scans_per_find
};

struct IndexLimits {
    // Fd directories scanned per find() at most, so that one unknown inode cannot stall the
    // event loop for a full scan of a large host. Unscanned PIDs are taken up by the next miss.
    std::size_t max_pid_scans_per_find = 512;
};

// Maps socket inodes to the PID holding them by reading <proc_root>/<pid>/fd/* links
// ("socket:[12345]"), refreshed incrementally on a miss instead of a full scan per lookup
// (issue 3, part 1). `proc_root` is "/proc" in the daemon and a temporary directory in tests.
// Not thread-safe: owned by one thread (the event loop, or a worker that owns it outright).
class InodePidIndex {
public:
    InodePidIndex(std::filesystem::path proc_root, const Clock& clock, IndexLimits limits = {});

    // The owner of `inode`. First the cache; on a miss an incremental refresh that stops as soon
    // as the inode is seen: (a) PIDs never scanned before, newest first; (b) known PIDs owned by
    // `uid_hint`, most recently active first; (c) the rest. At most
    // IndexLimits::max_pid_scans_per_find fd directories are read per call.
    [[nodiscard]] std::optional<Owner> find(std::uint64_t inode,
                                            std::optional<std::uint32_t> uid_hint = std::nullopt);

    // Lists <proc_root> and scans every PID not scanned yet, without a budget: for a worker at
    // start-up, so that the first lookups on the event loop are cache hits. Returns PIDs scanned.
    std::size_t scan_new_processes();

    [[nodiscard]] const IndexCounters& counters() const { return counters_; }
    [[nodiscard]] std::size_t known_pids() const { return pids_.size(); }
    [[nodiscard]] std::size_t known_sockets() const { return owners_.size(); }

private:
    struct PidState {
        std::uint32_t uid = 0;
        bool scanned = false;
        Clock::TimePoint last_active;      // when a socket not seen before last appeared in it
        std::uint64_t last_scan = 0;       // scan sequence number; older scans go first on ties
        std::vector<std::uint64_t> inodes; // sorted
    };
    enum class ScanOutcome { Scanned, Unreadable, Vanished };

    bool open_root();
    // Lists <proc_root>: adds new PIDs (unscanned) and forgets PIDs that are gone.
    void list_processes();
    // Reads the fd directory of one PID and replaces its inodes in the cache.
    ScanOutcome scan(int pid, PidState& state);
    // Replaces the inodes of `pid` in the cache with what its fd directory holds now.
    void replace_inodes(int pid, PidState& state, std::vector<std::uint64_t> inodes);
    void forget(int pid);
    [[nodiscard]] bool owned_by(std::uint64_t inode, int pid) const;
    struct RescanOrder {
        std::vector<int> same_uid; // step (b)
        std::vector<int> others;   // step (c)
    };
    // Known PIDs not scanned since `sequence`, best candidates first.
    [[nodiscard]] RescanOrder rescan_order(std::optional<std::uint32_t> uid_hint,
                                           std::uint64_t sequence) const;
    // Scans `pids` in order until `inode` appears or `budget` runs out.
    std::optional<Owner> scan_until_found(const std::vector<int>& pids, std::uint64_t inode,
                                          std::size_t& budget, std::uint64_t& step_counter);

    std::filesystem::path proc_root_;
    const Clock& clock_;
    IndexLimits limits_;
    UniqueFd root_fd_;
    std::unordered_map<std::uint64_t, int> owners_; // socket inode -> PID
    std::unordered_map<int, PidState> pids_;
    std::uint64_t scan_sequence_ = 0;
    IndexCounters counters_;
};

} // namespace pw::process
