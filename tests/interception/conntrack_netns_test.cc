// Integration tests of ConntrackTable and ConntrackDestroyListener against the real kernel.
// Every test first moves this process into a brand-new network namespace (and proves it),
// brings lo up, turns on accounting there and installs a rule that makes the namespace track
// connections; the flows are real sockets over loopback. Needs root (CAP_SYS_ADMIN for unshare,
// CAP_NET_ADMIN inside). main() is in rule_set_netns_test.cc.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/ip_address.h"
#include "common/unique_fd.h"
#include "fakes/private_network_namespace.h"
#include "fakes/socket_address.h"
#include "interception/conntrack.h"
#include "interception/conntrack_destroy_listener.h"
#include "interception/rule_set.h"

namespace pw::interception {
namespace {

using ::testing::ElementsAre;

constexpr std::uint8_t kTcp = IPPROTO_TCP;
constexpr std::uint8_t kUdp = IPPROTO_UDP;

// strerror() is not thread-safe; this is.
std::string errno_text() {
    return std::error_code(errno, std::system_category()).message();
}

std::string_view loopback(IpFamily family) {
    return family == IpFamily::V4 ? "127.0.0.1" : "::1";
}

IpAddress loopback_address(IpFamily family) {
    return *IpAddress::parse(loopback(family));
}

std::pair<sockaddr_storage, socklen_t> socket_address(IpFamily family, std::uint16_t port) {
    sockaddr_storage storage{};
    if (family == IpFamily::V4) {
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        std::memcpy(&storage, &address, sizeof(address));
        return {storage, sizeof(address)};
    }
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_port = htons(port);
    address.sin6_addr = in6addr_loopback;
    std::memcpy(&storage, &address, sizeof(address));
    return {storage, sizeof(address)};
}

sockaddr* as_sockaddr(sockaddr_storage& storage) {
    return reinterpret_cast<sockaddr*>(&storage); // NOLINT: the sockets API
}

testing::SocketAddress local_end(const UniqueFd& socket) {
    sockaddr_storage storage{};
    socklen_t length = sizeof(storage);
    EXPECT_EQ(::getsockname(socket.get(), as_sockaddr(storage), &length), 0) << errno_text();
    return testing::socket_address_from(storage);
}

int domain_of(IpFamily family) {
    return family == IpFamily::V4 ? AF_INET : AF_INET6;
}

// A connected TCP pair over loopback, and the connection as each end names it.
struct TcpPair {
    UniqueFd listener;
    UniqueFd client;
    UniqueFd server;
    FlowTuple client_view; // outbound: local is the client
    FlowTuple server_view; // inbound: local is the server
};

// Fails the test with `what` and the OS error when `ok` is false; returns `ok`. Lets the
// helpers below report failures and return whether they succeeded (the tests assert on that).
bool check(bool ok, std::string_view what) {
    if (!ok) {
        ADD_FAILURE() << what << ": " << errno_text();
    }
    return ok;
}

// Listens on an ephemeral loopback port.
bool listen_tcp(IpFamily family, TcpPair& pair) {
    pair.listener = UniqueFd(::socket(domain_of(family), SOCK_STREAM | SOCK_CLOEXEC, 0));
    auto [address, length] = socket_address(family, 0);
    return check(pair.listener.valid(), "socket") &&
           check(::bind(pair.listener.get(), as_sockaddr(address), length) == 0, "bind") &&
           check(::listen(pair.listener.get(), 4) == 0, "listen");
}

// Connects to `connect_port` on loopback (0: the listener's own port) and accepts.
bool accept_tcp(IpFamily family, TcpPair& pair, std::uint16_t connect_port = 0) {
    const auto listening = local_end(pair.listener);
    pair.client = UniqueFd(::socket(domain_of(family), SOCK_STREAM | SOCK_CLOEXEC, 0));
    auto [target, target_length] =
        socket_address(family, connect_port == 0 ? listening.port : connect_port);
    if (!check(pair.client.valid(), "socket") ||
        !check(::connect(pair.client.get(), as_sockaddr(target), target_length) == 0, "connect")) {
        return false;
    }
    pair.server = UniqueFd(::accept4(pair.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!check(pair.server.valid(), "accept")) {
        return false;
    }
    const auto client = local_end(pair.client);
    const auto server = local_end(pair.server);
    pair.client_view = {.protocol = kTcp,
                        .local_address = client.address,
                        .local_port = client.port,
                        .remote_address = server.address,
                        .remote_port = connect_port == 0 ? server.port : connect_port};
    pair.server_view = {.protocol = kTcp,
                        .local_address = server.address,
                        .local_port = server.port,
                        .remote_address = client.address,
                        .remote_port = client.port};
    return true;
}

bool connect_tcp(IpFamily family, TcpPair& pair) {
    return listen_tcp(family, pair) && accept_tcp(family, pair);
}

// A UDP flow over loopback.
struct UdpFlow {
    UniqueFd client;
    UniqueFd server;
    FlowTuple client_view;
};

bool open_udp(IpFamily family, UdpFlow& flow) {
    flow.server = UniqueFd(::socket(domain_of(family), SOCK_DGRAM | SOCK_CLOEXEC, 0));
    flow.client = UniqueFd(::socket(domain_of(family), SOCK_DGRAM | SOCK_CLOEXEC, 0));
    auto [any, any_length] = socket_address(family, 0);
    if (!check(flow.server.valid() && flow.client.valid(), "socket") ||
        !check(::bind(flow.server.get(), as_sockaddr(any), any_length) == 0, "bind")) {
        return false;
    }
    const auto server = local_end(flow.server);
    auto [target, target_length] = socket_address(family, server.port);
    if (!check(::connect(flow.client.get(), as_sockaddr(target), target_length) == 0, "connect")) {
        return false;
    }
    const auto client = local_end(flow.client);
    flow.client_view = {.protocol = kUdp,
                        .local_address = client.address,
                        .local_port = client.port,
                        .remote_address = server.address,
                        .remote_port = server.port};
    return true;
}

// `datagrams` of 100 bytes from the client, `answers` of 50 bytes back from the server.
bool send_udp(IpFamily family, UdpFlow& flow, int datagrams, int answers) {
    if (!open_udp(family, flow)) {
        return false;
    }
    const std::array<char, 100> payload{};
    bool sent = true;
    for (int i = 0; i < datagrams; ++i) {
        sent = sent &&
               check(::send(flow.client.get(), payload.data(), payload.size(), 0) == 100, "send");
    }
    auto [back, back_length] = socket_address(family, flow.client_view.local_port);
    for (int i = 0; i < answers; ++i) {
        sent = sent && check(::sendto(flow.server.get(), payload.data(), 50, 0, as_sockaddr(back),
                                      back_length) == 50,
                             "sendto");
    }
    return sent;
}

// An ICMP echo request to loopback with identifier `id` (the kernel answers it).
bool ping(IpFamily family, std::uint16_t id) {
    const int protocol = family == IpFamily::V4 ? int{IPPROTO_ICMP} : int{IPPROTO_ICMPV6};
    const UniqueFd socket(::socket(domain_of(family), SOCK_RAW | SOCK_CLOEXEC, protocol));
    if (!check(socket.valid(), "socket")) {
        return false;
    }
    std::array<std::uint8_t, 16> message{};
    message[0] = family == IpFamily::V4 ? 8 : 128; // echo request
    message[4] = static_cast<std::uint8_t>(id >> 8U);
    message[5] = static_cast<std::uint8_t>(id & 0xffU);
    if (family == IpFamily::V4) { // ICMPv6 raw sockets get their checksum from the kernel
        std::uint32_t sum = 0;
        for (std::size_t i = 0; i < message.size(); i += 2) {
            sum += static_cast<std::uint32_t>(message[i] << 8U | message[i + 1]);
        }
        sum = (sum & 0xffffU) + (sum >> 16U);
        const auto checksum = static_cast<std::uint16_t>(~sum);
        message[2] = static_cast<std::uint8_t>(checksum >> 8U);
        message[3] = static_cast<std::uint8_t>(checksum & 0xffU);
    }
    auto [target, length] = socket_address(family, 0);
    return check(::sendto(socket.get(), message.data(), message.size(), 0, as_sockaddr(target),
                          length) == static_cast<ssize_t>(message.size()),
                 "sendto");
}

// Every ICMP (ICMPv6) flow of loopback to itself.
FlowTuple icmp_flow(IpFamily family) {
    return FlowTuple{.protocol = family == IpFamily::V4 ? std::uint8_t{IPPROTO_ICMP}
                                                        : std::uint8_t{IPPROTO_ICMPV6},
                     .local_address = loopback_address(family),
                     .local_port = 0,
                     .remote_address = loopback_address(family),
                     .remote_port = 0};
}

bool wait_readable(int fd, std::chrono::milliseconds timeout) {
    pollfd wanted{.fd = fd, .events = POLLIN, .revents = 0};
    return ::poll(&wanted, 1, static_cast<int>(timeout.count())) == 1;
}

// Every end the listener reports until it stays quiet for `quiet`, or `enough` came, or 30 s
// passed.
std::vector<ConntrackEntry> collect_ends(ConntrackDestroyListener& listener,
                                         std::chrono::milliseconds quiet,
                                         std::size_t enough = SIZE_MAX) {
    std::vector<ConntrackEntry> ended;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (ended.size() < enough && std::chrono::steady_clock::now() < deadline &&
           wait_readable(listener.fd(), quiet)) {
        const auto drained =
            listener.drain([&](const ConntrackEntry& entry) { ended.push_back(entry); });
        EXPECT_TRUE(drained.has_value()) << drained.error().message();
        if (!drained) {
            break;
        }
    }
    return ended;
}

// Whether `bytes` sent by the client reach the server within a second.
bool arrives(const TcpPair& pair, std::size_t bytes) {
    const std::vector<char> data(bytes);
    EXPECT_EQ(::send(pair.client.get(), data.data(), data.size(), 0), static_cast<ssize_t>(bytes))
        << errno_text();
    if (!wait_readable(pair.server.get(), std::chrono::milliseconds(1000))) {
        return false;
    }
    std::vector<char> received(bytes);
    return ::recv(pair.server.get(), received.data(), received.size(), MSG_WAITALL) ==
           static_cast<ssize_t>(bytes);
}

// Moves the process into a new network namespace and proves it; then lo up, accounting on, and
// a rule that restores the connection mark into the packet mark (it also makes the namespace
// track connections: without a rule that needs conntrack, a new namespace tracks nothing).
class ConntrackNetnsTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (const auto reason = testing::PrivateNetworkNamespace::enter()) {
            GTEST_SKIP() << *reason;
        }
        // Only ever reached inside the private namespace.
        ASSERT_TRUE(bring_loopback_up() && write_sysctl("net/netfilter/nf_conntrack_acct", "1") &&
                    restore_both("*mangle\n-A OUTPUT -j CONNMARK --restore-mark\n"
                                 "-A INPUT -j CONNMARK --restore-mark\nCOMMIT\n"));
        // Netlink sockets belong to the namespace they were opened in: open them now.
        auto table = ConntrackTable::open();
        ASSERT_TRUE(table.has_value()) << table.error().message();
        table_.emplace(std::move(*table));
    }

    static bool bring_loopback_up() {
        const UniqueFd control(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        ifreq request{};
        std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
        if (!check(control.valid(), "socket") ||
            !check(::ioctl(control.get(), SIOCGIFFLAGS, &request) == 0, "SIOCGIFFLAGS lo")) {
            return false;
        }
        request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
        return check(::ioctl(control.get(), SIOCSIFFLAGS, &request) == 0, "SIOCSIFFLAGS lo");
    }

    // Call only in the private namespace (after SetUp).
    static bool write_sysctl(const std::string& name, std::string_view value) {
        std::ofstream file("/proc/sys/" + name);
        file << value;
        file.close();
        return check(!file.fail(), std::string("write /proc/sys/").append(name));
    }

    bool restore_both(std::string_view script) {
        for (const IpFamily family : {IpFamily::V4, IpFamily::V6}) {
            const auto restored = runner_.restore(family, script);
            if (!restored) {
                ADD_FAILURE() << restored.error().message();
                return false;
            }
        }
        return true;
    }

    bool open_listener(int receive_buffer = ConntrackDestroyListener::kDefaultReceiveBuffer) {
        auto listener = ConntrackDestroyListener::open(receive_buffer);
        if (!listener) {
            ADD_FAILURE() << listener.error().message();
            return false;
        }
        listener_.emplace(std::move(*listener));
        return true;
    }

    // A UDP flow (3 datagrams out, 1 back) whose entry is marked `mark` and then deleted.
    bool end_marked_udp_flow(IpFamily family, UdpFlow& flow, std::uint32_t mark) {
        return send_udp(family, flow, 3, 1) && update_mark(flow.client_view, mark) == 1 &&
               delete_entry(flow.client_view) == 1;
    }

    // UDP flows from distinct client ports, each with a conntrack entry marked `mark`.
    bool make_marked_udp_flows(std::vector<UdpFlow>& flows, std::uint32_t mark) {
        return std::ranges::all_of(flows, [&](UdpFlow& flow) {
            return send_udp(IpFamily::V4, flow, 1, 0) && update_mark(flow.client_view, mark) == 1;
        });
    }

    std::vector<ConntrackEntry> find(const FlowTuple& flow) {
        auto found = table_->find(flow);
        EXPECT_TRUE(found.has_value()) << found.error().message();
        return found ? *found : std::vector<ConntrackEntry>{};
    }

    std::vector<std::uint32_t> marks_of(const FlowTuple& flow) {
        std::vector<std::uint32_t> marks;
        for (const auto& entry : find(flow)) {
            marks.push_back(entry.mark);
        }
        return marks;
    }

    // The mark of the flow's only entry; 0xffffffff when it has none or several.
    std::uint32_t mark_of(const FlowTuple& flow) {
        const auto entries = find(flow);
        return entries.size() == 1 ? entries.front().mark : 0xffffffffU;
    }

    std::size_t update_mark(const FlowTuple& flow, std::uint32_t mark) {
        const auto updated = table_->update_mark(flow, mark);
        EXPECT_TRUE(updated.has_value()) << updated.error().message();
        return updated.value_or(99);
    }

    std::size_t delete_entry(const FlowTuple& flow) {
        const auto deleted = table_->delete_entry(flow);
        EXPECT_TRUE(deleted.has_value()) << deleted.error().message();
        return deleted.value_or(99);
    }

    IptablesBinaryRunner runner_;
    std::optional<ConntrackTable> table_;
    std::optional<ConntrackDestroyListener> listener_;
};

class ConntrackFamilyTest : public ConntrackNetnsTest,
                            public ::testing::WithParamInterface<IpFamily> {};

std::string family_name(const ::testing::TestParamInfo<IpFamily>& info) {
    return info.param == IpFamily::V4 ? "IPv4" : "IPv6";
}

INSTANTIATE_TEST_SUITE_P(Families, ConntrackFamilyTest,
                         ::testing::Values(IpFamily::V4, IpFamily::V6), family_name);

TEST_P(ConntrackFamilyTest, BothEndsOfATcpConnectionFindTheSameEntry) {
    TcpPair pair;
    ASSERT_TRUE(connect_tcp(GetParam(), pair));

    const auto outbound = find(pair.client_view);
    const auto inbound = find(pair.server_view);

    ASSERT_EQ(outbound.size(), 1U);
    ASSERT_EQ(inbound.size(), 1U);
    EXPECT_EQ(outbound.front().id, inbound.front().id);
    EXPECT_EQ(outbound.front().protocol, kTcp);
    EXPECT_EQ(outbound.front().as_outbound(), pair.client_view);
    EXPECT_EQ(outbound.front().as_inbound(), pair.server_view);
    EXPECT_EQ(outbound.front().mark, 0U);
}

TEST_P(ConntrackFamilyTest, UpdateMarkChangesTheMarkOfALiveTcpConnection) {
    TcpPair pair;
    ASSERT_TRUE(connect_tcp(GetParam(), pair));

    EXPECT_EQ(update_mark(pair.client_view, 1710), 1U);
    EXPECT_EQ(mark_of(pair.client_view), 1710U);

    // The server's end names the same entry.
    EXPECT_EQ(update_mark(pair.server_view, 1711), 1U);
    EXPECT_EQ(mark_of(pair.client_view), 1711U);
}

TEST_P(ConntrackFamilyTest, DeleteEntryRemovesTheEntryAndASecondDeleteFindsNothing) {
    TcpPair pair;
    ASSERT_TRUE(connect_tcp(GetParam(), pair));
    ASSERT_EQ(find(pair.client_view).size(), 1U);

    EXPECT_EQ(delete_entry(pair.client_view), 1U);

    EXPECT_TRUE(find(pair.client_view).empty());
    EXPECT_EQ(delete_entry(pair.client_view), 0U);
    EXPECT_EQ(update_mark(pair.client_view, 1711), 0U);
}

TEST_P(ConntrackFamilyTest, AConnectionWithoutEntryIsNotFoundRatherThanAnError) {
    const FlowTuple never{.protocol = kTcp,
                          .local_address = loopback_address(GetParam()),
                          .local_port = 40001,
                          .remote_address = loopback_address(GetParam()),
                          .remote_port = 40002};

    EXPECT_EQ(update_mark(never, 1711), 0U);
    EXPECT_EQ(delete_entry(never), 0U);
    EXPECT_TRUE(find(never).empty());
}

TEST_P(ConntrackFamilyTest, UpdateMarkChangesAUdpFlow) {
    UdpFlow flow;
    ASSERT_TRUE(send_udp(GetParam(), flow, 1, 1));

    EXPECT_EQ(update_mark(flow.client_view, 1712), 1U);

    EXPECT_EQ(mark_of(flow.client_view), 1712U);
}

TEST_P(ConntrackFamilyTest, IcmpFlowsAreEveryEntryBetweenTheTwoAddresses) {
    ASSERT_TRUE(ping(GetParam(), 7));
    ASSERT_TRUE(ping(GetParam(), 8));
    const FlowTuple flow = icmp_flow(GetParam());
    ASSERT_EQ(find(flow).size(), 2U);

    EXPECT_EQ(update_mark(flow, 1710), 2U);
    EXPECT_THAT(marks_of(flow), ElementsAre(1710U, 1710U));

    EXPECT_EQ(delete_entry(flow), 2U);
    EXPECT_TRUE(find(flow).empty());
    EXPECT_EQ(delete_entry(flow), 0U);
}

// The INPUT queue sees an inbound packet after a local REDIRECT rewrote its destination; the
// connection is found by that view (the entry's reply tuple), not by its original tuple.
TEST_P(ConntrackFamilyTest, AnInboundConnectionThatALocalRedirectRewroteIsFoundAsItsQueueSawIt) {
    TcpPair pair;
    ASSERT_TRUE(listen_tcp(GetParam(), pair));
    const std::uint16_t real_port = local_end(pair.listener).port;
    ASSERT_TRUE(restore_both("*nat\n-A OUTPUT -p tcp --dport 81 -j REDIRECT --to-ports " +
                             std::to_string(real_port) + "\nCOMMIT\n"));
    ASSERT_TRUE(accept_tcp(GetParam(), pair, 81));
    const FlowTuple& server_view = pair.server_view;
    ASSERT_EQ(server_view.local_port, real_port);

    const auto entries = find(server_view);

    ASSERT_EQ(entries.size(), 1U);
    EXPECT_EQ(entries.front().original.destination_port, 81);
    EXPECT_EQ(entries.front().as_inbound(), server_view);
    EXPECT_EQ(update_mark(server_view, 1712), 1U);
    EXPECT_EQ(mark_of(server_view), 1712U);
}

// What re-evaluation relies on: the next packet of a running stream restores the updated mark
// and the filter rules act on it at once.
TEST_P(ConntrackFamilyTest, AMarkUpdatedTo1711StopsARunningTcpStream) {
    ASSERT_TRUE(restore_both("*filter\n-A OUTPUT -m mark --mark 1711 -j REJECT\nCOMMIT\n"));
    TcpPair pair;
    ASSERT_TRUE(connect_tcp(GetParam(), pair));
    ASSERT_EQ(update_mark(pair.client_view, 1710), 1U);
    ASSERT_TRUE(arrives(pair, 1000));

    ASSERT_EQ(update_mark(pair.client_view, 1711), 1U);

    EXPECT_FALSE(arrives(pair, 1000)) << "data still flows after the mark became 1711";
    EXPECT_EQ(mark_of(pair.client_view), 1711U);
}

TEST_P(ConntrackFamilyTest, TheDestroyListenerReportsADeletedFlowWithItsTuplesAndMark) {
    ASSERT_TRUE(open_listener());
    UdpFlow flow;
    ASSERT_TRUE(end_marked_udp_flow(GetParam(), flow, 1710));

    const auto ended = collect_ends(*listener_, std::chrono::milliseconds(500));

    ASSERT_EQ(ended.size(), 1U);
    EXPECT_EQ(ended.front().protocol, kUdp);
    EXPECT_EQ(ended.front().as_outbound(), flow.client_view);
    EXPECT_EQ(ended.front().mark, 1710U);
    EXPECT_EQ(listener_->counters().events, 1U);
    EXPECT_EQ(listener_->counters().overflows, 0U);
}

TEST_P(ConntrackFamilyTest, TheDestroyListenerReportsTheBytesAndPacketsOfEachDirection) {
    ASSERT_TRUE(open_listener());
    UdpFlow flow; // 3 datagrams of 100 bytes out, 1 of 50 back
    ASSERT_TRUE(end_marked_udp_flow(GetParam(), flow, 1710));

    const auto ended = collect_ends(*listener_, std::chrono::milliseconds(500));

    ASSERT_EQ(ended.size(), 1U);
    const std::uint64_t header = GetParam() == IpFamily::V4 ? 20 + 8 : 40 + 8;
    EXPECT_EQ(ended.front().original_counters,
              (ConntrackCounters{.packets = 3, .bytes = 3 * (header + 100)}));
    EXPECT_EQ(ended.front().reply_counters,
              (ConntrackCounters{.packets = 1, .bytes = header + 50}));
}

TEST_F(ConntrackNetnsTest, TheDestroyListenerReportsAFlowThatTimedOut) {
    ASSERT_TRUE(write_sysctl("net/netfilter/nf_conntrack_udp_timeout", "1"));
    ASSERT_TRUE(open_listener());
    UdpFlow flow;
    ASSERT_TRUE(send_udp(IpFamily::V4, flow, 1, 0));

    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    // The kernel reaps an expired entry when its garbage collector passes (within a minute,
    // depending on the host's other entries) or when a lookup meets it, as this one does.
    EXPECT_TRUE(find(flow.client_view).empty());
    const auto ended = collect_ends(*listener_, std::chrono::seconds(5), 1);

    ASSERT_EQ(ended.size(), 1U) << "no destroy event for an expired entry";
    EXPECT_EQ(ended.front().as_outbound(), flow.client_view);
}

TEST_F(ConntrackNetnsTest, TheDestroyListenerCountsDroppedEventsAndGoesOn) {
    // The smallest buffer the kernel allows holds a few events; 200 ends at once overflow it.
    ASSERT_TRUE(open_listener(1));
    std::vector<UdpFlow> flows(200);
    ASSERT_TRUE(make_marked_udp_flows(flows, 1712));
    constexpr std::array<std::uint32_t, 1> kMarks{1712};
    ASSERT_EQ(delete_conntrack_entries_with_marks(kMarks).value_or(0), 200U);

    const auto burst = collect_ends(*listener_, std::chrono::milliseconds(200));

    EXPECT_GE(listener_->counters().overflows, 1U);
    EXPECT_LT(burst.size(), 200U);
    // Still listening: the next end is reported.
    UdpFlow last;
    ASSERT_TRUE(send_udp(IpFamily::V4, last, 1, 0));
    ASSERT_EQ(delete_entry(last.client_view), 1U);
    const auto after = collect_ends(*listener_, std::chrono::milliseconds(500));
    ASSERT_EQ(after.size(), 1U);
    EXPECT_EQ(after.front().as_outbound(), last.client_view);
}

} // namespace
} // namespace pw::interception
