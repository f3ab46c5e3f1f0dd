#include "network/attributor.h"

#include <map>
#include <tuple>

#include <gtest/gtest.h>

#include "fakes/fake_clock.h"
#include "fakes/fake_proc_tree.h"
#include "process/inode_pid_index.h"
#include "process/process_registry.h"
#include "state/socket_table.h"

namespace pw::network {
namespace {

// Answers socket lookups from a map keyed by (local port, remote port).
class FakeSocketTable final : public state::SocketTable {
public:
    // state::SocketTable
    Result<std::optional<state::SocketRecord>> find(const state::SocketQuery& query) override {
        ++lookups;
        if (refuse) {
            return fail("sock_diag: Operation not permitted");
        }
        const auto found = records.find({query.local_port, query.remote_port});
        if (found == records.end()) {
            return std::optional<state::SocketRecord>();
        }
        return std::optional<state::SocketRecord>(found->second);
    }

    std::map<std::tuple<std::uint16_t, std::uint16_t>, state::SocketRecord> records;
    bool refuse = false;
    int lookups = 0;
};

class AttributorTest : public ::testing::Test {
protected:
    void SetUp() override {
        proc_.add({.pid = 4242, .comm = "curl", .uid = 1000, .exe = "/usr/bin/curl"});
        proc_.add_socket(4242, 3, 777);
        sockets_.records[{40000, 443}] = {.inode = 777, .uid = 1000, .cookie = 1};
    }

    firewall::ConnectionFacts connection(std::uint16_t local_port, std::uint16_t remote_port,
                                         packet::Direction direction, std::uint8_t protocol = 6) {
        return {.direction = direction,
                .ip_family = IpFamily::V4,
                .protocol = protocol,
                .local_address = *IpAddress::parse("10.0.0.1"),
                .local_port = local_port,
                .remote_address = *IpAddress::parse("10.0.0.2"),
                .remote_port = remote_port};
    }

    process::testing::FakeProcTree proc_;
    testing::FakeClock clock_;
    FakeSocketTable sockets_;
    process::InodePidIndex owners_{proc_.root(), clock_};
    process::ProcessRegistry processes_{proc_.root(), clock_};
    SocketAttributor attributor_{sockets_, owners_, processes_};
};

TEST_F(AttributorTest, FindsTheProcessThatOwnsTheSocket) {
    const auto facts = attributor_.attribute(connection(40000, 443, packet::Direction::Outbound));
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->kind, "process");
    EXPECT_EQ(facts->pid, 4242);
    EXPECT_EQ(facts->executable, "/usr/bin/curl");
    EXPECT_EQ(facts->identity, "/usr/bin/curl");
    EXPECT_EQ(facts->uid, 1000U);
    EXPECT_EQ(attributor_.counters().attributed, 1U);
}

TEST_F(AttributorTest, OutboundWithoutSocketIsUnidentified) {
    const auto facts = attributor_.attribute(connection(40001, 443, packet::Direction::Outbound));
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->kind, "unidentified");
    EXPECT_EQ(facts->pid, -1);
    EXPECT_EQ(attributor_.counters().no_socket, 1U);
}

TEST_F(AttributorTest, InboundWithoutSocketIsUnsolicited) {
    const auto facts = attributor_.attribute(connection(22, 50000, packet::Direction::Inbound));
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->kind, "unsolicited");
}

TEST_F(AttributorTest, SocketWithoutInodeBelongsToTheKernel) {
    sockets_.records[{51820, 51820}] = {.inode = 0, .uid = 0, .cookie = 0};
    const auto facts =
        attributor_.attribute(connection(51820, 51820, packet::Direction::Outbound, 17));
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->kind, "kernel");
}

TEST_F(AttributorTest, SocketWhoseOwnerIsGoneIsUnidentified) {
    sockets_.records[{40002, 443}] = {.inode = 999, .uid = 1000, .cookie = 2};
    const auto facts = attributor_.attribute(connection(40002, 443, packet::Direction::Outbound));
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->kind, "unidentified");
    EXPECT_EQ(attributor_.counters().no_process, 1U);
}

TEST_F(AttributorTest, RefusedSocketLookupIsCountedAndUnidentified) {
    sockets_.refuse = true;
    const auto facts = attributor_.attribute(connection(40000, 443, packet::Direction::Outbound));
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->kind, "unidentified");
    EXPECT_EQ(attributor_.counters().socket_errors, 1U);
}

TEST_F(AttributorTest, ProtocolsWithoutSocketsAreNotLookedUp) {
    EXPECT_FALSE(
        attributor_.attribute(connection(0, 0, packet::Direction::Outbound, 1)).has_value());
    EXPECT_EQ(sockets_.lookups, 0);
}

} // namespace
} // namespace pw::network
