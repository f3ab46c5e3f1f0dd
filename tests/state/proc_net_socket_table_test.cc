// Tests of the /proc/net parser and ProcNetSocketTable against a fake /proc tree. The sample
// lines were copied from this machine's /proc/net files (kernel 6.18, x86_64) with real
// sockets open in a scratch network namespace. No root needed.
#include "state/proc_net_socket_table.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

namespace pw::state {
namespace {

namespace fs = std::filesystem;

IpAddress ip(std::string_view text) {
    auto address = IpAddress::parse(text);
    EXPECT_TRUE(address.has_value()) << text;
    return address.value_or(IpAddress{});
}

constexpr std::string_view kTcpHeader =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    "timeout inode                                                     ";
constexpr std::string_view kTcp6Header =
    "  sl  local_address                         remote_address                        st "
    "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
constexpr std::string_view kUdpHeader =
    "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    "timeout inode ref pointer drops            ";
constexpr std::string_view kUdp6Header =
    "  sl  local_address                         remote_address                        st "
    "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops";

// 127.0.0.1:38211 listening.
constexpr std::string_view kTcpListener =
    "   0: 0100007F:9543 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 "
    "16977259 2 000000002d035e21 100 0 0 10 0                  ";
// The client 127.0.0.1:49424 -> 127.0.0.1:38211.
constexpr std::string_view kTcpClient =
    "   1: 0100007F:C110 0100007F:9543 01 00000000:00000000 00:00000000 00000000     0        0 "
    "16977260 2 00000000f53c1ddd 20 0 0 10 -1                  ";
// The server half of the same connection, still in the accept queue: no inode yet.
constexpr std::string_view kTcpAcceptQueue =
    "   2: 0100007F:9543 0100007F:C110 01 00000000:00000000 00:00000000 00000000     0        0 "
    "0 1 00000000d07db101 20 0 0 10 -1                         ";
// TIME_WAIT, from the host: 192.0.2.2:38706 -> 203.0.113.80:80.
constexpr std::string_view kTcpTimeWait =
    "   1: 020200C0:9732 507100CB:0050 06 00000000:00000000 03:000009DA 00000000     0        0 "
    "0 3 0000000013f96a95                                      ";
// [::]:33573 listening, dual-stack.
constexpr std::string_view kTcp6WildcardListener =
    "   0: 00000000000000000000000000000000:8325 00000000000000000000000000000000:0000 0A "
    "00000000:00000001 00:00000000 00000000     0        0 16977255 2 00000000343c3201 100 0 0 10 "
    "0";
// [::1]:53210 -> [::1]:33573.
constexpr std::string_view kTcp6Loopback =
    "   3: 00000000000000000000000001000000:CFDA 00000000000000000000000001000000:8325 01 "
    "00000000:00000000 00:00000000 00000000     0        0 16977256 2 00000000f5b620d2 20 0 0 10 "
    "-1";
// A dual-stack socket connected from 127.0.0.1:41604 to 127.0.0.1:33573 (v4-mapped).
constexpr std::string_view kTcp6DualStack =
    "   2: 0000000000000000FFFF00000100007F:A284 0000000000000000FFFF00000100007F:8325 01 "
    "00000000:00000000 00:00000000 00000000     0        0 16977258 2 0000000046ffbcd9 20 0 0 10 "
    "-1";
// [2001:db8::1:2]:37322 -> [2001:db8::1:2]:443, owned by uid 1000.
constexpr std::string_view kTcp6Global =
    "   2: B80D0120000000000000000002000100:91CA B80D0120000000000000000002000100:01BB 01 "
    "00000000:00000000 00:00000000 00000000  1000        0 17072819 2 00000000158875b0 20 0 0 10 "
    "-1";
// [2001:db8::1:2]:443 listening.
constexpr std::string_view kTcp6GlobalListener =
    "   0: B80D0120000000000000000002000100:01BB 00000000000000000000000000000000:0000 0A "
    "00000000:00000001 00:00000000 00000000     0        0 17072818 2 000000001462bc27 100 0 0 10 "
    "0";
// 0.0.0.0:60971, unconnected.
constexpr std::string_view kUdpWildcard =
    "16233: 00000000:EE2B 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 "
    "16977262 2 000000002c24dc8e 0      ";
// 198.51.100.7:5353 connected to 198.51.100.7:53, uid 1000.
constexpr std::string_view kUdpConnected =
    "  808: 076433C6:14E9 076433C6:0035 01 00000000:00000000 00:00000000 00000000  1000        0 "
    "17072820 2 0000000030af65b9 0      ";
// [::1]:33467 connected to [::1]:53.
constexpr std::string_view kUdp6Loopback =
    " 5113: 00000000000000000000000001000000:82BB 00000000000000000000000001000000:0035 01 "
    "00000000:00000000 00:00000000 00000000     0        0 16977261 2 00000000a8830f1a 0";
// A dual-stack UDP socket 127.0.0.1:56443 connected to 127.0.0.1:53.
constexpr std::string_view kUdp6DualStack =
    "11705: 0000000000000000FFFF00000100007F:DC7B 0000000000000000FFFF00000100007F:0035 01 "
    "00000000:00000000 00:00000000 00000000     0        0 16977263 2 00000000eb024339 0";

// ---------------------------------------------------------------------------------------------
// parse_proc_net_line

TEST(ParseProcNetLine, ReadsAnIpv4Listener) {
    const auto entry = parse_proc_net_line(kTcpListener, IpFamily::V4);
    ASSERT_TRUE(entry.has_value()) << entry.error().what;
    EXPECT_EQ(*entry, (ProcNetEntry{.local_address = ip("127.0.0.1"),
                                    .local_port = 38211,
                                    .remote_address = ip("0.0.0.0"),
                                    .remote_port = 0,
                                    .state = 0x0A,
                                    .uid = 0,
                                    .inode = 16977259}));
}

TEST(ParseProcNetLine, ReadsATimeWaitEntryWithoutInode) {
    const auto entry = parse_proc_net_line(kTcpTimeWait, IpFamily::V4);
    ASSERT_TRUE(entry.has_value()) << entry.error().what;
    EXPECT_EQ(entry->local_address, ip("192.0.2.2"));
    EXPECT_EQ(entry->local_port, 38706);
    EXPECT_EQ(entry->remote_address, ip("203.0.113.80"));
    EXPECT_EQ(entry->remote_port, 80);
    EXPECT_EQ(entry->state, 0x06);
    EXPECT_EQ(entry->inode, 0U);
}

TEST(ParseProcNetLine, ReadsIpv6WordsInHostByteOrder) {
    const auto entry = parse_proc_net_line(kTcp6Global, IpFamily::V6);
    ASSERT_TRUE(entry.has_value()) << entry.error().what;
    EXPECT_EQ(*entry, (ProcNetEntry{.local_address = ip("2001:db8::1:2"),
                                    .local_port = 37322,
                                    .remote_address = ip("2001:db8::1:2"),
                                    .remote_port = 443,
                                    .state = 0x01,
                                    .uid = 1000,
                                    .inode = 17072819}));
}

TEST(ParseProcNetLine, ReadsIpv6Loopback) {
    const auto entry = parse_proc_net_line(kTcp6Loopback, IpFamily::V6);
    ASSERT_TRUE(entry.has_value()) << entry.error().what;
    EXPECT_EQ(entry->local_address, ip("::1"));
    EXPECT_EQ(entry->remote_address, ip("::1"));
    EXPECT_EQ(entry->local_port, 53210);
    EXPECT_EQ(entry->remote_port, 33573);
}

TEST(ParseProcNetLine, FoldsV4MappedAddressesToIpv4) {
    const auto entry = parse_proc_net_line(kTcp6DualStack, IpFamily::V6);
    ASSERT_TRUE(entry.has_value()) << entry.error().what;
    EXPECT_TRUE(entry->local_address.is_v4());
    EXPECT_EQ(entry->local_address, ip("127.0.0.1"));
    EXPECT_EQ(entry->remote_address, ip("127.0.0.1"));
    EXPECT_EQ(entry->local_port, 41604);
}

TEST(ParseProcNetLine, ReadsUdpLinesWithTheirExtraColumns) {
    const auto connected = parse_proc_net_line(kUdpConnected, IpFamily::V4);
    ASSERT_TRUE(connected.has_value()) << connected.error().what;
    EXPECT_EQ(*connected, (ProcNetEntry{.local_address = ip("198.51.100.7"),
                                        .local_port = 5353,
                                        .remote_address = ip("198.51.100.7"),
                                        .remote_port = 53,
                                        .state = 0x01,
                                        .uid = 1000,
                                        .inode = 17072820}));
    const auto udp6 = parse_proc_net_line(kUdp6Loopback, IpFamily::V6);
    ASSERT_TRUE(udp6.has_value()) << udp6.error().what;
    EXPECT_EQ(udp6->local_address, ip("::1"));
    EXPECT_EQ(udp6->local_port, 33467);
    EXPECT_EQ(udp6->remote_port, 53);
    EXPECT_EQ(udp6->inode, 16977261U);
}

TEST(ParseProcNetLine, RejectsTheHeader) {
    EXPECT_FALSE(parse_proc_net_line(kTcpHeader, IpFamily::V4).has_value());
    EXPECT_FALSE(parse_proc_net_line(kUdp6Header, IpFamily::V6).has_value());
}

TEST(ParseProcNetLine, RejectsALineOfTheOtherFamily) {
    EXPECT_FALSE(parse_proc_net_line(kTcpListener, IpFamily::V6).has_value());
    EXPECT_FALSE(parse_proc_net_line(kTcp6Loopback, IpFamily::V4).has_value());
}

TEST(ParseProcNetLine, RejectsTruncatedAndGarbledLines) {
    EXPECT_FALSE(parse_proc_net_line("", IpFamily::V4).has_value());
    EXPECT_FALSE(parse_proc_net_line(kTcpListener.substr(0, 90), IpFamily::V4).has_value());
    EXPECT_FALSE(
        parse_proc_net_line("   0: 0100007G:9543 00000000:0000 0A 00000000:00000001 00:00000000 "
                            "00000000     0        0 1 2",
                            IpFamily::V4)
            .has_value());
    EXPECT_FALSE(
        parse_proc_net_line("   0: 0100007F:9543 00000000:0000 0A 00000000:00000001 00:00000000 "
                            "00000000    -1        0 1 2",
                            IpFamily::V4)
            .has_value());
    EXPECT_FALSE(
        parse_proc_net_line("   0: 0100007F:19543 00000000:0000 0A 00000000:00000001 00:00000000 "
                            "00000000     0        0 1 2",
                            IpFamily::V4)
            .has_value());
}

// ---------------------------------------------------------------------------------------------
// ProcNetSocketTable over a fake /proc

class ProcNetSocketTableTest : public ::testing::Test {
protected:
    void SetUp() override { fs::create_directories(proc_root_ / "net"); }
    void TearDown() override { fs::remove_all(proc_root_); }

    void write_table(const std::string& name, std::string_view header,
                     std::initializer_list<std::string_view> lines) {
        std::ofstream file(proc_root_ / "net" / name);
        file << header << '\n';
        for (const std::string_view line : lines) {
            file << line << '\n';
        }
    }

    std::optional<SocketRecord> find(const SocketQuery& query) {
        ProcNetSocketTable table(proc_root_);
        auto found = table.find(query);
        EXPECT_TRUE(found.has_value()) << found.error().message();
        return found.value_or(std::nullopt);
    }

    fs::path proc_root_ = fs::temp_directory_path() /
                          ("pw-state-proc-" + std::to_string(::getpid()) + "-" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
};

SocketQuery tcp(std::string_view local, std::uint16_t local_port, std::string_view remote,
                std::uint16_t remote_port, packet::Direction direction) {
    return SocketQuery{.protocol = packet::protocol::kTcp,
                       .local_address = ip(local),
                       .local_port = local_port,
                       .remote_address = ip(remote),
                       .remote_port = remote_port,
                       .direction = direction};
}

SocketQuery udp(std::string_view local, std::uint16_t local_port, std::string_view remote,
                std::uint16_t remote_port, packet::Direction direction) {
    auto query = tcp(local, local_port, remote, remote_port, direction);
    query.protocol = packet::protocol::kUdp;
    return query;
}

constexpr auto kOut = packet::Direction::Outbound;
constexpr auto kIn = packet::Direction::Inbound;

TEST_F(ProcNetSocketTableTest, FindsAnOutboundTcpConnectionExactly) {
    write_table("tcp", kTcpHeader, {kTcpListener, kTcpClient, kTcpAcceptQueue});
    EXPECT_EQ(
        find(tcp("127.0.0.1", 49424, "127.0.0.1", 38211, kOut)),
        (SocketRecord{.inode = 16977260, .uid = 0, .cookie = 0, .match = SocketMatch::Exact}));
}

TEST_F(ProcNetSocketTableTest, InboundConnectionInTheAcceptQueueBelongsToTheListener) {
    write_table("tcp", kTcpHeader, {kTcpListener, kTcpClient, kTcpAcceptQueue});
    EXPECT_EQ(find(tcp("127.0.0.1", 38211, "127.0.0.1", 49424, kIn)),
              (SocketRecord{.inode = 16977259, .match = SocketMatch::Listener}));
}

TEST_F(ProcNetSocketTableTest, InboundSynWithoutASocketBelongsToTheListener) {
    write_table("tcp", kTcpHeader, {kTcpListener});
    EXPECT_EQ(find(tcp("127.0.0.1", 38211, "192.0.2.9", 50000, kIn)),
              (SocketRecord{.inode = 16977259, .match = SocketMatch::Listener}));
}

TEST_F(ProcNetSocketTableTest, ListenerDoesNotOwnOutboundFlows) {
    write_table("tcp", kTcpHeader, {kTcpListener});
    EXPECT_EQ(find(tcp("127.0.0.1", 38211, "192.0.2.9", 50000, kOut)), std::nullopt);
}

TEST_F(ProcNetSocketTableTest, ListenerOnAnotherAddressDoesNotMatch) {
    write_table("tcp", kTcpHeader, {kTcpListener});
    EXPECT_EQ(find(tcp("192.0.2.2", 38211, "192.0.2.9", 50000, kIn)), std::nullopt);
}

TEST_F(ProcNetSocketTableTest, DualStackWildcardListenerTakesIpv4) {
    write_table("tcp", kTcpHeader, {});
    write_table("tcp6", kTcp6Header, {kTcp6WildcardListener});
    EXPECT_EQ(find(tcp("192.0.2.2", 33573, "192.0.2.9", 50000, kIn)),
              (SocketRecord{.inode = 16977255, .match = SocketMatch::Listener}));
}

TEST_F(ProcNetSocketTableTest, SpecificListenerWinsOverWildcard) {
    // The samples listen on different ports; this wildcard listener takes the global one's.
    write_table(
        "tcp6", kTcp6Header,
        {"   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 "
         "0A 00000000:00000001 00:00000000 00000000     0        0 111 2 0 100 0 0 10 0",
         kTcp6GlobalListener});
    EXPECT_EQ(find(tcp("2001:db8::1:2", 443, "2001:db8::99", 50000, kIn)),
              (SocketRecord{.inode = 17072818, .match = SocketMatch::Listener}));
    EXPECT_EQ(find(tcp("2001:db8::5", 443, "2001:db8::99", 50000, kIn)),
              (SocketRecord{.inode = 111, .match = SocketMatch::Listener}));
}

TEST_F(ProcNetSocketTableTest, FindsIpv6ConnectionsWithTheirUid) {
    write_table("tcp6", kTcp6Header, {kTcp6GlobalListener, kTcp6Global, kTcp6Loopback});
    EXPECT_EQ(find(tcp("2001:db8::1:2", 37322, "2001:db8::1:2", 443, kOut)),
              (SocketRecord{.inode = 17072819, .uid = 1000, .match = SocketMatch::Exact}));
    EXPECT_EQ(find(tcp("::1", 53210, "::1", 33573, kOut)),
              (SocketRecord{.inode = 16977256, .match = SocketMatch::Exact}));
}

TEST_F(ProcNetSocketTableTest, FindsIpv4FlowsOfDualStackSockets) {
    write_table("tcp", kTcpHeader, {});
    write_table("tcp6", kTcp6Header, {kTcp6DualStack});
    EXPECT_EQ(find(tcp("127.0.0.1", 41604, "127.0.0.1", 33573, kOut)),
              (SocketRecord{.inode = 16977258, .match = SocketMatch::Exact}));
}

TEST_F(ProcNetSocketTableTest, TimeWaitIsNotAnOwner) {
    write_table("tcp", kTcpHeader, {kTcpTimeWait});
    EXPECT_EQ(find(tcp("192.0.2.2", 38706, "203.0.113.80", 80, kOut)), std::nullopt);
}

TEST_F(ProcNetSocketTableTest, FindsConnectedUdpExactly) {
    write_table("udp", kUdpHeader, {kUdpWildcard, kUdpConnected});
    write_table("udp6", kUdp6Header, {kUdp6Loopback, kUdp6DualStack});
    EXPECT_EQ(find(udp("198.51.100.7", 5353, "198.51.100.7", 53, kOut)),
              (SocketRecord{.inode = 17072820, .uid = 1000, .match = SocketMatch::Exact}));
    EXPECT_EQ(find(udp("::1", 33467, "::1", 53, kOut)),
              (SocketRecord{.inode = 16977261, .match = SocketMatch::Exact}));
    EXPECT_EQ(find(udp("127.0.0.1", 56443, "127.0.0.1", 53, kOut)),
              (SocketRecord{.inode = 16977263, .match = SocketMatch::Exact}));
}

TEST_F(ProcNetSocketTableTest, FindsUnconnectedUdpByLocalPortInBothDirections) {
    write_table("udp", kUdpHeader, {kUdpWildcard, kUdpConnected});
    const SocketRecord expected{.inode = 16977262, .match = SocketMatch::UnconnectedUdp};
    EXPECT_EQ(find(udp("10.0.0.5", 60971, "192.0.2.53", 53, kOut)), expected);
    EXPECT_EQ(find(udp("10.0.0.5", 60971, "192.0.2.53", 53, kIn)), expected);
}

TEST_F(ProcNetSocketTableTest, ConnectedUdpSocketDoesNotOwnAnotherPeer) {
    write_table("udp", kUdpHeader, {kUdpConnected});
    EXPECT_EQ(find(udp("198.51.100.7", 5353, "198.51.100.8", 53, kOut)), std::nullopt);
}

TEST_F(ProcNetSocketTableTest, SpecificUdpBindWinsOverWildcard) {
    write_table("udp", kUdpHeader,
                {kUdpWildcard,
                 "  900: 0500000A:EE2B 00000000:0000 07 00000000:00000000 00:00000000 00000000  "
                 "  42        0 222 2 0000000000000000 0"});
    EXPECT_EQ(find(udp("10.0.0.5", 60971, "192.0.2.53", 53, kOut)),
              (SocketRecord{.inode = 222, .uid = 42, .match = SocketMatch::UnconnectedUdp}));
    EXPECT_EQ(find(udp("10.0.0.6", 60971, "192.0.2.53", 53, kOut)),
              (SocketRecord{.inode = 16977262, .match = SocketMatch::UnconnectedUdp}));
}

TEST_F(ProcNetSocketTableTest, Ipv6QueriesIgnoreIpv4Tables) {
    write_table("udp", kUdpHeader, {kUdpWildcard});
    write_table("udp6", kUdp6Header, {});
    EXPECT_EQ(find(udp("::1", 60971, "::1", 53, kOut)), std::nullopt);
}

TEST_F(ProcNetSocketTableTest, MissingIpv6TablesAreNotAnError) {
    write_table("tcp", kTcpHeader, {kTcpClient});
    EXPECT_EQ(find(tcp("127.0.0.1", 49424, "127.0.0.1", 38211, kOut)),
              (SocketRecord{.inode = 16977260, .match = SocketMatch::Exact}));
}

TEST_F(ProcNetSocketTableTest, AMalformedLineIsAnError) {
    write_table("tcp", kTcpHeader, {kTcpClient, "   9: garbage"});
    ProcNetSocketTable table(proc_root_);
    const auto found = table.find(tcp("127.0.0.1", 49424, "127.0.0.1", 38211, kOut));
    ASSERT_FALSE(found.has_value());
    EXPECT_NE(found.error().what.find("garbage"), std::string::npos);
}

TEST_F(ProcNetSocketTableTest, OtherProtocolsAreAnError) {
    auto query = tcp("127.0.0.1", 1, "127.0.0.1", 2, kOut);
    query.protocol = packet::protocol::kSctp;
    ProcNetSocketTable table(proc_root_);
    EXPECT_FALSE(table.find(query).has_value());
}

} // namespace
} // namespace pw::state
