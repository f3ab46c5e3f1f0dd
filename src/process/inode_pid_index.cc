#include "process/inode_pid_index.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <string_view>
#include <utility>

#include "process/proc_files.h"

namespace pw::process {
namespace {

// "<pid>/fd" without allocating: PIDs have at most 7 digits (PID_MAX_LIMIT is 4194304).
struct FdDirPath {
    std::array<char, 32> text{};

    explicit FdDirPath(int pid) {
        auto* const end = text.data() + text.size() - 4;
        char* ptr = std::to_chars(text.data(), end, pid).ptr;
        for (const char c : std::string_view("/fd")) {
            *ptr++ = c;
        }
        *ptr = '\0';
    }
    [[nodiscard]] const char* c_str() const { return text.data(); }
};

} // namespace

InodePidIndex::InodePidIndex(std::filesystem::path proc_root, const Clock& clock,
                             IndexLimits limits)
    : proc_root_(std::move(proc_root)), clock_(clock), limits_(limits) {}

bool InodePidIndex::open_root() {
    return open_directory_once(root_fd_, proc_root_);
}

std::optional<Owner> InodePidIndex::find(std::uint64_t inode,
                                         std::optional<std::uint32_t> uid_hint) {
    ++counters_.lookups;
    if (const auto hit = owners_.find(inode); hit != owners_.end()) {
        ++counters_.cache_hits;
        return Owner{.pid = hit->second};
    }
    if (!open_root()) {
        ++counters_.not_found;
        return std::nullopt;
    }
    const std::uint64_t call_start = scan_sequence_;
    std::size_t budget = limits_.max_pid_scans_per_find;

    // First, processes never scanned: a socket that is not cached yet most likely belongs to a
    // process that started since the last refresh. Highest PID first, as PIDs count upwards.
    list_processes();
    std::vector<int> fresh;
    for (const auto& [pid, state] : pids_) {
        if (!state.scanned) {
            fresh.push_back(pid);
        }
    }
    std::ranges::sort(fresh, std::greater<>());
    auto owner = scan_until_found(fresh, inode, budget, counters_.new_pid_scans);

    // Second, known processes of the socket's UID, then everybody else: a process that ran
    // before and opened a new socket since. Most recently active first.
    if (!owner && budget > 0) {
        const RescanOrder order = rescan_order(uid_hint, call_start);
        owner = scan_until_found(order.same_uid, inode, budget, counters_.uid_rescans);
        if (!owner) {
            owner = scan_until_found(order.others, inode, budget, counters_.other_rescans);
        }
    }
    if (owner) {
        ++counters_.found_by_refresh;
        return owner;
    }
    if (budget == 0) {
        ++counters_.budget_exhausted;
    }
    ++counters_.not_found;
    return std::nullopt;
}

std::size_t InodePidIndex::scan_new_processes() {
    if (!open_root()) {
        return 0;
    }
    list_processes();
    std::size_t scanned = 0;
    std::vector<int> vanished;
    for (auto& [pid, state] : pids_) {
        if (state.scanned) {
            continue;
        }
        ++scanned;
        ++counters_.new_pid_scans;
        if (scan(pid, state) == ScanOutcome::Vanished) {
            vanished.push_back(pid);
        }
    }
    for (const int pid : vanished) {
        forget(pid);
    }
    return scanned;
}

void InodePidIndex::list_processes() {
    ++counters_.proc_listings;
    auto listing = open_directory(root_fd_.get(), ".");
    if (!listing) {
        return;
    }
    auto dir = directory_stream(std::move(*listing));
    if (!dir) {
        return;
    }
    std::vector<int> present;
    present.reserve(pids_.size() + 64);
    // NOLINTNEXTLINE(concurrency-mt-unsafe): readdir is safe on a stream no other thread uses
    while (const dirent* entry = ::readdir(dir->get())) {
        if (const auto pid = parse_pid(entry->d_name)) {
            present.push_back(*pid);
        }
    }
    for (const int pid : present) {
        pids_.try_emplace(pid); // a new PID starts unscanned
    }
    if (present.size() == pids_.size()) {
        return; // nothing disappeared: every known PID was listed
    }
    std::ranges::sort(present);
    std::vector<int> gone;
    for (const auto& [pid, state] : pids_) {
        if (!std::ranges::binary_search(present, pid)) {
            gone.push_back(pid);
        }
    }
    for (const int pid : gone) {
        ++counters_.vanished_pids;
        forget(pid);
    }
}

InodePidIndex::ScanOutcome InodePidIndex::scan(int pid, PidState& state) {
    if (!state.scanned) {
        // A process just discovered is the likeliest to open sockets soon: ranked as recently
        // active, it is rescanned before the long-idle ones when an unknown socket shows up
        // (scanned before it had any socket, it would otherwise come last).
        state.last_active = clock_.now();
    }
    state.scanned = true;
    state.last_scan = ++scan_sequence_;
    const FdDirPath path(pid);
    auto fd_dir = open_directory(root_fd_.get(), path.c_str());
    if (!fd_dir) {
        // ENOENT: the process exited. EACCES: another user's process and we are not root; it
        // keeps its old inodes, if any, and is tried again on later misses.
        if (fd_dir.error().reason == std::errc::no_such_file_or_directory) {
            ++counters_.vanished_pids;
            return ScanOutcome::Vanished;
        }
        ++counters_.unreadable_pids;
        return ScanOutcome::Unreadable;
    }
    struct stat status{};
    if (::fstat(fd_dir->get(), &status) == 0) {
        state.uid = status.st_uid; // /proc/<pid>/fd belongs to the process's effective UID
    }
    auto dir = directory_stream(std::move(*fd_dir));
    if (!dir) {
        ++counters_.unreadable_pids;
        return ScanOutcome::Unreadable;
    }
    std::vector<std::uint64_t> inodes;
    const int dir_fd = ::dirfd(dir->get());
    // "socket:[18446744073709551615]" is 29 characters; longer targets are files, not sockets.
    std::array<char, 40> target{};
    // NOLINTNEXTLINE(concurrency-mt-unsafe): readdir is safe on a stream no other thread uses
    while (const dirent* entry = ::readdir(dir->get())) {
        if (entry->d_name[0] == '.') {
            continue;
        }
        ++counters_.links_read;
        // An fd closed between readdir() and here gives ENOENT: it is simply not a socket now.
        const ssize_t length = ::readlinkat(dir_fd, entry->d_name, target.data(), target.size());
        if (length <= 0) {
            continue;
        }
        if (const auto inode = parse_socket_link(
                std::string_view(target.data(), static_cast<std::size_t>(length)))) {
            inodes.push_back(*inode);
        }
    }
    std::ranges::sort(inodes);
    const auto [last, end] = std::ranges::unique(inodes);
    inodes.erase(last, end);
    replace_inodes(pid, state, std::move(inodes));
    return ScanOutcome::Scanned;
}

void InodePidIndex::replace_inodes(int pid, PidState& state, std::vector<std::uint64_t> inodes) {
    bool any_new = false;
    for (const std::uint64_t inode : inodes) {
        if (!std::ranges::binary_search(state.inodes, inode)) {
            any_new = true;
        }
        // A socket shared by several processes (inherited over fork) keeps its first owner for
        // as long as that owner holds it.
        auto [slot, inserted] = owners_.try_emplace(inode, pid);
        if (!inserted && slot->second != pid && !owned_by(inode, slot->second)) {
            slot->second = pid;
        }
    }
    for (const std::uint64_t inode : state.inodes) {
        if (std::ranges::binary_search(inodes, inode)) {
            continue;
        }
        if (const auto slot = owners_.find(inode); slot != owners_.end() && slot->second == pid) {
            owners_.erase(slot);
        }
    }
    state.inodes = std::move(inodes);
    if (any_new) {
        state.last_active = clock_.now();
    }
}

bool InodePidIndex::owned_by(std::uint64_t inode, int pid) const {
    const auto state = pids_.find(pid);
    return state != pids_.end() && std::ranges::binary_search(state->second.inodes, inode);
}

void InodePidIndex::forget(int pid) {
    const auto state = pids_.find(pid);
    if (state == pids_.end()) {
        return;
    }
    for (const std::uint64_t inode : state->second.inodes) {
        if (const auto slot = owners_.find(inode); slot != owners_.end() && slot->second == pid) {
            owners_.erase(slot);
        }
    }
    pids_.erase(state);
}

InodePidIndex::RescanOrder InodePidIndex::rescan_order(std::optional<std::uint32_t> uid_hint,
                                                       std::uint64_t sequence) const {
    // Most recently active first; among equals the one scanned longest ago, so that a lookup cut
    // short by the budget is continued by the next one instead of repeating the same PIDs.
    struct Candidate {
        Clock::TimePoint last_active;
        std::uint64_t last_scan;
        int pid;
    };
    std::vector<Candidate> same_uid;
    std::vector<Candidate> others;
    for (const auto& [pid, state] : pids_) {
        if (!state.scanned || state.last_scan > sequence) {
            continue; // scanned in this very call already
        }
        const Candidate candidate{
            .last_active = state.last_active, .last_scan = state.last_scan, .pid = pid};
        (uid_hint && state.uid == *uid_hint ? same_uid : others).push_back(candidate);
    }
    const auto better = [](const Candidate& a, const Candidate& b) {
        if (a.last_active != b.last_active) {
            return a.last_active > b.last_active;
        }
        return a.last_scan < b.last_scan;
    };
    RescanOrder order;
    for (auto [from, to] :
         {std::pair{&same_uid, &order.same_uid}, std::pair{&others, &order.others}}) {
        std::ranges::sort(*from, better);
        to->reserve(from->size());
        for (const Candidate& candidate : *from) {
            to->push_back(candidate.pid);
        }
    }
    return order;
}

std::optional<Owner> InodePidIndex::scan_until_found(const std::vector<int>& pids,
                                                     std::uint64_t inode, std::size_t& budget,
                                                     std::uint64_t& step_counter) {
    for (const int pid : pids) {
        if (budget == 0) {
            return std::nullopt;
        }
        --budget;
        ++step_counter;
        const auto state = pids_.find(pid);
        if (state == pids_.end()) {
            continue;
        }
        if (scan(pid, state->second) == ScanOutcome::Vanished) {
            forget(pid);
            continue;
        }
        if (owned_by(inode, pid)) {
            return Owner{.pid = owners_.at(inode)};
        }
    }
    return std::nullopt;
}

} // namespace pw::process
