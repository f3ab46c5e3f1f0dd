// Latency of InodePidIndex::find() on the real /proc with 200 and 1,000 idle background
// processes holding 5 UDP sockets each (issue 3, part 6). Not a test: run it by hand.
//   build/<preset>/tests/process/pw_inode_index_bench
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <benchmark/benchmark.h>
#include <fmt/core.h>

#include "common/clock.h"
#include "common/unique_fd.h"
#include "process/inode_pid_index.h"

namespace {

using pw::UniqueFd;
using pw::process::InodePidIndex;
using Nanoseconds = std::chrono::duration<double, std::nano>;

constexpr int kSocketsPerChild = 5;

void write_all(int fd, const void* data, std::size_t size) {
    const auto* bytes = static_cast<const char*>(data);
    while (size > 0) {
        const ssize_t n = ::write(fd, bytes, size);
        if (n <= 0) {
            throw std::system_error(errno, std::system_category(), "write");
        }
        bytes += n;
        size -= static_cast<std::size_t>(n);
    }
}

bool read_all(int fd, void* data, std::size_t size) {
    auto* bytes = static_cast<char*>(data);
    while (size > 0) {
        const ssize_t n = ::read(fd, bytes, size);
        if (n <= 0) {
            return false;
        }
        bytes += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

using SocketInodes = std::array<std::uint64_t, kSocketsPerChild>;

// Idle children, each holding kSocketsPerChild UDP sockets. They are forked by a spawner
// process, not by the benchmark itself: a fork() marks the parent's memory copy-on-write, and
// the page faults would land in the measured find() calls. The destructor closes the command
// socket; the spawner then kills and reaps every child and exits. Should this program die, the
// kernel closes the socket and the same happens.
class IdleChildren {
public:
    IdleChildren() {
        std::array<int, 2> fds{};
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds.data()) != 0) {
            throw std::system_error(errno, std::system_category(), "socketpair");
        }
        spawner_ = ::fork();
        if (spawner_ < 0) {
            throw std::system_error(errno, std::system_category(), "fork");
        }
        if (spawner_ == 0) {
            ::close(fds[0]);
            run_spawner(fds[1]);
        }
        ::close(fds[1]);
        command_.reset(fds[0]);
    }
    ~IdleChildren() {
        command_.reset();
        ::waitpid(spawner_, nullptr, 0);
    }
    IdleChildren(const IdleChildren&) = delete;
    IdleChildren& operator=(const IdleChildren&) = delete;
    IdleChildren(IdleChildren&&) = delete;
    IdleChildren& operator=(IdleChildren&&) = delete;

    // Starts one child and returns the inodes of its sockets.
    SocketInodes spawn() {
        const char request = 's';
        write_all(command_.get(), &request, 1);
        SocketInodes inodes{};
        if (!read_all(command_.get(), inodes.data(), sizeof(inodes))) {
            throw std::runtime_error("spawner did not report the child's sockets");
        }
        return inodes;
    }

private:
    [[noreturn]] static void run_spawner(int command) {
        std::vector<pid_t> children;
        char request = 0;
        while (::read(command, &request, 1) == 1) {
            const pid_t pid = ::fork();
            if (pid == 0) {
                run_child(command);
            }
            if (pid > 0) {
                children.push_back(pid);
            }
        }
        for (const pid_t pid : children) {
            ::kill(pid, SIGKILL);
        }
        for (const pid_t pid : children) {
            ::waitpid(pid, nullptr, 0);
        }
        ::_exit(0);
    }

    [[noreturn]] static void run_child(int command) {
        SocketInodes inodes{};
        for (auto& inode : inodes) {
            const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
            struct stat status{};
            if (fd < 0 || ::fstat(fd, &status) != 0) {
                ::_exit(1);
            }
            inode = status.st_ino;
        }
        write_all(command, inodes.data(), sizeof(inodes));
        ::close(command);
        ::pause(); // until the spawner's SIGKILL
        ::_exit(0);
    }

    pid_t spawner_ = -1;
    UniqueFd command_;
};

struct Percentiles {
    double p50_us = 0;
    double p99_us = 0;
    double max_us = 0;
};

Percentiles percentiles(std::vector<double> nanoseconds) {
    std::ranges::sort(nanoseconds);
    const auto at = [&](double fraction) {
        const auto index = static_cast<std::size_t>(fraction * double(nanoseconds.size() - 1));
        return nanoseconds[index] / 1000.0;
    };
    return {.p50_us = at(0.50), .p99_us = at(0.99), .max_us = nanoseconds.back() / 1000.0};
}

template <typename Function>
double time_ns(Function&& function) {
    const auto start = std::chrono::steady_clock::now();
    function();
    return Nanoseconds(std::chrono::steady_clock::now() - start).count();
}

// The seed's method, for comparison: std::filesystem over every /proc/<pid>/fd per lookup.
std::optional<int> seed_find(std::uint64_t inode) {
    const std::string wanted = "socket:[" + std::to_string(inode) + "]";
    std::error_code error;
    for (const auto& process : std::filesystem::directory_iterator("/proc", error)) {
        const std::string name = process.path().filename().string();
        if (!std::ranges::all_of(name, [](char c) { return c >= '0' && c <= '9'; })) {
            continue;
        }
        std::error_code fd_error;
        for (const auto& fd :
             std::filesystem::directory_iterator(process.path() / "fd", fd_error)) {
            std::error_code link_error;
            if (std::filesystem::read_symlink(fd.path(), link_error).string() == wanted) {
                return std::stoi(name);
            }
        }
    }
    return std::nullopt;
}

std::size_t count_processes() {
    std::size_t count = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        const std::string name = entry.path().filename().string();
        count += std::ranges::all_of(name, [](char c) { return c >= '0' && c <= '9'; }) ? 1 : 0;
    }
    return count;
}

void run(int children_count) {
    IdleChildren children;
    std::vector<std::uint64_t> inodes;
    inodes.reserve(static_cast<std::size_t>(children_count) * kSocketsPerChild);
    for (int i = 0; i < children_count; ++i) {
        const auto child_inodes = children.spawn();
        inodes.insert(inodes.end(), child_inodes.begin(), child_inodes.end());
    }
    const auto uid = static_cast<std::uint32_t>(::geteuid());
    const pw::SteadyClock clock;
    InodePidIndex index("/proc", clock, {.max_pid_scans_per_find = 4096});
    fmt::print("\n== {} idle children x {} UDP sockets ({} processes in /proc) ==\n",
               children_count, kSocketsPerChild, count_processes());

    std::size_t scanned = 0;
    const double full_scan = time_ns([&] { scanned = index.scan_new_processes(); });
    fmt::print("full scan (scan_new_processes): {:.2f} ms, {} PIDs, {} fd links read\n",
               full_scan / 1e6, scanned, index.counters().links_read);

    // (a) Cache hits, random order.
    std::mt19937_64 random(42);
    constexpr int kHitSamples = 100000;
    std::vector<double> hits;
    hits.reserve(kHitSamples);
    for (int i = 0; i < kHitSamples; ++i) {
        const std::uint64_t inode = inodes[random() % inodes.size()];
        hits.push_back(time_ns([&] { benchmark::DoNotOptimize(index.find(inode, uid)); }));
    }
    const Percentiles hit = percentiles(hits);
    fmt::print("(a) cache hit:            p50 {:9.2f} us  p99 {:9.2f} us  max {:9.2f} us  (n={})\n",
               hit.p50_us, hit.p99_us, hit.max_us, kHitSamples);

    // (b) A process started after the index was built: one new child per sample, untimed.
    constexpr int kFreshSamples = 200;
    std::vector<double> fresh;
    fresh.reserve(kFreshSamples);
    int not_found = 0;
    const auto before = index.counters();
    for (int i = 0; i < kFreshSamples; ++i) {
        const auto child_inodes = children.spawn();
        std::optional<pw::process::Owner> owner;
        fresh.push_back(time_ns([&] { owner = index.find(child_inodes[2], uid); }));
        not_found += owner.has_value() ? 0 : 1;
    }
    const Percentiles miss = percentiles(fresh);
    const auto after = index.counters();
    const auto pid_scans = [](const pw::process::IndexCounters& counters) {
        return counters.new_pid_scans + counters.uid_rescans + counters.other_rescans;
    };
    fmt::print(
        "(b) not-yet-scanned PID:  p50 {:9.2f} us  p99 {:9.2f} us  max {:9.2f} us  (n={}, "
        "{} not found, {:.1f} PIDs and {:.1f} links read per lookup)\n",
        miss.p50_us, miss.p99_us, miss.max_us, kFreshSamples, not_found,
        double(pid_scans(after) - pid_scans(before)) / kFreshSamples,
        double(after.links_read - before.links_read) / kFreshSamples);

    // Worst case: an inode nobody holds makes every known PID be read again (budget permitting).
    constexpr int kAbsentSamples = 20;
    std::vector<double> unknown;
    unknown.reserve(kAbsentSamples);
    for (int i = 0; i < kAbsentSamples; ++i) {
        unknown.push_back(time_ns([&] { benchmark::DoNotOptimize(index.find(1, uid)); }));
    }
    const Percentiles absent = percentiles(unknown);
    fmt::print("    unknown inode (rescan of every PID): p50 {:9.2f} us  max {:9.2f} us\n",
               absent.p50_us, absent.max_us);

    // The seed's method on the same host, for comparison.
    constexpr int kSeedSamples = 10;
    std::vector<double> seed;
    seed.reserve(kSeedSamples);
    for (int i = 0; i < kSeedSamples; ++i) {
        const std::uint64_t inode = inodes[random() % inodes.size()];
        seed.push_back(time_ns([&] { benchmark::DoNotOptimize(seed_find(inode)); }));
    }
    fmt::print("    seed method (std::filesystem scan per lookup): p50 {:9.2f} us\n",
               percentiles(seed).p50_us);
}

} // namespace

int main() {
    try {
        for (const int children : {200, 1000}) {
            run(children);
        }
    } catch (const std::exception& error) {
        fmt::print(stderr, "pw_inode_index_bench: {}\n", error.what());
        return 1;
    }
    return 0;
}
