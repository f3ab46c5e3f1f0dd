// Integration tests of SocketOwnerRecords against the real kernel. Each test creates its own
// child cgroup under the cgroup v2 hierarchy, attaches the (observe-only) programs there and
// nowhere else, and moves only its own forked children (or, briefly, itself) into it. Teardown
// detaches the programs and removes the cgroup, also when a test fails. Needs root.
#include "state/bpf/socket_owner_records.h"

#include <arpa/inet.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "common/ip_address.h"
#include "common/unique_fd.h"
#include "fakes/socket_address.h"

namespace pw::state::bpf {
namespace {

namespace fs = std::filesystem;

constexpr std::uint8_t kTcp = 6;
constexpr std::uint8_t kUdp = 17;
constexpr uid_t kNobody = 65534;

std::string errno_text() {
    return std::error_code(errno, std::system_category()).message();
}

// Why this process cannot load eBPF programs at all, or nullopt when it can: a two-instruction
// cgroup/skb program ("return 1") that every kernel with cgroup eBPF accepts. Only then may the
// tests skip. Once this loads, a rejection of our programs (the verifier refusing a program that
// loaded before) is a failure: a bug of ours or a kernel regression, never "not available here".
std::optional<std::string> bpf_unavailable() {
    std::array<bpf_insn, 2> program{};
    program[0].code = BPF_ALU64 | BPF_MOV | BPF_K; // r0 = 1
    program[0].dst_reg = BPF_REG_0;
    program[0].imm = 1;
    program[1].code = BPF_JMP | BPF_EXIT;
    static constexpr char kLicense[] = "GPL"; // NOLINT(modernize-avoid-c-arrays): C string
    bpf_attr attributes{};
    attributes.prog_type = BPF_PROG_TYPE_CGROUP_SKB;
    attributes.insns = reinterpret_cast<std::uintptr_t>(program.data());
    attributes.insn_cnt = program.size();
    attributes.license = reinterpret_cast<std::uintptr_t>(kLicense);
    const long fd = ::syscall(SYS_bpf, BPF_PROG_LOAD, &attributes, sizeof(attributes));
    if (fd < 0) {
        return "bpf(BPF_PROG_LOAD) refuses even a trivial program: " + errno_text();
    }
    ::close(static_cast<int>(fd));
    return std::nullopt;
}

IpAddress loopback_v4() {
    return IpAddress::parse("127.0.0.1").value();
}

bool write_pid(const fs::path& procs, pid_t pid) {
    std::ofstream out(procs);
    out << pid << '\n';
    out.flush();
    return static_cast<bool>(out);
}

// This process's cgroup v2 directory, from the "0::/path" line of /proc/self/cgroup.
std::optional<fs::path> own_cgroup(const fs::path& root) {
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("0::")) {
            return root / fs::path(line.substr(3)).relative_path();
        }
    }
    return std::nullopt;
}

sockaddr_in v4_address(std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

sockaddr_in6 mapped_v4_address(std::uint16_t port) {
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_port = htons(port);
    ::inet_pton(AF_INET6, "::ffff:127.0.0.1", &address.sin6_addr);
    return address;
}

sockaddr_in6 v6_loopback_address(std::uint16_t port) {
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_port = htons(port);
    address.sin6_addr = in6addr_loopback;
    return address;
}

// The system calls below take the generic sockaddr; the cast is the socket API's own idiom.
template <typename Address>
sockaddr* as_sockaddr(Address& address) {
    return reinterpret_cast<sockaddr*>(&address); // NOLINT: the BSD socket API's calling convention
}

// A listening or receiving socket of the test process (outside the test cgroup), bound to an
// ephemeral port on loopback.
struct Endpoint {
    UniqueFd fd;
    std::uint16_t port = 0;
};

std::optional<Endpoint> bind_endpoint(int family, int type) {
    Endpoint endpoint{.fd = UniqueFd(::socket(family, type | SOCK_CLOEXEC, 0)), .port = 0};
    if (!endpoint.fd.valid()) {
        return std::nullopt;
    }
    // A child that fails must not leave the test blocked in accept() or recvfrom().
    const timeval timeout{.tv_sec = 5, .tv_usec = 0};
    ::setsockopt(endpoint.fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    int result = -1;
    if (family == AF_INET) {
        sockaddr_in address = v4_address(0);
        result = ::bind(endpoint.fd.get(), as_sockaddr(address), sizeof(address));
    } else {
        sockaddr_in6 address = v6_loopback_address(0);
        result = ::bind(endpoint.fd.get(), as_sockaddr(address), sizeof(address));
    }
    if (result != 0 || (type == SOCK_STREAM && ::listen(endpoint.fd.get(), 16) != 0)) {
        return std::nullopt;
    }
    sockaddr_storage bound{};
    socklen_t length = sizeof(bound);
    if (::getsockname(endpoint.fd.get(), as_sockaddr(bound), &length) != 0) {
        return std::nullopt;
    }
    endpoint.port = family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&bound)
                                                  ->sin_port) // NOLINT: sockaddr_storage idiom
                                      : ntohs(reinterpret_cast<sockaddr_in6*>(&bound)
                                                  ->sin6_port); // NOLINT: sockaddr_storage idiom
    return endpoint;
}

// The peer of an accepted connection or a received datagram, as the firewall would see it.
using Peer = pw::testing::SocketAddress;

std::optional<Peer> accept_peer(const Endpoint& listener) {
    sockaddr_storage peer{};
    socklen_t length = sizeof(peer);
    const UniqueFd connection(
        ::accept4(listener.fd.get(), as_sockaddr(peer), &length, SOCK_CLOEXEC));
    if (!connection.valid()) {
        return std::nullopt;
    }
    return pw::testing::socket_address_from(peer);
}

std::optional<Peer> receive_peer(const Endpoint& receiver) {
    char byte = 0;
    sockaddr_storage peer{};
    socklen_t length = sizeof(peer);
    if (::recvfrom(receiver.fd.get(), &byte, 1, 0, as_sockaddr(peer), &length) != 1) {
        return std::nullopt;
    }
    return pw::testing::socket_address_from(peer);
}

// Removes the (empty) cgroups of earlier runs that were killed before their teardown: a
// pw-bpf-test-<pid> whose process is gone.
void sweep_stale_test_cgroups(const fs::path& root) {
    constexpr std::string_view kPrefix = "pw-bpf-test-";
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(root, error)) {
        const std::string name = entry.path().filename().string();
        if (!name.starts_with(kPrefix)) {
            continue;
        }
        const std::string owner = name.substr(kPrefix.size());
        if (!owner.empty() && !fs::exists("/proc/" + owner)) {
            std::error_code ignored;
            fs::remove(entry.path(), ignored); // rmdir: only succeeds when empty
        }
    }
}

// One child cgroup for one test: created empty, removed at the end with every process still in
// it moved back to `parent`.
class TestCgroup {
public:
    TestCgroup(fs::path parent, fs::path path)
        : parent_(std::move(parent)), path_(std::move(path)) {}
    TestCgroup(const TestCgroup&) = delete;
    TestCgroup& operator=(const TestCgroup&) = delete;
    TestCgroup(TestCgroup&&) = delete;
    TestCgroup& operator=(TestCgroup&&) = delete;
    ~TestCgroup() {
        std::ifstream procs(path_ / "cgroup.procs");
        pid_t pid = 0;
        while (procs >> pid) {
            write_pid(parent_ / "cgroup.procs", pid);
        }
        std::error_code ignored;
        fs::remove(path_, ignored); // rmdir: a cgroup directory is removed empty
        if (ignored) {
            std::cerr << "warning: could not remove test cgroup " << path_ << ": "
                      << ignored.message() << '\n';
        }
    }

    [[nodiscard]] const fs::path& path() const { return path_; }

private:
    fs::path parent_;
    fs::path path_;
};

// Forks a child that moves itself into `cgroup` before running `body`, then exits with the
// body's return value at once (no destructors, no atexit: fire-and-forget like a real client).
pid_t run_in_cgroup(const fs::path& cgroup, const std::function<int()>& body) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        if (!write_pid(cgroup / "cgroup.procs", ::getpid())) {
            ::_exit(100);
        }
        ::_exit(body());
    }
    return pid;
}

// The child's exit status, or -1 when it did not exit normally.
int wait_exit(pid_t pid) {
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
        return -1;
    }
    return WEXITSTATUS(status);
}

enum class Transport : std::uint8_t { Tcp, Udp };

// What a child in the test cgroup did, seen from the server end.
struct Exchange {
    pid_t child = -1;
    int exit_status = -1;
    std::optional<Peer> peer; // the child's local end, as accept()/recvfrom() report it

    [[nodiscard]] bool ok() const { return child > 0 && exit_status == 0 && peer.has_value(); }
    [[nodiscard]] std::string describe() const {
        return "child " + std::to_string(child) + " exited " + std::to_string(exit_status) +
               (peer ? "" : ", nothing reached the server: " + errno_text());
    }
    // The flow as the firewall sees it on the child's side: local = the child's end.
    [[nodiscard]] Flow flow(std::uint8_t protocol, const IpAddress& server_address,
                            std::uint16_t server_port) const {
        return Flow{.protocol = protocol,
                    .local_address = peer ? peer->address : IpAddress{},
                    .local_port = peer ? peer->port : std::uint16_t{0},
                    .remote_address = server_address,
                    .remote_port = server_port};
    }
};

// Runs `body` in a child inside `cgroup`, accepts (TCP) or receives (UDP) what it sends to
// `server`, and reaps it. The child may be long gone when the records are read.
Exchange exchange_with_child(const fs::path& cgroup, const Endpoint& server, Transport transport,
                             const std::function<int()>& body) {
    Exchange exchange;
    exchange.child = run_in_cgroup(cgroup, body);
    if (exchange.child <= 0) {
        return exchange;
    }
    exchange.peer = transport == Transport::Tcp ? accept_peer(server) : receive_peer(server);
    exchange.exit_status = wait_exit(exchange.child);
    return exchange;
}

::testing::AssertionResult owned_by(const std::optional<Owner>& owner, pid_t child, uid_t uid,
                                    FlowMatch match) {
    if (!owner) {
        return ::testing::AssertionFailure() << "no record";
    }
    const auto expected = static_cast<std::uint32_t>(child);
    if (owner->tgid != expected || owner->pid != expected || owner->uid != uid ||
        owner->match != match) {
        return ::testing::AssertionFailure()
               << "record tgid=" << owner->tgid << " pid=" << owner->pid << " uid=" << owner->uid
               << " match=" << static_cast<int>(owner->match) << ", expected tgid=pid=" << child
               << " uid=" << uid << " match=" << static_cast<int>(match);
    }
    return ::testing::AssertionSuccess();
}

int connect_tcp(int family, sockaddr* address, socklen_t length) {
    const int fd = ::socket(family, SOCK_STREAM, 0);
    if (fd < 0) {
        return 3;
    }
    if (family == AF_INET6) {
        const int v6_only = 0; // dual-stack, whatever the sysctl default
        ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6_only, sizeof(v6_only));
    }
    return ::connect(fd, address, length) == 0 ? 0 : 1;
}

int send_udp(int family, sockaddr* address, socklen_t length) {
    const int fd = ::socket(family, SOCK_DGRAM, 0);
    if (fd < 0) {
        return 3;
    }
    if (family == AF_INET6) {
        const int v6_only = 0;
        ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6_only, sizeof(v6_only));
    }
    const char byte = 'x';
    return ::sendto(fd, &byte, 1, 0, address, length) == 1 ? 0 : 1;
}

class SocketOwnerRecordsTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) {
            GTEST_SKIP() << "INTEGRATION SKIPPED: needs root (eBPF cgroup programs)";
        }
#if defined(PW_TEST_EBPF_STUB)
        GTEST_SKIP() << "INTEGRATION SKIPPED: built without eBPF support (scripts/setup.sh)";
#endif
        if (const auto reason = bpf_unavailable()) {
            GTEST_SKIP() << "INTEGRATION SKIPPED: " << *reason;
        }
        auto root = find_cgroup2_root();
        if (!root) {
            GTEST_SKIP() << "INTEGRATION SKIPPED: " << root.error().message();
        }
        root_ = *root;
        sweep_stale_test_cgroups(root_);
        const fs::path path = root_ / ("pw-bpf-test-" + std::to_string(::getpid()));
        std::error_code error;
        fs::create_directory(path, error);
        if (error) {
            GTEST_SKIP() << "INTEGRATION SKIPPED: create " << path << ": " << error.message();
        }
        cgroup_ = std::make_unique<TestCgroup>(root_, path);
        auto records = SocketOwnerRecords::load(path);
        // eBPF works here (bpf_unavailable() above): failing to load or attach ours is a bug.
        ASSERT_TRUE(records.has_value())
            << "the kernel loads eBPF programs, but not ours: " << records.error().message();
        records_ = std::move(*records);
    }

    void TearDown() override {
        records_.reset(); // detach before the cgroup goes away
        cgroup_.reset();
    }

    [[nodiscard]] const fs::path& cgroup() const { return cgroup_->path(); }

    fs::path root_;
    std::unique_ptr<TestCgroup> cgroup_;
    std::unique_ptr<SocketOwnerRecords> records_;
};

TEST_F(SocketOwnerRecordsTest, TcpConnectOverIpv4IsAttributedExactly) {
    const auto listener = bind_endpoint(AF_INET, SOCK_STREAM);
    ASSERT_TRUE(listener) << errno_text();
    const std::uint16_t port = listener->port;
    const Exchange exchange = exchange_with_child(cgroup(), *listener, Transport::Tcp, [port] {
        sockaddr_in address = v4_address(port);
        return connect_tcp(AF_INET, as_sockaddr(address), sizeof(address));
    });
    ASSERT_TRUE(exchange.ok()) << exchange.describe();

    const auto owner = records_->find_by_flow(exchange.flow(kTcp, loopback_v4(), port));
    EXPECT_TRUE(owned_by(owner, exchange.child, ::getuid(), FlowMatch::Exact));
    ASSERT_TRUE(owner);
    EXPECT_NE(owner->cookie, 0U);
    // A client socket that never called bind() has no record by cookie: its flow names it.
    EXPECT_FALSE(records_->find_by_cookie(owner->cookie));
}

TEST_F(SocketOwnerRecordsTest, FireAndForgetUdpFromAnExitedProcessIsAttributed) {
    const auto receiver = bind_endpoint(AF_INET, SOCK_DGRAM);
    ASSERT_TRUE(receiver) << errno_text();
    const std::uint16_t port = receiver->port;
    const Exchange exchange = exchange_with_child(cgroup(), *receiver, Transport::Udp, [port] {
        // Another user than the test's, so that the uid is proven, not assumed.
        if (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) {
            return 2;
        }
        sockaddr_in address = v4_address(port);
        return send_udp(AF_INET, as_sockaddr(address), sizeof(address));
    });
    ASSERT_TRUE(exchange.ok()) << exchange.describe(); // the child has exited by now

    // Unbound socket: the kernel bound the port before the hook, on the wildcard address.
    EXPECT_TRUE(owned_by(records_->find_by_flow(exchange.flow(kUdp, loopback_v4(), port)),
                         exchange.child, kNobody, FlowMatch::AnyLocalAddress));
}

// Sends one datagram to `address` from a socket bound to `source_port` (SO_REUSEADDR).
int send_udp_from(std::uint16_t source_port, sockaddr_in address) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        return 3;
    }
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in local = v4_address(source_port);
    if (::bind(fd, as_sockaddr(local), sizeof(local)) != 0) {
        return 4;
    }
    const char byte = 'x';
    return ::sendto(fd, &byte, 1, 0, as_sockaddr(address), sizeof(address)) == 1 ? 0 : 1;
}

// Whether `report` names `child` as the sender on loopback, and `previous` as the socket before.
::testing::AssertionResult reported(const UdpSender& report, pid_t child, std::uint64_t previous) {
    if (report.owner.tgid != static_cast<std::uint32_t>(child) ||
        report.previous_cookie != previous || report.flow.local_address != loopback_v4() ||
        report.flow.remote_address != loopback_v4()) {
        return ::testing::AssertionFailure()
               << "report tgid=" << report.owner.tgid << " previous=" << report.previous_cookie
               << " local=" << report.flow.local_address.to_string() << ", expected tgid=" << child
               << " previous=" << previous;
    }
    return ::testing::AssertionSuccess();
}

// Issue 10 item 8: every socket that sends on a UDP flow no record named it for is reported,
// with the socket the record named before, so that the firewall can decide a reused 5-tuple
// again for its new sender.
// Two children, one after the other, send on the same UDP flow (same local port, same
// destination); what the records reported about that flow.
struct TwoSenders {
    Exchange first;
    Exchange second;
    std::vector<UdpSender> reports;
    std::string error; // empty when both sent and the reports could be read
};

TwoSenders two_senders_on_one_flow(const fs::path& cgroup, SocketOwnerRecords& records) {
    TwoSenders result;
    const auto receiver = bind_endpoint(AF_INET, SOCK_DGRAM);
    auto spare = bind_endpoint(AF_INET, SOCK_DGRAM); // a free local port for the senders
    if (!receiver || !spare) {
        result.error = "bind: " + errno_text();
        return result;
    }
    const std::uint16_t source_port = spare->port;
    spare->fd.reset();
    const std::uint16_t port = receiver->port;
    const auto send = [source_port, port] {
        return send_udp_from(source_port, v4_address(port));
    };
    result.first = exchange_with_child(cgroup, *receiver, Transport::Udp, send);
    result.second = exchange_with_child(cgroup, *receiver, Transport::Udp, send);
    if (!result.first.ok() || !result.second.ok()) {
        result.error = result.first.describe() + "; " + result.second.describe();
        return result;
    }
    const auto drained = records.drain_udp_senders([&](const UdpSender& sender) {
        if (sender.flow.local_port == source_port && sender.flow.remote_port == port) {
            result.reports.push_back(sender);
        }
    });
    if (!drained) {
        result.error = drained.error().message();
    }
    return result;
}

TEST_F(SocketOwnerRecordsTest, ANewSocketOnAUdpFlowIsReportedWithThePreviousOne) {
    ASSERT_GE(records_->udp_sender_fd(), 0) << "no ring buffer for UDP sender reports";
    const TwoSenders senders = two_senders_on_one_flow(cgroup(), *records_);
    ASSERT_TRUE(senders.error.empty()) << senders.error;
    ASSERT_EQ(senders.reports.size(), 2U);
    EXPECT_TRUE(reported(senders.reports[0], senders.first.child, 0)); // the flow's first send
    EXPECT_TRUE(
        reported(senders.reports[1], senders.second.child, senders.reports[0].owner.cookie));
    EXPECT_EQ(records_->udp_senders_lost(), 0U);
}

TEST_F(SocketOwnerRecordsTest, DualStackTcpSocketReachingIpv4IsFoundWithIpv4Addresses) {
    const auto listener = bind_endpoint(AF_INET, SOCK_STREAM);
    ASSERT_TRUE(listener) << errno_text();
    const std::uint16_t port = listener->port;
    const Exchange exchange = exchange_with_child(cgroup(), *listener, Transport::Tcp, [port] {
        sockaddr_in6 address = mapped_v4_address(port);
        return connect_tcp(AF_INET6, as_sockaddr(address), sizeof(address));
    });
    ASSERT_TRUE(exchange.ok()) << exchange.describe();
    ASSERT_TRUE(exchange.peer->address.is_v4());

    EXPECT_TRUE(owned_by(records_->find_by_flow(exchange.flow(kTcp, loopback_v4(), port)),
                         exchange.child, ::getuid(), FlowMatch::Exact));
}

TEST_F(SocketOwnerRecordsTest, DualStackUdpSocketReachingIpv4IsFoundWithIpv4Addresses) {
    const auto receiver = bind_endpoint(AF_INET, SOCK_DGRAM);
    ASSERT_TRUE(receiver) << errno_text();
    const std::uint16_t port = receiver->port;
    const Exchange exchange = exchange_with_child(cgroup(), *receiver, Transport::Udp, [port] {
        sockaddr_in6 address = mapped_v4_address(port);
        return send_udp(AF_INET6, as_sockaddr(address), sizeof(address));
    });
    ASSERT_TRUE(exchange.ok()) << exchange.describe();

    EXPECT_TRUE(owned_by(records_->find_by_flow(exchange.flow(kUdp, loopback_v4(), port)),
                         exchange.child, ::getuid(), FlowMatch::AnyLocalAddress));
}

TEST_F(SocketOwnerRecordsTest, TcpConnectOverIpv6IsAttributedExactly) {
    const auto listener = bind_endpoint(AF_INET6, SOCK_STREAM);
    if (!listener) {
        GTEST_SKIP() << "no IPv6 loopback here: " << errno_text();
    }
    const std::uint16_t port = listener->port;
    const Exchange exchange = exchange_with_child(cgroup(), *listener, Transport::Tcp, [port] {
        sockaddr_in6 address = v6_loopback_address(port);
        return connect_tcp(AF_INET6, as_sockaddr(address), sizeof(address));
    });
    ASSERT_TRUE(exchange.ok()) << exchange.describe();

    const IpAddress server = IpAddress::parse("::1").value();
    EXPECT_TRUE(owned_by(records_->find_by_flow(exchange.flow(kTcp, server, port)), exchange.child,
                         ::getuid(), FlowMatch::Exact));
}

// Connected UDP on an unbound socket: the kernel picks the local port after the connect hook,
// so only the remote end is recorded, and the answer says so (RemoteOnly: a hint).
TEST_F(SocketOwnerRecordsTest, ConnectedUdpIsRecordedByRemoteEnd) {
    const auto receiver = bind_endpoint(AF_INET, SOCK_DGRAM);
    ASSERT_TRUE(receiver) << errno_text();
    const std::uint16_t port = receiver->port;
    const Exchange exchange = exchange_with_child(cgroup(), *receiver, Transport::Udp, [port] {
        const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in address = v4_address(port);
        if (fd < 0 || ::connect(fd, as_sockaddr(address), sizeof(address)) != 0) {
            return 1;
        }
        const char byte = 'x';
        return ::send(fd, &byte, 1, 0) == 1 ? 0 : 1;
    });
    ASSERT_TRUE(exchange.ok()) << exchange.describe();

    const auto owner = records_->find_by_flow(exchange.flow(kUdp, loopback_v4(), port));
    EXPECT_TRUE(owned_by(owner, exchange.child, ::getuid(), FlowMatch::RemoteOnly));
    ASSERT_TRUE(owner);
    // Also by cookie: the socket table finds the socket, its cookie names the process exactly
    // even when other sockets connected to the same remote since.
    EXPECT_TRUE(owned_by(records_->find_by_cookie(owner->cookie), exchange.child, ::getuid(),
                         FlowMatch::Exact));
}

// Moves this process into `cgroup`, creates and binds a UDP socket there (as a server does)
// and moves back to `home`; the socket, or an invalid fd when any step failed.
UniqueFd bind_socket_inside(const fs::path& cgroup, const fs::path& home) {
    if (!write_pid(cgroup / "cgroup.procs", ::getpid())) {
        return {};
    }
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in address = v4_address(0);
    const bool bound = fd.valid() && ::bind(fd.get(), as_sockaddr(address), sizeof(address)) == 0;
    const bool moved_back = write_pid(home / "cgroup.procs", ::getpid());
    return bound && moved_back ? std::move(fd) : UniqueFd{};
}

// The bind record names this process and this thread.
TEST_F(SocketOwnerRecordsTest, OwnBoundSocketIsFoundByCookie) {
    const auto home = own_cgroup(root_);
    ASSERT_TRUE(home);
    const UniqueFd fd = bind_socket_inside(cgroup(), *home);
    ASSERT_TRUE(fd.valid()) << errno_text();
    ASSERT_TRUE(own_cgroup(root_) == home) << "could not leave the test cgroup";

    std::uint64_t cookie = 0;
    socklen_t length = sizeof(cookie);
    ASSERT_EQ(::getsockopt(fd.get(), SOL_SOCKET, SO_COOKIE, &cookie, &length), 0) << errno_text();
    const auto owner = records_->find_by_cookie(cookie);
    ASSERT_TRUE(owner);
    EXPECT_EQ(owner->tgid, static_cast<std::uint32_t>(::getpid()));
    EXPECT_EQ(owner->pid, static_cast<std::uint32_t>(::syscall(SYS_gettid)));
    EXPECT_EQ(owner->uid, ::getuid());
    EXPECT_EQ(owner->cookie, cookie);
}

// Scope check: the programs see only the cgroup they are attached to.
TEST_F(SocketOwnerRecordsTest, ProcessesOutsideTheCgroupAreNotRecorded) {
    auto listener = bind_endpoint(AF_INET, SOCK_STREAM);
    ASSERT_TRUE(listener) << errno_text();
    const UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address = v4_address(listener->port);
    ASSERT_EQ(::connect(fd.get(), as_sockaddr(address), sizeof(address)), 0) << errno_text();
    const auto peer = accept_peer(*listener);
    ASSERT_TRUE(peer);

    std::uint64_t cookie = 0;
    socklen_t length = sizeof(cookie);
    ASSERT_EQ(::getsockopt(fd.get(), SOL_SOCKET, SO_COOKIE, &cookie, &length), 0);
    EXPECT_FALSE(records_->find_by_cookie(cookie));
    EXPECT_FALSE(records_->find_by_flow(Flow{.protocol = kTcp,
                                             .local_address = peer->address,
                                             .local_port = peer->port,
                                             .remote_address = loopback_v4(),
                                             .remote_port = listener->port}));
}

struct Percentiles {
    double p50_ns = 0;
    double p99_ns = 0;
    int wrong_answers = 0;
};

// Times `lookups` calls of find_by_flow(flow), one clock read on each side of each call.
Percentiles time_lookups(const SocketOwnerRecords& records, const Flow& flow, bool expect_found,
                         int lookups) {
    std::vector<double> nanoseconds;
    nanoseconds.reserve(static_cast<std::size_t>(lookups));
    Percentiles result;
    for (int i = 0; i < lookups; ++i) {
        const auto start = std::chrono::steady_clock::now();
        const auto owner = records.find_by_flow(flow);
        const auto stop = std::chrono::steady_clock::now();
        nanoseconds.push_back(std::chrono::duration<double, std::nano>(stop - start).count());
        result.wrong_answers += owner.has_value() == expect_found ? 0 : 1;
    }
    std::ranges::sort(nanoseconds);
    result.p50_ns = nanoseconds[nanoseconds.size() / 2];
    result.p99_ns = nanoseconds[nanoseconds.size() * 99 / 100];
    return result;
}

// Measures find_by_flow(): an exact hit (one map lookup) and a miss (three lookups). Reported,
// and asserted only against a generous bound: the machine is shared and noisy.
TEST_F(SocketOwnerRecordsTest, FlowLookupLatency) {
    const auto listener = bind_endpoint(AF_INET, SOCK_STREAM);
    ASSERT_TRUE(listener) << errno_text();
    const std::uint16_t port = listener->port;
    const Exchange exchange = exchange_with_child(cgroup(), *listener, Transport::Tcp, [port] {
        sockaddr_in address = v4_address(port);
        return connect_tcp(AF_INET, as_sockaddr(address), sizeof(address));
    });
    ASSERT_TRUE(exchange.ok()) << exchange.describe();
    const Flow hit = exchange.flow(kTcp, loopback_v4(), port);
    Flow miss = hit;
    miss.remote_port = static_cast<std::uint16_t>(port + 1);

    constexpr int kLookups = 200000;
    const Percentiles hits = time_lookups(*records_, hit, true, kLookups);
    const Percentiles misses = time_lookups(*records_, miss, false, kLookups);
    std::cout << "find_by_flow over " << kLookups << " lookups: hit p50 " << hits.p50_ns / 1000
              << " us, p99 " << hits.p99_ns / 1000 << " us; miss (3 map lookups) p50 "
              << misses.p50_ns / 1000 << " us, p99 " << misses.p99_ns / 1000 << " us\n";
    RecordProperty("hit_p50_ns", static_cast<int>(hits.p50_ns));
    RecordProperty("hit_p99_ns", static_cast<int>(hits.p99_ns));
    EXPECT_EQ(hits.wrong_answers, 0);
    EXPECT_EQ(misses.wrong_answers, 0);
}

// Field 22 of /proc/<pid>/stat: the start time in clock ticks after boot.
std::optional<std::uint64_t> proc_start_ticks(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto comm_end = stat.rfind(')');
    if (comm_end == std::string::npos) {
        return std::nullopt;
    }
    std::istringstream fields(stat.substr(comm_end + 2));
    std::string field;
    for (int index = 3; index <= 22 && fields >> field; ++index) {
        if (index == 22) {
            return std::stoull(field);
        }
    }
    return std::nullopt;
}

std::uint64_t ns_to_ticks(std::chrono::nanoseconds time) {
    const auto ticks_per_second = static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK));
    return static_cast<std::uint64_t>(time.count()) / (1'000'000'000ULL / ticks_per_second);
}

// The record's process start is the instant /proc shows: the two together name the process
// across PID reuse.
// A child in `cgroup` that connects to `port` and stays alive until the parent closes its end
// of the pipe, so that its /proc entry can be read first.
struct HeldChild {
    pid_t pid = -1;
    std::array<int, 2> release{-1, -1};

    void let_go() {
        ::close(release[1]);
        ::close(release[0]);
    }
};

HeldChild connect_and_hold(const fs::path& cgroup, std::uint16_t port) {
    HeldChild child;
    if (::pipe(child.release.data()) != 0) {
        return child;
    }
    child.pid = run_in_cgroup(cgroup, [port, release = child.release] {
        sockaddr_in address = v4_address(port);
        const int connected = connect_tcp(AF_INET, as_sockaddr(address), sizeof(address));
        ::close(release[1]); // else the read below never sees end-of-file
        char byte = 0;
        static_cast<void>(::read(release[0], &byte, 1));
        return connected;
    });
    return child;
}

// The record's process start is the instant /proc shows: the two together name the process
// across PID reuse.
TEST_F(SocketOwnerRecordsTest, RecordsCarryTheProcessStartThatProcShows) {
    const auto listener = bind_endpoint(AF_INET, SOCK_STREAM);
    ASSERT_TRUE(listener) << errno_text();
    HeldChild child = connect_and_hold(cgroup(), listener->port);
    ASSERT_GT(child.pid, 0);
    const auto peer = accept_peer(*listener);
    const auto start_ticks = proc_start_ticks(child.pid);
    child.let_go();
    EXPECT_EQ(wait_exit(child.pid), 0);
    ASSERT_TRUE(peer);
    ASSERT_TRUE(start_ticks);

    const auto owner = records_->find_by_flow(Flow{.protocol = kTcp,
                                                   .local_address = peer->address,
                                                   .local_port = peer->port,
                                                   .remote_address = loopback_v4(),
                                                   .remote_port = listener->port});
    ASSERT_TRUE(owned_by(owner, child.pid, ::getuid(), FlowMatch::Exact));
    EXPECT_EQ(ns_to_ticks(owner->process_start), *start_ticks);
}

// Runs argv (absolute path first) in a child and reaps it; its PID.
pid_t run_and_reap(const std::vector<std::string>& argv, int& exit_status) {
    std::vector<char*> arguments;
    arguments.reserve(argv.size() + 1);
    for (const std::string& argument : argv) {
        arguments.push_back(const_cast<char*>(argument.c_str())); // execv's signature
    }
    arguments.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::execv(arguments[0], arguments.data());
        ::_exit(127);
    }
    exit_status = wait_exit(pid);
    return pid;
}

TEST_F(SocketOwnerRecordsTest, ExecRecordsNameAProcessThatIsGone) {
    ASSERT_TRUE(records_->has_exec_records()) << "the exec tracepoints did not load";
    int exit_status = -1;
    const pid_t pid = run_and_reap({"/bin/sh", "-c", "exit 0"}, exit_status);
    ASSERT_EQ(exit_status, 0);
    ASSERT_FALSE(fs::exists("/proc/" + std::to_string(pid))); // reaped: /proc cannot tell

    const auto record = records_->find_exec(static_cast<std::uint32_t>(pid));
    ASSERT_TRUE(record);
    EXPECT_EQ(record->path, "/bin/sh");
    EXPECT_EQ(record->interpreter, "");
    EXPECT_EQ(record->parent_tgid, static_cast<std::uint32_t>(::getpid()));
    EXPECT_EQ(record->uid, ::getuid());
    EXPECT_FALSE(record->inherited);
    EXPECT_GT(record->process_start.count(), 0);
}

TEST_F(SocketOwnerRecordsTest, ExecRecordsOfScriptsNameTheScriptAndItsInterpreter) {
    ASSERT_TRUE(records_->has_exec_records());
    const fs::path script =
        fs::temp_directory_path() / ("pw-bpf-test-script-" + std::to_string(::getpid()) + ".sh");
    {
        std::ofstream out(script);
        out << "#!/bin/sh\nexit 0\n";
    }
    fs::permissions(script, fs::perms::owner_all);
    int exit_status = -1;
    const pid_t pid = run_and_reap({script.string()}, exit_status);
    fs::remove(script);
    ASSERT_EQ(exit_status, 0);

    const auto record = records_->find_exec(static_cast<std::uint32_t>(pid));
    ASSERT_TRUE(record);
    EXPECT_EQ(record->path, script.string());
    EXPECT_EQ(record->interpreter, "/bin/sh");
}

TEST_F(SocketOwnerRecordsTest, ForkedChildrenInheritTheirParentsExecRecord) {
    ASSERT_TRUE(records_->has_exec_records());
    // Python's os.fork() is a plain fork: the child runs python3 without an execve of its own.
    const fs::path output =
        fs::temp_directory_path() / ("pw-bpf-test-fork-" + std::to_string(::getpid()) + ".txt");
    int exit_status = -1;
    const pid_t parent =
        run_and_reap({"/usr/bin/python3", "-c",
                      "import os,sys\npid=os.fork()\nif pid==0: os._exit(0)\nos.waitpid(pid,0)\n"
                      "open(sys.argv[1],'w').write(str(pid))",
                      output.string()},
                     exit_status);
    ASSERT_EQ(exit_status, 0);
    std::ifstream in(output);
    pid_t child = 0;
    in >> child;
    fs::remove(output);
    ASSERT_GT(child, 0);

    const auto record = records_->find_exec(static_cast<std::uint32_t>(child));
    ASSERT_TRUE(record);
    EXPECT_TRUE(record->inherited);
    EXPECT_EQ(record->path, "/usr/bin/python3");
    EXPECT_EQ(record->parent_tgid, static_cast<std::uint32_t>(parent));
    const auto parent_record = records_->find_exec(static_cast<std::uint32_t>(parent));
    ASSERT_TRUE(parent_record);
    EXPECT_LE(parent_record->process_start, record->process_start);
}

} // namespace
} // namespace pw::state::bpf
