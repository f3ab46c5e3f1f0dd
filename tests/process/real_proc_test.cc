// Against the real /proc: the test process's own socket and its own ProcessInfo. No root needed.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "common/clock.h"
#include "common/unique_fd.h"
#include "process/inode_pid_index.h"
#include "process/process_registry.h"

namespace pw::process {
namespace {

TEST(RealProc, OwnSocketMapsToOwnPid) {
    const UniqueFd socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(socket.valid());
    struct stat status{};
    ASSERT_EQ(::fstat(socket.get(), &status), 0);

    const SteadyClock clock;
    InodePidIndex index("/proc", clock);
    const auto owner = index.find(status.st_ino, static_cast<std::uint32_t>(::geteuid()));
    ASSERT_TRUE(owner.has_value());
    EXPECT_EQ(owner->pid, ::getpid());

    // A socket opened after the index knows this process is found by rescanning it.
    const UniqueFd later(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(later.valid());
    ASSERT_EQ(::fstat(later.get(), &status), 0);
    const auto later_owner = index.find(status.st_ino, static_cast<std::uint32_t>(::geteuid()));
    ASSERT_TRUE(later_owner.has_value());
    EXPECT_EQ(later_owner->pid, ::getpid());
}

TEST(RealProc, OwnProcessInfo) {
    const SteadyClock clock;
    ProcessRegistry registry("/proc", clock);
    const auto info = registry.lookup(::getpid());
    ASSERT_TRUE(info.has_value()) << info.error().message();
    EXPECT_EQ((*info)->kind, IdentityKind::Portwarden); // self_pid defaults to getpid()
    EXPECT_EQ((*info)->pid, ::getpid());
    EXPECT_EQ((*info)->parent_pid, ::getppid());
    EXPECT_EQ((*info)->uid, ::getuid());
    EXPECT_EQ((*info)->executable, std::filesystem::read_symlink("/proc/self/exe").string());
    EXPECT_EQ((*info)->identity_path, (*info)->executable);
    EXPECT_FALSE((*info)->deleted);
    ASSERT_FALSE((*info)->command_line.empty());
    EXPECT_GT((*info)->start_time, 0U);
    EXPECT_FALSE((*info)->user.empty());
}

} // namespace
} // namespace pw::process
