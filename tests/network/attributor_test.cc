#include "network/attributor.h"

#include <unistd.h>

#include <chrono>
#include <map>
#include <tuple>

#include <gtest/gtest.h>

#include "fakes/fake_clock.h"
#include "fakes/fake_proc_tree.h"
#include "process/inode_pid_index.h"
#include "process/process_registry.h"
#include "state/bpf/socket_owner_records.h"
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

// Kernel records from maps the test fills; flows are keyed by (local port, remote port).
class FakeOwnerRecords final : public state::bpf::OwnerRecords {
public:
    // state::bpf::OwnerRecords
    std::optional<state::bpf::Owner> find_by_cookie(std::uint64_t cookie) const override {
        const auto found = by_cookie.find(cookie);
        return found == by_cookie.end() ? std::nullopt : std::optional(found->second);
    }
    std::optional<state::bpf::Owner> find_by_flow(const state::bpf::Flow& flow) const override {
        const auto found = by_flow.find({flow.local_port, flow.remote_port});
        return found == by_flow.end() ? std::nullopt : std::optional(found->second);
    }
    std::optional<state::bpf::Owner> find_by_remote(const state::bpf::Flow& flow) const override {
        const auto found = by_remote.find(flow.remote_port);
        return found == by_remote.end() ? std::nullopt : std::optional(found->second);
    }
    std::optional<state::bpf::ExecRecord> find_exec(std::uint32_t tgid) const override {
        const auto found = execs.find(tgid);
        return found == execs.end() ? std::nullopt : std::optional(found->second);
    }

    std::map<std::uint64_t, state::bpf::Owner> by_cookie;
    std::map<std::tuple<std::uint16_t, std::uint16_t>, state::bpf::Owner> by_flow;
    std::map<std::uint32_t, state::bpf::ExecRecord> execs;
    std::map<std::uint16_t, state::bpf::Owner> by_remote; // by remote port
};

// /proc start times are clock ticks; the kernel records hold nanoseconds.
std::chrono::nanoseconds ticks_to_ns(std::uint64_t ticks) {
    return std::chrono::nanoseconds(1'000'000'000 / ::sysconf(_SC_CLK_TCK)) *
           static_cast<std::int64_t>(ticks);
}

state::bpf::Owner kernel_owner(std::uint32_t tgid, std::uint64_t start_ticks,
                               std::uint32_t uid = 1000,
                               state::bpf::FlowMatch match = state::bpf::FlowMatch::Exact) {
    return {.tgid = tgid,
            .pid = tgid,
            .uid = uid,
            .cookie = 99,
            .recorded_at = std::chrono::nanoseconds(0),
            .process_start = ticks_to_ns(start_ticks),
            .match = match};
}

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
    FakeOwnerRecords kernel_;
    ProcessAttributor attributor_{{.kernel_records = nullptr,
                                   .sockets = &sockets_,
                                   .inode_owners = &owners_,
                                   .processes = &processes_}};
    ProcessAttributor with_kernel_records_{{.kernel_records = &kernel_,
                                            .sockets = &sockets_,
                                            .inode_owners = &owners_,
                                            .processes = &processes_}};
};

TEST_F(AttributorTest, FindsTheProcessThatOwnsTheSocket) {
    const auto facts =
        attributor_.attribute(connection(40000, 443, packet::Direction::Outbound)).process;
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->kind, firewall::ProcessKind::Process);
    EXPECT_EQ(facts->pid, 4242);
    EXPECT_EQ(facts->executable, "/usr/bin/curl");
    EXPECT_EQ(facts->identity, "/usr/bin/curl");
    EXPECT_EQ(facts->uid, 1000U);
    EXPECT_EQ(facts->source, "socket-table");
    EXPECT_EQ(attributor_.counters().by_socket_table, 1U);
}

TEST_F(AttributorTest, OutboundWithoutSocketIsUnidentifiedAndWorthAnotherLook) {
    const auto attribution =
        attributor_.attribute(connection(40001, 443, packet::Direction::Outbound));
    EXPECT_TRUE(attribution.worth_retrying);
    const auto& facts = attribution.process;
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->kind, firewall::ProcessKind::Unidentified);
    EXPECT_EQ(facts->pid, -1);
    EXPECT_EQ(attributor_.counters().no_socket, 1U);
}

TEST_F(AttributorTest, InboundWithoutSocketIsUnsolicitedWithoutWaiting) {
    const auto attribution =
        attributor_.attribute(connection(22, 50000, packet::Direction::Inbound));
    EXPECT_FALSE(attribution.worth_retrying);
    const auto& facts = attribution.process;
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->kind, firewall::ProcessKind::Unsolicited);
}

TEST_F(AttributorTest, SocketWithoutInodeBelongsToTheKernel) {
    sockets_.records[{51820, 51820}] = {.inode = 0, .uid = 0, .cookie = 0};
    const auto facts =
        attributor_.attribute(connection(51820, 51820, packet::Direction::Outbound, 17)).process;
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->kind, firewall::ProcessKind::Kernel);
}

TEST_F(AttributorTest, SocketWhoseOwnerIsGoneIsUnidentified) {
    sockets_.records[{40002, 443}] = {.inode = 999, .uid = 1000, .cookie = 2};
    const auto facts =
        attributor_.attribute(connection(40002, 443, packet::Direction::Outbound)).process;
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->kind, firewall::ProcessKind::Unidentified);
    EXPECT_EQ(attributor_.counters().no_process, 1U);
}

TEST_F(AttributorTest, RefusedSocketLookupIsCountedAndUnidentified) {
    sockets_.refuse = true;
    const auto facts =
        attributor_.attribute(connection(40000, 443, packet::Direction::Outbound)).process;
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->kind, firewall::ProcessKind::Unidentified);
    EXPECT_EQ(attributor_.counters().socket_errors, 1U);
}

TEST_F(AttributorTest, ProtocolsWithoutSocketsAreNotLookedUp) {
    EXPECT_FALSE(attributor_.attribute(connection(0, 0, packet::Direction::Outbound, 1))
                     .process.has_value());
    EXPECT_EQ(sockets_.lookups, 0);
}

TEST_F(AttributorTest, KernelFlowRecordComesFirstAndCostsNoSocketLookup) {
    proc_.add({.pid = 5000,
               .comm = "firefox",
               .start_time = 7000,
               .uid = 1000,
               .exe = "/usr/lib/firefox/firefox"});
    kernel_.by_flow[{40010, 443}] = kernel_owner(5000, 7000);
    const auto facts =
        with_kernel_records_.attribute(connection(40010, 443, packet::Direction::Outbound)).process;
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->pid, 5000);
    EXPECT_EQ(facts->executable, "/usr/lib/firefox/firefox");
    EXPECT_EQ(facts->source, "ebpf");
    EXPECT_EQ(sockets_.lookups, 0);

    // The second connection of the same process is a registry hit: /proc is not read again.
    proc_.remove(5000);
    kernel_.by_flow[{40011, 443}] = kernel_owner(5000, 7000);
    const auto again =
        with_kernel_records_.attribute(connection(40011, 443, packet::Direction::Outbound)).process;
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->executable, "/usr/lib/firefox/firefox");
    EXPECT_EQ(with_kernel_records_.counters().by_kernel_record, 2U);
}

TEST_F(AttributorTest, SenderThatExitedIsNamedFromItsExecRecord) {
    kernel_.by_flow[{40020, 53}] = kernel_owner(6000, 8000, 1000);
    kernel_.execs[6000] = {.tgid = 6000,
                           .parent_tgid = 10,
                           .uid = 1000,
                           .process_start = ticks_to_ns(8000),
                           .path = "/usr/bin/dig",
                           .interpreter = ""};
    const auto facts =
        with_kernel_records_.attribute(connection(40020, 53, packet::Direction::Outbound, 17))
            .process;
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->kind, firewall::ProcessKind::Process);
    EXPECT_EQ(facts->pid, 6000);
    EXPECT_EQ(facts->parent_pid, 10);
    EXPECT_EQ(facts->executable, "/usr/bin/dig");
    EXPECT_EQ(facts->uid, 1000U);
    EXPECT_EQ(facts->source, "exec-record");
    EXPECT_EQ(with_kernel_records_.counters().by_exec_record, 1U);
}

TEST_F(AttributorTest, ExitedScriptIsNamedByItsScript) {
    kernel_.by_flow[{40021, 53}] = kernel_owner(6001, 8001);
    kernel_.execs[6001] = {.tgid = 6001,
                           .parent_tgid = 10,
                           .uid = 1000,
                           .process_start = ticks_to_ns(8001),
                           .path = "/home/user/bin/fetch.sh",
                           .interpreter = "/bin/sh"};
    const auto facts =
        with_kernel_records_.attribute(connection(40021, 53, packet::Direction::Outbound, 17))
            .process;
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->executable, "/bin/sh");
    EXPECT_EQ(facts->identity, "/home/user/bin/fetch.sh");
    EXPECT_EQ(facts->tags, std::vector<std::string>{"script"});
}

TEST_F(AttributorTest, ReusedPidIsNeverTakenForTheSender) {
    // The sender (start 8000) is gone; PID 6002 now belongs to a process started later.
    proc_.add({.pid = 6002, .comm = "evil", .start_time = 9000, .exe = "/usr/bin/evil"});
    kernel_.by_flow[{40022, 443}] = kernel_owner(6002, 8000);
    // Its exec record was overwritten by the new process's exec: no match either.
    kernel_.execs[6002] = {.tgid = 6002,
                           .parent_tgid = 1,
                           .uid = 1000,
                           .process_start = ticks_to_ns(9000),
                           .path = "/usr/bin/evil",
                           .interpreter = ""};
    const auto facts =
        with_kernel_records_.attribute(connection(40022, 443, packet::Direction::Outbound)).process;
    ASSERT_TRUE(facts.has_value());
    EXPECT_NE(facts->executable, "/usr/bin/evil");
    EXPECT_EQ(facts->pid, 6002); // the kernel's word for PID and UID stands
    EXPECT_EQ(facts->executable, "");
    EXPECT_EQ(with_kernel_records_.counters().pid_only, 1U);
}

TEST_F(AttributorTest, InboundUsesTheListenersCreatorRecord) {
    proc_.add(
        {.pid = 7000, .comm = "nginx", .start_time = 500, .uid = 33, .exe = "/usr/sbin/nginx"});
    sockets_.records[{443, 50000}] = {
        .inode = 4444, .uid = 33, .cookie = 77, .match = state::SocketMatch::Listener};
    kernel_.by_cookie[77] = kernel_owner(7000, 500, 33);
    const auto facts =
        with_kernel_records_.attribute(connection(443, 50000, packet::Direction::Inbound)).process;
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->pid, 7000);
    EXPECT_EQ(facts->executable, "/usr/sbin/nginx");
    EXPECT_EQ(facts->source, "ebpf");
}

TEST_F(AttributorTest, SocketWhoseCreatorIsGoneIsFoundThroughTheInodeIndex) {
    // Created by a parent that exited after handing the socket to 4242 (a daemonising fork).
    sockets_.records[{40000, 443}] = {.inode = 777, .uid = 1000, .cookie = 78};
    kernel_.by_cookie[78] = kernel_owner(4000, 100);
    const auto facts =
        with_kernel_records_.attribute(connection(40000, 443, packet::Direction::Inbound)).process;
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->pid, 4242);
    EXPECT_EQ(facts->source, "socket-table");
}

TEST_F(AttributorTest, UdpRecordOfAnotherSocketOnTheSamePortIsOverruled) {
    // An exited sendto() sender used port 40000 towards 10.0.0.2:443 (cookie 5). Since then
    // 4242 connected a UDP socket (cookie 1) to that remote, and it got port 40000.
    auto stale = kernel_owner(5200, 42, 1000, state::bpf::FlowMatch::AnyLocalAddress);
    stale.cookie = 5;
    stale.recorded_at = std::chrono::seconds(1);
    kernel_.by_flow[{40000, 443}] = stale;
    auto connected = kernel_owner(4242, 1000, 1000, state::bpf::FlowMatch::RemoteOnly);
    connected.cookie = 1;
    connected.recorded_at = std::chrono::seconds(2);
    kernel_.by_remote[443] = connected;
    const auto facts =
        with_kernel_records_.attribute(connection(40000, 443, packet::Direction::Outbound, 17))
            .process;
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->pid, 4242);
    EXPECT_EQ(facts->source, "ebpf");
    EXPECT_EQ(with_kernel_records_.counters().stale_udp_records, 1U);
}

TEST_F(AttributorTest, UdpRecordWithoutALaterConnectStandsWithoutASocketLookup) {
    proc_.add({.pid = 5300, .comm = "dig", .start_time = 43, .exe = "/usr/bin/dig"});
    auto sender = kernel_owner(5300, 43, 1000, state::bpf::FlowMatch::AnyLocalAddress);
    sender.recorded_at = std::chrono::seconds(3);
    kernel_.by_flow[{40000, 443}] = sender;
    auto older_connect = kernel_owner(4242, 1000, 1000, state::bpf::FlowMatch::RemoteOnly);
    older_connect.recorded_at = std::chrono::seconds(2);
    kernel_.by_remote[443] = older_connect;
    const auto facts =
        with_kernel_records_.attribute(connection(40000, 443, packet::Direction::Outbound, 17))
            .process;
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->pid, 5300);
    EXPECT_EQ(facts->source, "ebpf");
    EXPECT_EQ(sockets_.lookups, 0);
}

TEST_F(AttributorTest, UdpRecordOfTheSocketOwningTheFlowStands) {
    proc_.add({.pid = 5300, .comm = "dig", .start_time = 43, .exe = "/usr/bin/dig"});
    auto current = kernel_owner(5300, 43, 1000, state::bpf::FlowMatch::AnyLocalAddress);
    current.cookie = 1; // the cookie of the socket the table finds
    current.recorded_at = std::chrono::seconds(1);
    kernel_.by_flow[{40000, 443}] = current;
    kernel_.by_remote[443] = kernel_owner(4242, 1000, 1000, state::bpf::FlowMatch::RemoteOnly);
    kernel_.by_remote[443].recorded_at = std::chrono::seconds(2);
    const auto facts =
        with_kernel_records_.attribute(connection(40000, 443, packet::Direction::Outbound, 17))
            .process;
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->pid, 5300);
    EXPECT_EQ(with_kernel_records_.counters().stale_udp_records, 0U);
}

TEST_F(AttributorTest, ConnectedUdpIsConfirmedByItsSocketsCookie) {
    proc_.add({.pid = 5400, .comm = "resolver", .start_time = 44, .exe = "/usr/bin/resolver"});
    auto connected = kernel_owner(5400, 44, 1000, state::bpf::FlowMatch::RemoteOnly);
    connected.cookie = 1; // the socket the table finds for (40000, 443)
    kernel_.by_flow[{40000, 443}] = connected;
    const auto facts =
        with_kernel_records_.attribute(connection(40000, 443, packet::Direction::Outbound, 17))
            .process;
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->pid, 5400);
    EXPECT_EQ(facts->source, "ebpf");
    EXPECT_EQ(owners_.counters().lookups, 0U); // no inode index needed
}

TEST_F(AttributorTest, RemoteOnlyRecordWaitsForTheSocketTable) {
    // Connected UDP recorded before the kernel chose the local port: the socket table, which
    // knows the socket, wins over the hint.
    proc_.add({.pid = 5100, .comm = "other", .start_time = 42, .exe = "/usr/bin/other"});
    kernel_.by_flow[{40000, 443}] = kernel_owner(5100, 42, 1000, state::bpf::FlowMatch::RemoteOnly);
    const auto facts =
        with_kernel_records_.attribute(connection(40000, 443, packet::Direction::Outbound)).process;
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->pid, 4242);
    EXPECT_EQ(with_kernel_records_.counters().remote_only_hints, 0U);
}

} // namespace
} // namespace pw::network
