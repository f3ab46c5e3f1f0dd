// Integration tests of SockDiagSocketTable and ProcNetSocketTable against real sockets. Every
// test first moves this process into a brand-new network namespace (and proves it), brings lo
// up there and opens its sockets on loopback, so nothing here sees or touches the host's
// sockets. Both tables run the same tests and must give the same answers (cookies aside). Needs
// root (CAP_SYS_ADMIN for unshare).
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <gtest/gtest.h>

#include "common/ip_address.h"
#include "common/unique_fd.h"
#include "fakes/private_network_namespace.h"
#include "fakes/socket_address.h"
#include "state/proc_net_socket_table.h"
#include "state/sock_diag_socket_table.h"
#include "support/skip_exit.h"

namespace pw::state {
namespace {

// strerror() is not thread-safe; this is.
std::string errno_text() {
    return std::error_code(errno, std::system_category()).message();
}

using Endpoint = testing::SocketAddress;

Endpoint local_end(const UniqueFd& socket) {
    sockaddr_storage storage{};
    socklen_t length = sizeof(storage);
    EXPECT_EQ(::getsockname(socket.get(), reinterpret_cast<sockaddr*>(&storage), &length), 0)
        << errno_text();
    return testing::socket_address_from(storage);
}

Endpoint remote_end(const UniqueFd& socket) {
    sockaddr_storage storage{};
    socklen_t length = sizeof(storage);
    EXPECT_EQ(::getpeername(socket.get(), reinterpret_cast<sockaddr*>(&storage), &length), 0)
        << errno_text();
    return testing::socket_address_from(storage);
}

// A sockaddr for `text` (IPv4 or IPv6 literal, "::ffff:127.0.0.1" included) and `port`.
std::pair<sockaddr_storage, socklen_t> socket_address(std::string_view text, std::uint16_t port) {
    sockaddr_storage storage{};
    const std::string copy(text);
    if (text.find(':') == std::string_view::npos) {
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        EXPECT_EQ(::inet_pton(AF_INET, copy.c_str(), &address.sin_addr), 1) << text;
        std::memcpy(&storage, &address, sizeof(address));
        return {storage, sizeof(address)};
    }
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_port = htons(port);
    EXPECT_EQ(::inet_pton(AF_INET6, copy.c_str(), &address.sin6_addr), 1) << text;
    std::memcpy(&storage, &address, sizeof(address));
    return {storage, sizeof(address)};
}

UniqueFd open_socket(int family, int type) {
    UniqueFd socket(::socket(family, type | SOCK_CLOEXEC, 0));
    EXPECT_TRUE(socket.valid()) << errno_text();
    return socket;
}

void bind_to(const UniqueFd& socket, std::string_view address, std::uint16_t port = 0) {
    const auto [storage, length] = socket_address(address, port);
    ASSERT_EQ(::bind(socket.get(), reinterpret_cast<const sockaddr*>(&storage), length), 0)
        << address << ": " << errno_text();
}

void connect_to(const UniqueFd& socket, std::string_view address, std::uint16_t port) {
    const auto [storage, length] = socket_address(address, port);
    ASSERT_EQ(::connect(socket.get(), reinterpret_cast<const sockaddr*>(&storage), length), 0)
        << address << ": " << errno_text();
}

void send_to(const UniqueFd& socket, std::string_view address, std::uint16_t port) {
    const auto [storage, length] = socket_address(address, port);
    constexpr std::string_view kPayload = "ping";
    ASSERT_EQ(::sendto(socket.get(), kPayload.data(), kPayload.size(), 0,
                       reinterpret_cast<const sockaddr*>(&storage), length),
              static_cast<ssize_t>(kPayload.size()))
        << errno_text();
}

UniqueFd listen_on(std::string_view address) {
    UniqueFd listener =
        open_socket(address.find(':') == std::string_view::npos ? AF_INET : AF_INET6, SOCK_STREAM);
    bind_to(listener, address);
    EXPECT_EQ(::listen(listener.get(), 16), 0) << errno_text();
    return listener;
}

UniqueFd accept_one(const UniqueFd& listener) {
    UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    EXPECT_TRUE(accepted.valid()) << errno_text();
    return accepted;
}

std::uint64_t inode_of(const UniqueFd& socket) {
    struct stat status{};
    EXPECT_EQ(::fstat(socket.get(), &status), 0) << errno_text();
    return status.st_ino;
}

std::uint64_t cookie_of(const UniqueFd& socket) {
    std::uint64_t cookie = 0;
    socklen_t length = sizeof(cookie);
    EXPECT_EQ(::getsockopt(socket.get(), SOL_SOCKET, SO_COOKIE, &cookie, &length), 0)
        << errno_text();
    return cookie;
}

// The flow of a connected socket, seen from that socket.
SocketQuery flow_of(const UniqueFd& socket, std::uint8_t protocol, packet::Direction direction) {
    const Endpoint local = local_end(socket);
    const Endpoint remote = remote_end(socket);
    return SocketQuery{.protocol = protocol,
                       .local_address = local.address,
                       .local_port = local.port,
                       .remote_address = remote.address,
                       .remote_port = remote.port,
                       .direction = direction};
}

SocketQuery flow(std::uint8_t protocol, std::string_view local, std::uint16_t local_port,
                 std::string_view remote, std::uint16_t remote_port, packet::Direction direction) {
    return SocketQuery{.protocol = protocol,
                       .local_address = IpAddress::parse(local).value_or(IpAddress{}),
                       .local_port = local_port,
                       .remote_address = IpAddress::parse(remote).value_or(IpAddress{}),
                       .remote_port = remote_port,
                       .direction = direction};
}

constexpr auto kOut = packet::Direction::Outbound;
constexpr auto kIn = packet::Direction::Inbound;
constexpr std::uint8_t kTcp = packet::protocol::kTcp;
constexpr std::uint8_t kUdp = packet::protocol::kUdp;
constexpr uid_t kNobody = 65534;

enum class TableKind : std::uint8_t { SockDiag, ProcNet };

std::string kind_name(const ::testing::TestParamInfo<TableKind>& info) {
    return info.param == TableKind::SockDiag ? "SockDiag" : "ProcNet";
}

// Moves the process into a new network namespace and proves it, then brings lo up. Anything
// but a proven private namespace ends the process.
class SocketTableNetnsTest : public ::testing::TestWithParam<TableKind> {
protected:
    void SetUp() override {
        if (const auto reason = testing::PrivateNetworkNamespace::enter()) {
            GTEST_SKIP() << *reason;
        }
        ASSERT_NO_FATAL_FAILURE(bring_loopback_up());
        // The netlink socket belongs to the namespace it was opened in: open it now.
        if (GetParam() == TableKind::SockDiag) {
            auto opened = SockDiagSocketTable::open();
            ASSERT_TRUE(opened.has_value()) << opened.error().message();
            table_ = std::move(*opened);
        } else {
            table_ = std::make_unique<ProcNetSocketTable>("/proc");
        }
    }

    static void bring_loopback_up() {
        const UniqueFd control = open_socket(AF_INET, SOCK_DGRAM);
        ifreq request{};
        std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
        ASSERT_EQ(::ioctl(control.get(), SIOCGIFFLAGS, &request), 0) << errno_text();
        request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
        ASSERT_EQ(::ioctl(control.get(), SIOCSIFFLAGS, &request), 0) << errno_text();
    }

    std::optional<SocketRecord> find(const SocketQuery& query) {
        auto found = table_->find(query);
        EXPECT_TRUE(found.has_value()) << found.error().message();
        return found.value_or(std::nullopt);
    }

    // The record we expect for `socket`: its inode, the uid that created it, its cookie where
    // the table can know it.
    SocketRecord record_of(const UniqueFd& socket, SocketMatch match, uid_t uid = 0) const {
        return SocketRecord{.inode = inode_of(socket),
                            .uid = uid,
                            .cookie = GetParam() == TableKind::SockDiag ? cookie_of(socket) : 0,
                            .match = match};
    }

    void expect_connected_udp_found(std::string_view address);

    std::unique_ptr<SocketTable> table_;
};

INSTANTIATE_TEST_SUITE_P(Tables, SocketTableNetnsTest,
                         ::testing::Values(TableKind::SockDiag, TableKind::ProcNet), kind_name);

TEST_P(SocketTableNetnsTest, TcpOverIpv4BothEnds) {
    const UniqueFd listener = listen_on("127.0.0.1");
    const UniqueFd client = open_socket(AF_INET, SOCK_STREAM);
    ASSERT_NO_FATAL_FAILURE(connect_to(client, "127.0.0.1", local_end(listener).port));
    const SocketQuery client_flow = flow_of(client, kTcp, kOut);
    const SocketQuery server_flow{.protocol = kTcp,
                                  .local_address = client_flow.remote_address,
                                  .local_port = client_flow.remote_port,
                                  .remote_address = client_flow.local_address,
                                  .remote_port = client_flow.local_port,
                                  .direction = kIn};

    EXPECT_EQ(find(client_flow), record_of(client, SocketMatch::Exact));
    // Not accepted yet: the connection socket has no inode, the listener owns the flow.
    EXPECT_EQ(find(server_flow), record_of(listener, SocketMatch::Listener));

    const UniqueFd server = accept_one(listener);
    EXPECT_EQ(find(server_flow), record_of(server, SocketMatch::Exact));
}

TEST_P(SocketTableNetnsTest, TcpOverIpv6BothEnds) {
    const UniqueFd listener = listen_on("::1");
    const UniqueFd client = open_socket(AF_INET6, SOCK_STREAM);
    ASSERT_NO_FATAL_FAILURE(connect_to(client, "::1", local_end(listener).port));
    const UniqueFd server = accept_one(listener);

    EXPECT_EQ(find(flow_of(client, kTcp, kOut)), record_of(client, SocketMatch::Exact));
    EXPECT_EQ(find(flow_of(server, kTcp, kIn)), record_of(server, SocketMatch::Exact));
}

TEST_P(SocketTableNetnsTest, DualStackIpv6SocketConnectingToIpv4) {
    const UniqueFd listener = listen_on("127.0.0.1");
    const UniqueFd client = open_socket(AF_INET6, SOCK_STREAM);
    ASSERT_NO_FATAL_FAILURE(connect_to(client, "::ffff:127.0.0.1", local_end(listener).port));
    const UniqueFd server = accept_one(listener);

    // What the firewall sees is an IPv4 packet.
    const SocketQuery query = flow_of(client, kTcp, kOut);
    ASSERT_TRUE(query.local_address.is_v4());
    EXPECT_EQ(find(query), record_of(client, SocketMatch::Exact));
}

TEST_P(SocketTableNetnsTest, ListenerOwnsAnInboundSynThatHasNoSocketYet) {
    const UniqueFd listener4 = listen_on("127.0.0.1");
    const UniqueFd listener6 = listen_on("::1");
    const std::uint16_t port4 = local_end(listener4).port;
    const std::uint16_t port6 = local_end(listener6).port;

    EXPECT_EQ(find(flow(kTcp, "127.0.0.1", port4, "127.0.0.1", 40000, kIn)),
              record_of(listener4, SocketMatch::Listener));
    EXPECT_EQ(find(flow(kTcp, "::1", port6, "::1", 40000, kIn)),
              record_of(listener6, SocketMatch::Listener));
    // Another local address: the listener is bound to 127.0.0.1 only.
    EXPECT_EQ(find(flow(kTcp, "127.0.0.2", port4, "127.0.0.1", 40000, kIn)), std::nullopt);
}

TEST_P(SocketTableNetnsTest, DualStackWildcardListenerOwnsAnInboundIpv4Syn) {
    const UniqueFd listener = listen_on("::");
    const std::uint16_t port = local_end(listener).port;
    EXPECT_EQ(find(flow(kTcp, "127.0.0.1", port, "127.0.0.1", 40000, kIn)),
              record_of(listener, SocketMatch::Listener));
    EXPECT_EQ(find(flow(kTcp, "::1", port, "::1", 40000, kIn)),
              record_of(listener, SocketMatch::Listener));
}

TEST_P(SocketTableNetnsTest, ListenerDoesNotOwnOutboundFlowsFromItsPort) {
    const UniqueFd listener = listen_on("127.0.0.1");
    const std::uint16_t port = local_end(listener).port;
    EXPECT_EQ(find(flow(kTcp, "127.0.0.1", port, "127.0.0.1", 40000, kOut)), std::nullopt);
}

// A UDP client connected to a bound server on `address`; both ends are looked up.
void SocketTableNetnsTest::expect_connected_udp_found(std::string_view address) {
    const int family = address.find(':') == std::string_view::npos ? AF_INET : AF_INET6;
    const UniqueFd server = open_socket(family, SOCK_DGRAM);
    bind_to(server, address);
    const UniqueFd client = open_socket(family, SOCK_DGRAM);
    connect_to(client, address, local_end(server).port);
    if (HasFatalFailure()) {
        return;
    }

    const SocketQuery client_flow = flow_of(client, kUdp, kOut);
    EXPECT_EQ(find(client_flow), record_of(client, SocketMatch::Exact));
    // The server's end of the same flow: bound, not connected.
    const SocketQuery server_flow{.protocol = kUdp,
                                  .local_address = client_flow.remote_address,
                                  .local_port = client_flow.remote_port,
                                  .remote_address = client_flow.local_address,
                                  .remote_port = client_flow.local_port,
                                  .direction = kIn};
    EXPECT_EQ(find(server_flow), record_of(server, SocketMatch::UnconnectedUdp));
}

TEST_P(SocketTableNetnsTest, ConnectedUdpOverIpv4) {
    expect_connected_udp_found("127.0.0.1");
}

TEST_P(SocketTableNetnsTest, ConnectedUdpOverIpv6) {
    expect_connected_udp_found("::1");
}

TEST_P(SocketTableNetnsTest, UnconnectedUdpSendto) {
    const UniqueFd receiver = open_socket(AF_INET, SOCK_DGRAM);
    ASSERT_NO_FATAL_FAILURE(bind_to(receiver, "127.0.0.1"));
    const std::uint16_t receiver_port = local_end(receiver).port;
    // sendto() binds the sender to 0.0.0.0 and an ephemeral port.
    const UniqueFd sender = open_socket(AF_INET, SOCK_DGRAM);
    ASSERT_NO_FATAL_FAILURE(send_to(sender, "127.0.0.1", receiver_port));
    const std::uint16_t sender_port = local_end(sender).port;

    EXPECT_EQ(find(flow(kUdp, "127.0.0.1", sender_port, "127.0.0.1", receiver_port, kOut)),
              record_of(sender, SocketMatch::UnconnectedUdp));
    // Any local address: the sender is bound to the wildcard.
    EXPECT_EQ(find(flow(kUdp, "127.0.0.9", sender_port, "192.0.2.1", 53, kOut)),
              record_of(sender, SocketMatch::UnconnectedUdp));
    EXPECT_EQ(find(flow(kUdp, "127.0.0.1", receiver_port, "127.0.0.1", sender_port, kIn)),
              record_of(receiver, SocketMatch::UnconnectedUdp));
}

TEST_P(SocketTableNetnsTest, UnconnectedUdpSendtoOverIpv6AndDualStack) {
    const UniqueFd receiver4 = open_socket(AF_INET, SOCK_DGRAM);
    ASSERT_NO_FATAL_FAILURE(bind_to(receiver4, "127.0.0.1"));
    const UniqueFd receiver6 = open_socket(AF_INET6, SOCK_DGRAM);
    ASSERT_NO_FATAL_FAILURE(bind_to(receiver6, "::1"));
    // One dual-stack socket sends to both.
    const UniqueFd sender = open_socket(AF_INET6, SOCK_DGRAM);
    ASSERT_NO_FATAL_FAILURE(send_to(sender, "::1", local_end(receiver6).port));
    ASSERT_NO_FATAL_FAILURE(send_to(sender, "::ffff:127.0.0.1", local_end(receiver4).port));
    const std::uint16_t sender_port = local_end(sender).port;

    EXPECT_EQ(find(flow(kUdp, "::1", sender_port, "::1", local_end(receiver6).port, kOut)),
              record_of(sender, SocketMatch::UnconnectedUdp));
    EXPECT_EQ(
        find(flow(kUdp, "127.0.0.1", sender_port, "127.0.0.1", local_end(receiver4).port, kOut)),
        record_of(sender, SocketMatch::UnconnectedUdp));
}

TEST_P(SocketTableNetnsTest, DualStackConnectedUdpToIpv4) {
    const UniqueFd server = open_socket(AF_INET, SOCK_DGRAM);
    ASSERT_NO_FATAL_FAILURE(bind_to(server, "127.0.0.1"));
    const UniqueFd client = open_socket(AF_INET6, SOCK_DGRAM);
    ASSERT_NO_FATAL_FAILURE(connect_to(client, "::ffff:127.0.0.1", local_end(server).port));
    const SocketQuery query = flow_of(client, kUdp, kOut);
    ASSERT_TRUE(query.local_address.is_v4());
    EXPECT_EQ(find(query), record_of(client, SocketMatch::Exact));
}

TEST_P(SocketTableNetnsTest, ReportsTheUidThatCreatedTheSocket) {
    const UniqueFd listener = listen_on("127.0.0.1");
    ASSERT_EQ(::seteuid(kNobody), 0) << errno_text();
    UniqueFd client = open_socket(AF_INET, SOCK_STREAM);
    UniqueFd udp = open_socket(AF_INET, SOCK_DGRAM);
    ASSERT_EQ(::seteuid(0), 0) << errno_text();
    ASSERT_NO_FATAL_FAILURE(connect_to(client, "127.0.0.1", local_end(listener).port));
    ASSERT_NO_FATAL_FAILURE(connect_to(udp, "127.0.0.1", 9));

    EXPECT_EQ(find(flow_of(client, kTcp, kOut)), record_of(client, SocketMatch::Exact, kNobody));
    EXPECT_EQ(find(flow_of(udp, kUdp, kOut)), record_of(udp, SocketMatch::Exact, kNobody));
}

TEST_P(SocketTableNetnsTest, ClosedSocketsAreNotFound) {
    const UniqueFd listener = listen_on("127.0.0.1");
    UniqueFd client = open_socket(AF_INET, SOCK_STREAM);
    ASSERT_NO_FATAL_FAILURE(connect_to(client, "127.0.0.1", local_end(listener).port));
    const UniqueFd server = accept_one(listener);
    UniqueFd udp = open_socket(AF_INET, SOCK_DGRAM);
    ASSERT_NO_FATAL_FAILURE(connect_to(udp, "127.0.0.1", 9));
    const SocketQuery tcp_flow = flow_of(client, kTcp, kOut);
    const SocketQuery udp_flow = flow_of(udp, kUdp, kOut);
    ASSERT_TRUE(find(tcp_flow).has_value());
    ASSERT_TRUE(find(udp_flow).has_value());

    // The closed TCP socket lingers in FIN_WAIT2 without an owner (inode 0): not found.
    client.reset();
    udp.reset();
    EXPECT_EQ(find(tcp_flow), std::nullopt);
    EXPECT_EQ(find(udp_flow), std::nullopt);
}

TEST_P(SocketTableNetnsTest, NothingIsFoundInAnEmptyNamespace) {
    EXPECT_EQ(find(flow(kTcp, "127.0.0.1", 1234, "127.0.0.1", 5678, kOut)), std::nullopt);
    EXPECT_EQ(find(flow(kTcp, "::1", 1234, "::1", 5678, kIn)), std::nullopt);
    EXPECT_EQ(find(flow(kUdp, "127.0.0.1", 1234, "127.0.0.1", 5678, kIn)), std::nullopt);
    EXPECT_EQ(find(flow(kUdp, "::1", 1234, "::1", 5678, kOut)), std::nullopt);
}

} // namespace
} // namespace pw::state

int main(int argc, char** argv) {
    if (!pw::testing::PrivateNetworkNamespace::record_original()) {
        return 1;
    }
    ::testing::InitGoogleTest(&argc, argv);
    pw::testing::use_skip_code_printer();
    return pw::testing::exit_code_with_skips(RUN_ALL_TESTS());
}
