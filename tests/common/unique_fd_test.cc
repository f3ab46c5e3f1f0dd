#include "common/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <type_traits>
#include <utility>

#include <gtest/gtest.h>

namespace pw {
namespace {

bool is_open(int fd) {
    return ::fcntl(fd, F_GETFD) != -1;
}

// A pipe gives two fresh descriptors without touching the file system.
std::array<int, 2> make_pipe() {
    std::array<int, 2> fds{-1, -1};
    EXPECT_EQ(::pipe2(fds.data(), O_CLOEXEC), 0) << "pipe2: errno " << errno;
    return fds;
}

static_assert(!std::is_copy_constructible_v<UniqueFd>);
static_assert(!std::is_copy_assignable_v<UniqueFd>);
static_assert(std::is_nothrow_move_constructible_v<UniqueFd>);
static_assert(std::is_nothrow_move_assignable_v<UniqueFd>);

TEST(UniqueFd, StartsEmpty) {
    const UniqueFd fd;
    EXPECT_FALSE(fd.valid());
    EXPECT_EQ(fd.get(), -1);
}

TEST(UniqueFd, ClosesItsDescriptorWhenDestroyed) {
    const auto [read_end, write_end] = make_pipe();
    {
        const UniqueFd owner(read_end);
        EXPECT_TRUE(owner.valid());
        EXPECT_EQ(owner.get(), read_end);
        EXPECT_TRUE(is_open(read_end));
    }
    EXPECT_FALSE(is_open(read_end));
    ::close(write_end);
}

// The kernel hands out the lowest free number, so a descriptor closed twice would close whatever
// reused its number in between: here, the second pipe.
TEST(UniqueFd, ClosesOnlyOnce) {
    const auto [read_end, write_end] = make_pipe();
    ::close(write_end);
    std::array<int, 2> reused{-1, -1};
    {
        UniqueFd owner(read_end);
        owner.reset();
        EXPECT_FALSE(owner.valid());
        reused = make_pipe();
        ASSERT_EQ(reused[0], read_end) << "the kernel did not reuse the number; test is moot";
    }
    EXPECT_TRUE(is_open(reused[0]));
    ::close(reused[0]);
    ::close(reused[1]);
}

TEST(UniqueFd, ResetClosesTheOldDescriptorAndTakesTheNewOne) {
    const auto [first, first_write] = make_pipe();
    const auto [second, second_write] = make_pipe();
    {
        UniqueFd owner(first);
        owner.reset(second);
        EXPECT_FALSE(is_open(first));
        EXPECT_TRUE(is_open(second));
        EXPECT_EQ(owner.get(), second);
    }
    EXPECT_FALSE(is_open(second));
    ::close(first_write);
    ::close(second_write);
}

TEST(UniqueFd, ResetToItsOwnDescriptorKeepsItOpen) {
    const auto [read_end, write_end] = make_pipe();
    UniqueFd owner(read_end);
    owner.reset(read_end);
    EXPECT_TRUE(is_open(read_end));
    EXPECT_EQ(owner.get(), read_end);
    ::close(write_end);
}

TEST(UniqueFd, MoveConstructionTransfersOwnership) {
    const auto [read_end, write_end] = make_pipe();
    UniqueFd source(read_end);
    {
        const UniqueFd target(std::move(source));
        EXPECT_EQ(target.get(), read_end);
        EXPECT_FALSE(source.valid()); // NOLINT(*-use-after-move,*.Move): the moved-from state
        EXPECT_TRUE(is_open(read_end));
    }
    EXPECT_FALSE(is_open(read_end));
    ::close(write_end);
}

TEST(UniqueFd, MoveAssignmentClosesTheTargetsOldDescriptor) {
    const auto [first, first_write] = make_pipe();
    const auto [second, second_write] = make_pipe();
    UniqueFd source(first);
    UniqueFd target(second);
    target = std::move(source);
    EXPECT_FALSE(is_open(second));
    EXPECT_TRUE(is_open(first));
    EXPECT_EQ(target.get(), first);
    EXPECT_FALSE(source.valid()); // NOLINT(*-use-after-move,*.Move): the moved-from state
    ::close(first_write);
    ::close(second_write);
}

TEST(UniqueFd, SurvivesSelfMove) {
    const auto [read_end, write_end] = make_pipe();
    UniqueFd owner(read_end);
    UniqueFd& alias = owner; // through a reference, so the compiler does not flag the self-move
    owner = std::move(alias);
    EXPECT_EQ(owner.get(), read_end);
    EXPECT_TRUE(is_open(read_end));
    ::close(write_end);
}

TEST(UniqueFd, ReleaseGivesUpOwnershipWithoutClosing) {
    const auto [read_end, write_end] = make_pipe();
    int released = -1;
    {
        UniqueFd owner(read_end);
        released = owner.release();
        EXPECT_FALSE(owner.valid());
    }
    EXPECT_EQ(released, read_end);
    EXPECT_TRUE(is_open(read_end));
    ::close(read_end);
    ::close(write_end);
}

} // namespace
} // namespace pw
