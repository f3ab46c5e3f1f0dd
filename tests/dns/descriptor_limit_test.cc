#include "dns/descriptor_limit.h"

#include <sys/resource.h>

#include <cstdint>

#include <gtest/gtest.h>

namespace pw::dns {
namespace {

TEST(DescriptorLimit, EnoughForAFullTcpTableAndTheRest) {
    EXPECT_GT(descriptors_wanted(TcpLimits{}), TcpLimits{}.max_connections + 512);
    EXPECT_EQ(descriptors_wanted({.max_connections = 2048}) - descriptors_wanted({}), 2048U - 512U);
}

TEST(DescriptorLimit, RaisesTheSoftLimitUpToTheHardOneAndNeverLowersIt) {
    EXPECT_EQ(soft_descriptor_limit(1024, 524288, 1536), 1536U);
    EXPECT_EQ(soft_descriptor_limit(1024, 1200, 1536), 1200U);     // the hard limit is the ceiling
    EXPECT_EQ(soft_descriptor_limit(65536, 524288, 1536), 65536U); // an admin's choice stays
    EXPECT_EQ(soft_descriptor_limit(1024, 1024, 1536), 1024U);
}

// Puts the test process's limit back as it was, whatever the test did to it.
class DescriptorLimitTest : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &before_), 0); }
    void TearDown() override { ::setrlimit(RLIMIT_NOFILE, &before_); }

    rlimit before_{};
};

TEST_F(DescriptorLimitTest, RaisingWithinTheHardLimitWorksUnprivileged) {
    const std::uint64_t wanted =
        before_.rlim_cur == RLIM_INFINITY ? before_.rlim_cur : before_.rlim_cur + 16;
    const auto raised = raise_descriptor_limit(wanted);
    ASSERT_TRUE(raised.has_value()) << raised.error().message();
    EXPECT_EQ(raised->before, before_.rlim_cur);
    EXPECT_EQ(raised->hard, before_.rlim_max);
    EXPECT_EQ(raised->after, soft_descriptor_limit(before_.rlim_cur, before_.rlim_max, wanted));
    rlimit after{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &after), 0);
    EXPECT_EQ(after.rlim_cur, raised->after);
}

TEST_F(DescriptorLimitTest, AskingForLessChangesNothing) {
    const auto again = raise_descriptor_limit(1);
    ASSERT_TRUE(again.has_value()) << again.error().message();
    EXPECT_EQ(again->after, again->before);
    EXPECT_EQ(again->before, before_.rlim_cur);
}

} // namespace
} // namespace pw::dns
