#include "network/dns_client_directory.h"

#include <gtest/gtest.h>

#include "fakes/fake_clock.h"
#include "packet/packet_info.h"

namespace pw::network {
namespace {

using packet::protocol::kTcp;
using packet::protocol::kUdp;

std::shared_ptr<const firewall::ProcessFacts> process_named(std::string executable) {
    auto process = std::make_shared<firewall::ProcessFacts>();
    process->executable = std::move(executable);
    return process;
}

class DnsClientDirectoryTest : public ::testing::Test {
protected:
    testing::FakeClock clock_;
    DnsClientDirectory directory_;
    IpAddress client_ = IpAddress::parse("127.0.0.1").value();
};

TEST_F(DnsClientDirectoryTest, FindsTheProcessByProtocolAddressAndPort) {
    directory_.record(kUdp, client_, 40000, process_named("/usr/bin/dig"), clock_.now());
    directory_.record(kTcp, client_, 40000, process_named("/usr/bin/curl"), clock_.now());
    ASSERT_NE(directory_.find(kUdp, client_, 40000, clock_.now()), nullptr);
    EXPECT_EQ(directory_.find(kUdp, client_, 40000, clock_.now())->executable, "/usr/bin/dig");
    EXPECT_EQ(directory_.find(kTcp, client_, 40000, clock_.now())->executable, "/usr/bin/curl");
    EXPECT_EQ(directory_.find(kUdp, client_, 40001, clock_.now()), nullptr);
    EXPECT_EQ(directory_.find(kUdp, IpAddress::parse("::1").value(), 40000, clock_.now()), nullptr);
}

TEST_F(DnsClientDirectoryTest, UseKeepsAnEntryAliveIdlenessEndsIt) {
    directory_.record(kUdp, client_, 40000, process_named("/usr/bin/dig"), clock_.now());
    directory_.record(kUdp, client_, 40001, process_named("/usr/bin/host"), clock_.now());
    clock_.advance(DnsClientDirectory::kIdleLifetime - std::chrono::seconds(1));
    EXPECT_NE(directory_.find(kUdp, client_, 40000, clock_.now()), nullptr);
    clock_.advance(std::chrono::seconds(2));
    EXPECT_NE(directory_.find(kUdp, client_, 40000, clock_.now()), nullptr);
    EXPECT_EQ(directory_.find(kUdp, client_, 40001, clock_.now()), nullptr);
    clock_.advance(DnsClientDirectory::kIdleLifetime + std::chrono::seconds(1));
    EXPECT_EQ(directory_.expire(clock_.now()), 1U);
    EXPECT_EQ(directory_.size(), 0U);
}

TEST_F(DnsClientDirectoryTest, AReusedPortBelongsToItsNewestFlow) {
    directory_.record(kUdp, client_, 40000, process_named("/usr/bin/dig"), clock_.now());
    directory_.record(kUdp, client_, 40000, process_named("/usr/bin/host"), clock_.now());
    EXPECT_EQ(directory_.find(kUdp, client_, 40000, clock_.now())->executable, "/usr/bin/host");
    EXPECT_EQ(directory_.size(), 1U);
}

TEST_F(DnsClientDirectoryTest, IsBounded) {
    for (std::uint32_t port = 0; port < DnsClientDirectory::kMaxEntries + 10; ++port) {
        directory_.record(kUdp, client_, static_cast<std::uint16_t>(port),
                          process_named("/usr/bin/dig"), clock_.now());
    }
    EXPECT_LE(directory_.size(), DnsClientDirectory::kMaxEntries);
    // Once idle entries expire there is room again.
    clock_.advance(DnsClientDirectory::kIdleLifetime + std::chrono::seconds(1));
    directory_.record(kUdp, client_, 60000, process_named("/usr/bin/host"), clock_.now());
    EXPECT_EQ(directory_.size(), 1U);
}

} // namespace
} // namespace pw::network
