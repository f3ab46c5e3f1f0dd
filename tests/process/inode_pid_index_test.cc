#include "process/inode_pid_index.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "fakes/fake_clock.h"
#include "fakes/fake_proc_tree.h"

namespace pw::process {
namespace {

using std::chrono::seconds;
using testing::FakeProcess;
using testing::FakeProcTree;

class InodePidIndexTest : public ::testing::Test {
protected:
    FakeProcTree proc_;
    pw::testing::FakeClock clock_;
};

TEST_F(InodePidIndexTest, FindsSocketOfNewProcess) {
    proc_.add_fd_directory(4242);
    proc_.add_socket(4242, 3, 777);
    InodePidIndex index(proc_.root(), clock_);

    const auto owner = index.find(777, std::nullopt);
    ASSERT_TRUE(owner.has_value());
    EXPECT_EQ(owner->pid, 4242);
    EXPECT_EQ(index.counters().new_pid_scans, 1U);
    EXPECT_EQ(index.counters().found_by_refresh, 1U);
}

TEST_F(InodePidIndexTest, SecondLookupIsACacheHitWithoutReadingProc) {
    proc_.add_fd_directory(10);
    proc_.add_socket(10, 3, 1);
    proc_.add_socket(10, 4, 2);
    InodePidIndex index(proc_.root(), clock_);

    ASSERT_TRUE(index.find(1, std::nullopt).has_value());
    const IndexCounters before = index.counters();
    const auto owner = index.find(2, std::nullopt); // cached by the scan that found inode 1
    ASSERT_TRUE(owner.has_value());
    EXPECT_EQ(owner->pid, 10);
    EXPECT_EQ(index.counters().cache_hits, before.cache_hits + 1);
    EXPECT_EQ(index.counters().links_read, before.links_read);
    EXPECT_EQ(index.counters().proc_listings, before.proc_listings);
}

TEST_F(InodePidIndexTest, FindsProcessStartedAfterTheFirstScan) {
    proc_.add_fd_directory(100);
    proc_.add_socket(100, 3, 5000);
    InodePidIndex index(proc_.root(), clock_);
    EXPECT_EQ(index.scan_new_processes(), 1U);

    proc_.add_fd_directory(200);
    proc_.add_socket(200, 7, 6000);
    const auto owner = index.find(6000, std::nullopt);
    ASSERT_TRUE(owner.has_value());
    EXPECT_EQ(owner->pid, 200);
    // Only the new PID was scanned: the known one was not read again.
    EXPECT_EQ(index.counters().new_pid_scans, 2U);
    EXPECT_EQ(index.counters().uid_rescans + index.counters().other_rescans, 0U);
}

TEST_F(InodePidIndexTest, FindsNewSocketOfKnownProcessByRescanning) {
    proc_.add_fd_directory(300);
    proc_.add_socket(300, 3, 1);
    proc_.add_fd_directory(301);
    proc_.add_socket(301, 3, 2);
    InodePidIndex index(proc_.root(), clock_);
    EXPECT_EQ(index.scan_new_processes(), 2U);

    proc_.add_socket(301, 9, 3); // opened after the scan
    const auto owner = index.find(3, std::nullopt);
    ASSERT_TRUE(owner.has_value());
    EXPECT_EQ(owner->pid, 301);
    EXPECT_GE(index.counters().other_rescans, 1U);
}

TEST_F(InodePidIndexTest, RescansProcessesOfTheHintedUidFirst) {
    const auto uid = static_cast<std::uint32_t>(::geteuid()); // owner of the fake fd dirs
    for (int pid = 1; pid <= 20; ++pid) {
        proc_.add_fd_directory(pid);
    }
    InodePidIndex index(proc_.root(), clock_);
    EXPECT_EQ(index.scan_new_processes(), 20U);

    proc_.add_socket(7, 4, 99);
    ASSERT_TRUE(index.find(99, uid).has_value());
    EXPECT_EQ(index.counters().other_rescans, 0U);
    EXPECT_GE(index.counters().uid_rescans, 1U);
}

TEST_F(InodePidIndexTest, HintedUidWithoutProcessesFallsBackToTheRest) {
    const auto other_uid = static_cast<std::uint32_t>(::geteuid()) + 1;
    for (int pid = 1; pid <= 20; ++pid) {
        proc_.add_fd_directory(pid);
    }
    InodePidIndex index(proc_.root(), clock_);
    EXPECT_EQ(index.scan_new_processes(), 20U);

    proc_.add_socket(8, 4, 100);
    ASSERT_TRUE(index.find(100, other_uid).has_value());
    EXPECT_EQ(index.counters().uid_rescans, 0U);
    EXPECT_GE(index.counters().other_rescans, 1U);
}

TEST_F(InodePidIndexTest, MostRecentlyActiveProcessIsRescannedFirst) {
    for (int pid = 1; pid <= 50; ++pid) {
        proc_.add_fd_directory(pid);
        proc_.add_socket(pid, 3, 1000 + static_cast<std::uint64_t>(pid));
    }
    InodePidIndex index(proc_.root(), clock_);
    EXPECT_EQ(index.scan_new_processes(), 50U);

    // PID 17 opens a socket, is found, and so becomes the most recently active.
    clock_.advance(seconds(1));
    proc_.add_socket(17, 4, 5000);
    ASSERT_TRUE(index.find(5000, std::nullopt).has_value());

    // Its next new socket is found with one rescan.
    clock_.advance(seconds(1));
    proc_.add_socket(17, 5, 5001);
    const std::uint64_t before = index.counters().other_rescans;
    const auto owner = index.find(5001, std::nullopt);
    ASSERT_TRUE(owner.has_value());
    EXPECT_EQ(owner->pid, 17);
    EXPECT_EQ(index.counters().other_rescans, before + 1);
}

TEST_F(InodePidIndexTest, ForgetsProcessesThatExited) {
    proc_.add_fd_directory(400);
    proc_.add_socket(400, 3, 42);
    proc_.add_fd_directory(401);
    InodePidIndex index(proc_.root(), clock_);
    ASSERT_TRUE(index.find(42, std::nullopt).has_value());
    EXPECT_EQ(index.known_pids(), 2U);

    proc_.remove(400);
    EXPECT_FALSE(index.find(43, std::nullopt).has_value()); // a miss lists /proc again
    EXPECT_EQ(index.known_pids(), 1U);
    EXPECT_EQ(index.counters().vanished_pids, 1U);
    // Its sockets left the cache with it.
    EXPECT_FALSE(index.find(42, std::nullopt).has_value());
}

TEST_F(InodePidIndexTest, ClosedSocketLeavesTheCacheOnRescan) {
    proc_.add_fd_directory(500);
    proc_.add_socket(500, 3, 1);
    InodePidIndex index(proc_.root(), clock_);
    ASSERT_TRUE(index.find(1, std::nullopt).has_value());
    EXPECT_EQ(index.known_sockets(), 1U);

    proc_.close_fd(500, 3);
    proc_.add_socket(500, 4, 2);
    ASSERT_TRUE(index.find(2, std::nullopt).has_value());
    EXPECT_EQ(index.known_sockets(), 1U);
    EXPECT_FALSE(index.find(1, std::nullopt).has_value());
}

TEST_F(InodePidIndexTest, ProcessThatExitsBeforeItsFdsAreReadIsSkipped) {
    proc_.add_fd_directory(600);
    // Listed in /proc, but its fd directory is already gone (exit between readdir and openat).
    std::filesystem::remove_all(proc_.dir(600) / "fd");
    proc_.add_fd_directory(601);
    proc_.add_socket(601, 3, 7);
    InodePidIndex index(proc_.root(), clock_);

    const auto owner = index.find(7, std::nullopt);
    ASSERT_TRUE(owner.has_value());
    EXPECT_EQ(owner->pid, 601);
    EXPECT_FALSE(index.find(8, std::nullopt).has_value());
}

TEST_F(InodePidIndexTest, DanglingAndNonSocketFdsAreIgnored) {
    proc_.add_fd_directory(700);
    proc_.add_fd(700, 3, "/var/log/some/very/long/path/name/that/is/longer/than/the/buffer.log");
    proc_.add_fd(700, 4, "pipe:[123]");
    proc_.add_fd(700, 5, "socket:[12x]");
    proc_.add_socket(700, 6, 88);
    InodePidIndex index(proc_.root(), clock_);
    ASSERT_TRUE(index.find(88, std::nullopt).has_value());
    EXPECT_EQ(index.known_sockets(), 1U);
    EXPECT_FALSE(index.find(123, std::nullopt).has_value());
}

TEST_F(InodePidIndexTest, WorkPerLookupIsBounded) {
    for (int pid = 1; pid <= 30; ++pid) {
        proc_.add_fd_directory(pid);
    }
    proc_.add_socket(1, 3, 31337); // lowest PID: scanned last
    InodePidIndex index(proc_.root(), clock_, IndexLimits{.max_pid_scans_per_find = 10});

    EXPECT_FALSE(index.find(31337, std::nullopt).has_value());
    EXPECT_EQ(index.counters().new_pid_scans, 10U);
    EXPECT_EQ(index.counters().budget_exhausted, 1U);
}

TEST_F(InodePidIndexTest, LookupCutShortIsContinuedByTheNext) {
    for (int pid = 1; pid <= 30; ++pid) {
        proc_.add_fd_directory(pid);
    }
    proc_.add_socket(1, 3, 31337);
    InodePidIndex index(proc_.root(), clock_, IndexLimits{.max_pid_scans_per_find = 10});
    EXPECT_FALSE(index.find(31337, std::nullopt).has_value());
    EXPECT_FALSE(index.find(31337, std::nullopt).has_value());
    // The third lookup reaches the last unscanned PIDs and finds it.
    const auto owner = index.find(31337, std::nullopt);
    ASSERT_TRUE(owner.has_value());
    EXPECT_EQ(owner->pid, 1);
    EXPECT_EQ(index.counters().new_pid_scans, 30U);
}

// Found by the system benchmark: a process discovered (scanned) before it opened any socket
// must not rank behind every long-known process when its first socket shows up.
TEST_F(InodePidIndexTest, ProcessScannedBeforeItsFirstSocketIsFoundFirstLater) {
    for (int pid = 1; pid <= 30; ++pid) {
        proc_.add_fd_directory(pid);
        proc_.add_socket(pid, 3, 1000 + static_cast<std::uint64_t>(pid));
    }
    InodePidIndex index(proc_.root(), clock_, IndexLimits{.max_pid_scans_per_find = 5});
    index.scan_new_processes();
    clock_.advance(seconds(10));
    proc_.add_fd_directory(500); // started, no socket yet
    proc_.add_fd_directory(40);
    proc_.add_socket(40, 3, 4040);
    ASSERT_TRUE(index.find(4040, std::nullopt).has_value()); // scans 500 (empty) on the way
    clock_.advance(seconds(10));
    proc_.add_socket(500, 3, 5000);
    const auto owner = index.find(5000, std::nullopt);
    ASSERT_TRUE(owner.has_value());
    EXPECT_EQ(owner->pid, 500);
}

TEST_F(InodePidIndexTest, MissingProcRootFindsNothing) {
    InodePidIndex index(proc_.root() / "absent", clock_);
    EXPECT_FALSE(index.find(1, std::nullopt).has_value());
    EXPECT_EQ(index.counters().not_found, 1U);
}

// Runs `check` without root (root reads every directory whatever its mode): in a child that
// drops to nobody when the test runs as root. Returns the child's exit status, 0 for success.
template <typename Check>
int run_unprivileged(Check check) {
    if (::geteuid() != 0) {
        return check() ? 0 : 1;
    }
    const pid_t child = ::fork();
    if (child == 0) {
        constexpr uid_t kNobody = 65534;
        const bool dropped = ::setgid(kNobody) == 0 && ::setuid(kNobody) == 0;
        ::_exit(!dropped ? 2 : (check() ? 0 : 1));
    }
    int status = 0;
    if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status)) {
        return -1;
    }
    return WEXITSTATUS(status);
}

TEST_F(InodePidIndexTest, UnreadableFdDirectoryIsCountedAndSkipped) {
    proc_.add_fd_directory(800);
    proc_.add_socket(800, 3, 1);
    proc_.add_fd_directory(801);
    proc_.add_socket(801, 3, 2);
    ASSERT_EQ(::chmod(proc_.root().c_str(), 0755), 0); // mkdtemp made it 0700
    ASSERT_EQ(::chmod((proc_.dir(800) / "fd").c_str(), 0), 0);

    const int status = run_unprivileged([&]() {
        InodePidIndex index(proc_.root(), clock_);
        const bool hidden = !index.find(1, std::nullopt).has_value(); // PID 800 is unreadable
        const bool denied = index.counters().unreadable_pids >= 1;
        const bool vanished = index.counters().vanished_pids > 0;
        const auto owner = index.find(2, std::nullopt);
        const bool found_other = owner.has_value() && owner->pid == 801;
        return hidden && denied && !vanished && found_other && index.known_pids() == 2;
    });
    EXPECT_EQ(status, 0);
    ::chmod((proc_.dir(800) / "fd").c_str(), 0700); // so that the tree can be removed
}

TEST_F(InodePidIndexTest, SharedSocketKeepsItsFirstOwner) {
    proc_.add_fd_directory(900);
    proc_.add_socket(900, 3, 55);
    proc_.add_fd_directory(901);
    proc_.add_socket(901, 3, 55); // inherited over fork
    InodePidIndex index(proc_.root(), clock_);
    EXPECT_EQ(index.scan_new_processes(), 2U);
    const auto owner = index.find(55, std::nullopt);
    ASSERT_TRUE(owner.has_value());
    EXPECT_TRUE(owner->pid == 900 || owner->pid == 901);

    // When the first owner exits, the other still holds it and is found.
    const int first = owner->pid;
    proc_.remove(first);
    EXPECT_FALSE(index.find(56, std::nullopt).has_value()); // lists /proc, forgets `first`
    const auto next = index.find(55, std::nullopt);
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(next->pid, first == 900 ? 901 : 900);
}

} // namespace
} // namespace pw::process
