#include "process/process_registry.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include "fakes/fake_clock.h"
#include "fakes/fake_proc_tree.h"

namespace pw::process {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;
using testing::FakeProcess;
using testing::FakeProcTree;

class ProcessRegistryTest : public ::testing::Test {
protected:
    ProcessRegistry registry(RegistryOptions options = {}) {
        if (!options.self_pid) {
            options.self_pid = 1; // not any fake PID below, unless a test says so
        }
        return {proc_.root(), clock_, options};
    }

    FakeProcTree proc_;
    pw::testing::FakeClock clock_;
};

TEST_F(ProcessRegistryTest, ReadsAnOrdinaryProcess) {
    proc_.add({.pid = 4242,
               .comm = "curl",
               .parent_pid = 17,
               .start_time = 555,
               .uid = 0,
               .exe = "/usr/bin/curl",
               .command_line = {"curl", "-s", "https://example.org"}});
    auto processes = registry();
    const auto info = processes.lookup(4242);
    ASSERT_TRUE(info.has_value()) << info.error().message();
    const ProcessInfo& process = **info;
    EXPECT_EQ(process.kind, IdentityKind::Process);
    EXPECT_EQ(process.pid, 4242);
    EXPECT_EQ(process.start_time, 555U);
    EXPECT_EQ(process.parent_pid, 17);
    EXPECT_EQ(process.uid, 0U);
    EXPECT_EQ(process.user, "root");
    EXPECT_EQ(process.executable, "/usr/bin/curl");
    EXPECT_FALSE(process.deleted);
    EXPECT_EQ(process.command_line,
              (std::vector<std::string>{"curl", "-s", "https://example.org"}));
    EXPECT_EQ(process.identity_path, "/usr/bin/curl");
    EXPECT_EQ(process.tags, ProcessTags{});
}

TEST_F(ProcessRegistryTest, UnknownUidFallsBackToTheNumber) {
    proc_.add({.pid = 10, .uid = 3999999});
    auto processes = registry();
    const auto info = processes.lookup(10);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ((*info)->user, "3999999");
}

TEST_F(ProcessRegistryTest, CommWithParenthesesParses) {
    proc_.add({.pid = 11, .comm = "a) b (c", .parent_pid = 9, .start_time = 77});
    auto processes = registry();
    const auto info = processes.lookup(11);
    ASSERT_TRUE(info.has_value()) << info.error().message();
    EXPECT_EQ((*info)->parent_pid, 9);
    EXPECT_EQ((*info)->start_time, 77U);
}

TEST_F(ProcessRegistryTest, SameProcessIsReadOnce) {
    proc_.add({.pid = 12});
    auto processes = registry();
    const auto first = processes.lookup(12);
    const auto second = processes.lookup(12);
    ASSERT_TRUE(first.has_value());
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(*first, *second);
    EXPECT_EQ(processes.counters().loads, 1U);
    EXPECT_EQ(processes.counters().cache_hits, 1U);
}

TEST_F(ProcessRegistryTest, ReusedPidGivesANewEntry) {
    proc_.add({.pid = 13, .start_time = 100, .exe = "/usr/bin/curl"});
    auto processes = registry();
    const auto old_process = processes.lookup(13);
    ASSERT_TRUE(old_process.has_value());

    proc_.remove(13);
    proc_.add({.pid = 13, .start_time = 200, .exe = "/usr/bin/wget"});
    const auto new_process = processes.lookup(13);
    ASSERT_TRUE(new_process.has_value());
    EXPECT_NE(*old_process, *new_process);
    EXPECT_EQ((*new_process)->executable, "/usr/bin/wget");
    EXPECT_EQ((*new_process)->start_time, 200U);
    // Connections that hold the old entry still see the old program.
    EXPECT_EQ((*old_process)->executable, "/usr/bin/curl");
    EXPECT_EQ(processes.size(), 2U);
}

TEST_F(ProcessRegistryTest, DeletedExecutableIsFlagged) {
    proc_.add({.pid = 14, .exe = "/usr/lib/firefox/firefox (deleted)"});
    auto processes = registry();
    const auto info = processes.lookup(14);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ((*info)->executable, "/usr/lib/firefox/firefox");
    EXPECT_TRUE((*info)->deleted);
    EXPECT_EQ((*info)->identity_path, "/usr/lib/firefox/firefox");
}

TEST_F(ProcessRegistryTest, GoneProcessFails) {
    auto processes = registry();
    EXPECT_FALSE(processes.lookup(15).has_value());
    EXPECT_FALSE(processes.lookup(-1).has_value());
    EXPECT_EQ(processes.counters().failures, 2U);
}

TEST_F(ProcessRegistryTest, UnreadableExecutableLeavesItEmpty) {
    proc_.add({.pid = 16, .exe = ""}); // no exe link, as for another user's process
    auto processes = registry();
    const auto info = processes.lookup(16);
    ASSERT_TRUE(info.has_value());
    EXPECT_TRUE((*info)->executable.empty());
    EXPECT_TRUE((*info)->identity_path.empty());
}

TEST_F(ProcessRegistryTest, PidZeroAndKernelThreadsAreTheKernel) {
    proc_.add({.pid = 2,
               .comm = "kthreadd",
               .parent_pid = 0,
               .flags = kKernelThreadFlag,
               .exe = "",
               .command_line = {}});
    auto processes = registry();
    const auto zero = processes.lookup(0);
    ASSERT_TRUE(zero.has_value());
    EXPECT_EQ(*zero, kernel_identity());
    const auto thread = processes.lookup(2);
    ASSERT_TRUE(thread.has_value());
    EXPECT_EQ((*thread)->kind, IdentityKind::Kernel);
    EXPECT_EQ((*thread)->pid, 2);
    EXPECT_EQ((*thread)->identity_path, kernel_identity()->identity_path);
}

TEST_F(ProcessRegistryTest, OwnPidIsPortwarden) {
    proc_.add({.pid = 17, .exe = "/usr/sbin/portwarden"});
    auto processes = registry({.self_pid = 17});
    const auto info = processes.lookup(17);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ((*info)->kind, IdentityKind::Portwarden);
    EXPECT_EQ((*info)->executable, "/usr/sbin/portwarden");
}

TEST_F(ProcessRegistryTest, FlatpakFromEnvironment) {
    proc_.add(
        {.pid = 20, .exe = "/app/bin/app", .environ = {"HOME=/", "FLATPAK_ID=org.example.App"}});
    auto processes = registry();
    const auto info = processes.lookup(20);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ((*info)->tags.flatpak_id, "org.example.App");
    EXPECT_EQ((*info)->tags.names(), std::vector<std::string_view>{"flatpak"});
}

TEST_F(ProcessRegistryTest, FlatpakFromInfoFileInItsRoot) {
    proc_.add({.pid = 21, .exe = "/app/bin/app", .environ = {}});
    std::filesystem::create_directories(proc_.dir(21) / "root");
    FakeProcTree::write(proc_.dir(21) / "root" / ".flatpak-info",
                        "[Application]\nname=org.example.Other\nruntime=x\n");
    auto processes = registry();
    const auto info = processes.lookup(21);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ((*info)->tags.flatpak_id, "org.example.Other");
}

TEST_F(ProcessRegistryTest, SnapFromEnvironmentOrPath) {
    proc_.add({.pid = 22, .exe = "/usr/bin/x", .environ = {"SNAP_NAME=spotify"}});
    proc_.add({.pid = 23, .exe = "/snap/firefox/4336/usr/lib/firefox/firefox", .environ = {}});
    auto processes = registry();
    const auto by_env = processes.lookup(22);
    const auto by_path = processes.lookup(23);
    ASSERT_TRUE(by_env.has_value());
    ASSERT_TRUE(by_path.has_value());
    EXPECT_EQ((*by_env)->tags.snap_name, "spotify");
    EXPECT_EQ((*by_path)->tags.snap_name, "firefox");
    EXPECT_EQ((*by_path)->tags.flatpak_id, std::nullopt);
}

TEST_F(ProcessRegistryTest, AppImageFromEnvironmentOrMountPath) {
    proc_.add({.pid = 24,
               .exe = "/tmp/.mount_Kritaa1b2c/usr/bin/krita",
               .environ = {"APPIMAGE=/home/u/krita.AppImage"}});
    proc_.add({.pid = 25, .exe = "/tmp/.mount_Obsidx9/obsidian", .environ = {}});
    auto processes = registry();
    const auto by_env = processes.lookup(24);
    const auto by_path = processes.lookup(25);
    ASSERT_TRUE(by_env.has_value());
    ASSERT_TRUE(by_path.has_value());
    EXPECT_EQ((*by_env)->tags.appimage, "/home/u/krita.AppImage");
    EXPECT_EQ((*by_path)->tags.appimage, "/tmp/.mount_Obsidx9");
}

TEST_F(ProcessRegistryTest, PythonScriptWithRelativePathIsResolvedAgainstCwd) {
    proc_.add({.pid = 30,
               .exe = "/usr/bin/python3.11",
               .command_line = {"python3", "-u", "../tools/sync.py", "--verbose"},
               .cwd = "/home/user/project"});
    auto processes = registry();
    const auto info = processes.lookup(30);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ((*info)->identity_path, "/home/user/tools/sync.py");
    EXPECT_EQ((*info)->executable, "/usr/bin/python3.11");
    EXPECT_EQ((*info)->tags.interpreter, "/usr/bin/python3.11");
}

TEST_F(ProcessRegistryTest, ShellScriptStartedThroughShebang) {
    // "#!/bin/sh" + "./backup.sh" makes the kernel run: /bin/sh ./backup.sh
    proc_.add({.pid = 31,
               .exe = "/usr/bin/dash",
               .command_line = {"/bin/sh", "./backup.sh"},
               .cwd = "/opt/backup"});
    proc_.add({.pid = 32, .exe = "/usr/bin/perl", .command_line = {"perl", "/usr/bin/cpan"}});
    auto processes = registry();
    const auto shell = processes.lookup(31);
    const auto perl = processes.lookup(32);
    ASSERT_TRUE(shell.has_value());
    ASSERT_TRUE(perl.has_value());
    EXPECT_EQ((*shell)->identity_path, "/opt/backup/backup.sh");
    EXPECT_EQ((*perl)->identity_path, "/usr/bin/cpan");
}

TEST_F(ProcessRegistryTest, InterpreterWithoutScriptIsItsOwnIdentity) {
    proc_.add({.pid = 33, .exe = "/usr/bin/bash", .command_line = {"bash", "-c", "curl x"}});
    auto processes = registry();
    const auto info = processes.lookup(33);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ((*info)->identity_path, "/usr/bin/bash");
    EXPECT_EQ((*info)->tags.interpreter, std::nullopt);
}

TEST_F(ProcessRegistryTest, EntriesExpireSomeMinutesAfterTheProcessIsGone) {
    proc_.add({.pid = 40, .start_time = 1});
    proc_.add({.pid = 41, .start_time = 1});
    auto processes = registry({.keep_after_exit = minutes(5)});
    ASSERT_TRUE(processes.lookup(40).has_value());
    ASSERT_TRUE(processes.lookup(41).has_value());

    proc_.remove(40);
    EXPECT_EQ(processes.expire(), 0U); // noticed gone now, kept for 5 minutes
    clock_.advance(minutes(4));
    EXPECT_EQ(processes.expire(), 0U);
    clock_.advance(minutes(1));
    EXPECT_EQ(processes.expire(), 1U);
    EXPECT_EQ(processes.size(), 1U);
    clock_.advance(minutes(60));
    EXPECT_EQ(processes.expire(), 0U); // PID 41 still runs
    EXPECT_EQ(processes.size(), 1U);
}

TEST_F(ProcessRegistryTest, ReusedPidCountsAsGoneForTheOldEntry) {
    proc_.add({.pid = 42, .start_time = 1});
    auto processes = registry({.keep_after_exit = seconds(30)});
    ASSERT_TRUE(processes.lookup(42).has_value());
    proc_.write_stat({.pid = 42, .start_time = 2});
    EXPECT_EQ(processes.expire(), 0U);
    clock_.advance(seconds(30));
    EXPECT_EQ(processes.expire(), 1U);
}

TEST_F(ProcessRegistryTest, LookupByPidAndStartIsACacheHitWithoutReadingProc) {
    proc_.add({.pid = 50, .start_time = 700, .exe = "/usr/bin/curl"});
    auto processes = registry();
    const auto first = processes.lookup_started(50, 700);
    ASSERT_TRUE(first.has_value()) << first.error().message();
    EXPECT_EQ((*first)->executable, "/usr/bin/curl");
    proc_.remove(50); // a hit must not need /proc
    const auto second = processes.lookup_started(50, 700);
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(*first, *second);
    EXPECT_EQ(processes.counters().cache_hits, 1U);
}

TEST_F(ProcessRegistryTest, LookupByPidAndStartRefusesAReusedPid) {
    proc_.add({.pid = 51, .start_time = 900, .exe = "/usr/bin/wget"});
    auto processes = registry();
    const auto looked_up = processes.lookup_started(51, 800); // the sender started earlier
    ASSERT_FALSE(looked_up.has_value());
    EXPECT_NE(looked_up.error().message().find("started later"), std::string::npos);
}

TEST_F(ProcessRegistryTest, AdoptedProcessesAreFoundAndExpireLikeGoneOnes) {
    auto processes = registry({.keep_after_exit = minutes(5)});
    auto info = std::make_shared<ProcessInfo>();
    info->pid = 52;
    info->start_time = 1234;
    info->executable = "/usr/bin/dig";
    processes.adopt(info);
    const auto found = processes.lookup_started(52, 1234);
    ASSERT_TRUE(found.has_value());
    EXPECT_EQ((*found)->executable, "/usr/bin/dig");
    clock_.advance(minutes(5));
    EXPECT_EQ(processes.expire(), 1U);
    EXPECT_FALSE(processes.lookup_started(52, 1234).has_value());
}

TEST_F(ProcessRegistryTest, ReadsTheEnvironmentAndTheCgroupOnce) {
    const std::string id(64, 'e');
    proc_.add({.pid = 60,
               .exe = "/usr/bin/ping",
               .environ = {"PATH=/usr/bin", "LANG=C.UTF-8"},
               .cgroup = "0::/system.slice/docker-" + id + ".scope\n"});
    proc_.add({.pid = 61,
               .exe = "/usr/lib/apt/apt-helper",
               .environ = {},
               .cgroup = "0::/system.slice/apt-daily.service\n"});
    proc_.add({.pid = 62}); // no cgroup file: no unit, no container
    auto processes = registry();
    const auto container = processes.lookup(60);
    const auto service = processes.lookup(61);
    const auto plain = processes.lookup(62);
    ASSERT_TRUE(container.has_value());
    ASSERT_TRUE(service.has_value());
    ASSERT_TRUE(plain.has_value());
    EXPECT_EQ((*container)->environment, (Environment{{"PATH", "/usr/bin"}, {"LANG", "C.UTF-8"}}));
    EXPECT_EQ((*container)->container_id, id);
    EXPECT_EQ((*container)->container_name, id.substr(0, 12));
    EXPECT_EQ((*container)->systemd_unit, std::nullopt);
    EXPECT_EQ((*service)->systemd_unit, "apt-daily.service");
    EXPECT_EQ((*service)->container_id, std::nullopt);
    EXPECT_EQ((*plain)->systemd_unit, std::nullopt);
    EXPECT_EQ((*plain)->environment, (Environment{{"HOME", "/home/user"}}));
}

TEST_F(ProcessRegistryTest, ACutEnvironmentDropsItsPartialLastEntry) {
    const std::string long_value(100, 'x');
    proc_.add({.pid = 63, .environ = {"A=1", "B=" + long_value, "SNAP_NAME=cut"}});
    // "A=1\0" is 4 bytes; the cut falls inside B's value.
    auto processes = registry({.max_environ_bytes = 50});
    const auto info = processes.lookup(63);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ((*info)->environment, (Environment{{"A", "1"}}));
    EXPECT_EQ((*info)->tags.snap_name, std::nullopt);
}

TEST_F(ProcessRegistryTest, AncestorsAreTheParentChainBelowInit) {
    proc_.add({.pid = 70, .parent_pid = 1, .start_time = 10, .exe = "/usr/sbin/cron"});
    proc_.add({.pid = 71,
               .parent_pid = 70,
               .start_time = 20,
               .exe = "/usr/bin/bash",
               .command_line = {"/bin/sh", "/etc/cron.daily/backup"}});
    proc_.add({.pid = 72, .parent_pid = 71, .start_time = 30, .exe = "/usr/bin/curl"});
    auto processes = registry();
    const auto curl = processes.lookup(72);
    ASSERT_TRUE(curl.has_value());
    const auto chain = processes.ancestors(**curl);
    ASSERT_EQ(chain.size(), 2U);
    EXPECT_EQ(chain[0]->identity_path, "/etc/cron.daily/backup");
    EXPECT_EQ(chain[1]->executable, "/usr/sbin/cron");
    // Cached: asking again loads nothing new.
    const auto loads = processes.counters().loads;
    EXPECT_EQ(processes.ancestors(**curl).size(), 2U);
    EXPECT_EQ(processes.counters().loads, loads);
}

TEST_F(ProcessRegistryTest, AncestorsStopAtAReusedPidALoopAGoneParentAndTheDepthLimit) {
    // The "parent" started after its child: the real parent exited and its PID was reused.
    proc_.add({.pid = 80, .parent_pid = 1, .start_time = 500});
    proc_.add({.pid = 81, .parent_pid = 80, .start_time = 100});
    // A loop (impossible in /proc, possible in a racy read).
    proc_.add({.pid = 82, .parent_pid = 83, .start_time = 5});
    proc_.add({.pid = 83, .parent_pid = 82, .start_time = 5});
    // A gone parent.
    proc_.add({.pid = 84, .parent_pid = 999, .start_time = 5});
    // A chain deeper than the limit: 100 <- 101 <- ... <- 129.
    for (int pid = 100; pid < 130; ++pid) {
        proc_.add({.pid = pid, .parent_pid = pid == 100 ? 1 : pid - 1, .start_time = 7});
    }
    auto processes = registry();
    const auto orphan = processes.lookup(81);
    const auto looping = processes.lookup(82);
    const auto gone = processes.lookup(84);
    const auto deep = processes.lookup(129);
    ASSERT_TRUE(orphan && looping && gone && deep);
    EXPECT_TRUE(processes.ancestors(**orphan).empty());
    const auto loop_chain = processes.ancestors(**looping);
    ASSERT_EQ(loop_chain.size(), 1U);
    EXPECT_EQ(loop_chain[0]->pid, 83);
    EXPECT_TRUE(processes.ancestors(**gone).empty());
    const auto deep_chain = processes.ancestors(**deep);
    ASSERT_EQ(deep_chain.size(), ProcessRegistry::kMaxAncestors);
    EXPECT_EQ(deep_chain.front()->pid, 128);
    EXPECT_EQ(deep_chain.back()->pid, 113);
}

TEST_F(ProcessRegistryTest, AncestorsStopAtKernelThreads) {
    proc_.add({.pid = 2,
               .comm = "kthreadd",
               .parent_pid = 0,
               .flags = kKernelThreadFlag,
               .exe = "",
               .command_line = {}});
    proc_.add({.pid = 90, .parent_pid = 2, .start_time = 9});
    auto processes = registry();
    const auto info = processes.lookup(90);
    ASSERT_TRUE(info.has_value());
    EXPECT_TRUE(processes.ancestors(**info).empty());
}

} // namespace
} // namespace pw::process
