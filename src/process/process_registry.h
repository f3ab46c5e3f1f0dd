#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "process/process_info.h"

namespace pw::process {

struct RegistryOptions {
    // How long an entry outlives its process: connections and DNS answers that arrive after the
    // exit (fire-and-forget UDP, lingering TCP) still find who they belonged to.
    std::chrono::seconds keep_after_exit{std::chrono::minutes(5)};
    // environ (packaging tags, the environment of env fingerprints); a bigger one is cut at the
    // last whole entry, not rejected.
    std::size_t max_environ_bytes = std::size_t{64} * 1024;
    // The firewall's own PID, whose entry is tagged IdentityKind::Portwarden; nullopt = getpid().
    std::optional<int> self_pid = std::nullopt;
};

struct RegistryCounters {
    std::uint64_t lookups = 0;
    std::uint64_t cache_hits = 0;
    std::uint64_t loads = 0;    // ProcessInfo built from /proc
    std::uint64_t failures = 0; // process gone or unreadable
    std::uint64_t expired = 0;
};

// Process details (executable, command line, user, packaging tags) by PID, cached per
// PID + start time so that a reused PID gives a new entry (issue 3, part 3). `proc_root` is
// "/proc" in the daemon and a temporary directory in tests. Runs on the event-loop thread only.
class ProcessRegistry {
public:
    ProcessRegistry(std::filesystem::path proc_root, const Clock& clock,
                    RegistryOptions options = {});

    // The process now running as `pid`. Costs one read of /proc/<pid>/stat when cached, and a
    // handful of /proc reads when not. PID 0 is the kernel. Fails when the process is gone or
    // its stat is unreadable; a field that cannot be read (exe of another user's process when
    // not root, environ) is left empty instead.
    [[nodiscard]] Result<std::shared_ptr<const ProcessInfo>> lookup(int pid);

    // The process `pid` that started at `start_time` (clock ticks after boot, as /proc/<pid>/stat
    // field 22), as the kernel's socket records name it. A cached entry answers without any
    // syscall; otherwise as lookup(), failing when /proc/<pid> is now another process (the PID
    // was reused) or gone.
    [[nodiscard]] Result<std::shared_ptr<const ProcessInfo>> lookup_started(
        int pid, std::uint64_t start_time);

    // Caches a process that was described from elsewhere (the kernel's exec records) because
    // it was gone before /proc could be read. It expires like any process that is gone.
    void adopt(std::shared_ptr<const ProcessInfo> info);

    // The parent chain of `process`, nearest first: its parent, grandparent, ... up to
    // kMaxAncestors of them. Stops below PID 1 (init is everyone's ancestor and says nothing),
    // at a kernel thread, at a parent that is gone, at a PID seen before in the chain, and at a
    // "parent" that started after its child (the real parent exited and its PID was reused).
    // Each ancestor costs what lookup() costs: one stat read when cached.
    [[nodiscard]] std::vector<std::shared_ptr<const ProcessInfo>> ancestors(
        const ProcessInfo& process);
    static constexpr std::size_t kMaxAncestors = 16;

    // The name of `uid`, or the UID as text when it has none. Cached: NSS may be slow.
    const std::string& user_name(std::uint32_t uid);

    // Forgets entries whose process has been gone (no /proc/<pid>/stat, or another start time)
    // for RegistryOptions::keep_after_exit. Call it from a periodic timer. Returns entries removed.
    std::size_t expire();

    [[nodiscard]] std::size_t size() const { return entries_.size(); }
    [[nodiscard]] const RegistryCounters& counters() const { return counters_; }

private:
    struct Key {
        int pid = 0;
        std::uint64_t start_time = 0;
        bool operator==(const Key&) const = default;
    };
    struct KeyHash {
        std::size_t operator()(const Key& key) const noexcept {
            return std::hash<std::uint64_t>{}((key.start_time << 22U) ^
                                              static_cast<std::uint64_t>(key.pid));
        }
    };
    struct Entry {
        std::shared_ptr<const ProcessInfo> info;
        std::optional<Clock::TimePoint> gone_since;
    };

    bool open_root();
    [[nodiscard]] Result<std::shared_ptr<const ProcessInfo>> load(int pid_dir,
                                                                  const StatFields& stat);
    void add_identity(int pid_dir, ProcessInfo& info) const;
    void add_packaging(int pid_dir, ProcessInfo& info) const;
    static void add_cgroup(int pid_dir, ProcessInfo& info);
    [[nodiscard]] bool alive(const Key& key) const;

    std::filesystem::path proc_root_;
    const Clock& clock_;
    RegistryOptions options_;
    int self_pid_;
    UniqueFd root_fd_;
    std::unordered_map<Key, Entry, KeyHash> entries_;
    std::unordered_map<std::uint32_t, std::string> users_; // getpwuid_r may ask NSS: cache it
    RegistryCounters counters_;
};

} // namespace pw::process
