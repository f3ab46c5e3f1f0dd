// Lookup latency of SockDiagSocketTable and ProcNetSocketTable with many sockets open. Not a
// test: run `state_lookup_bench [connections]` as root. It unshares its own network namespace
// (so the host's sockets neither help nor hurt), opens `connections` loopback TCP connections
// (two sockets each) and as many unconnected UDP sockets, then times lookups of random flows.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "common/unique_fd.h"
#include "state/proc_net_socket_table.h"
#include "state/sock_diag_socket_table.h"

namespace {

using pw::UniqueFd;
using pw::state::SocketQuery;

constexpr std::uint32_t kLoopback = 0x7f000001;

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(kLoopback);
    return address;
}

std::uint16_t port_of(int fd) {
    sockaddr_in address{};
    socklen_t length = sizeof(address);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    return ntohs(address.sin_port);
}

bool setup_namespace() {
    if (::unshare(CLONE_NEWNET) != 0) {
        std::perror("unshare(CLONE_NEWNET) (needs root)");
        return false;
    }
    const UniqueFd control(::socket(AF_INET, SOCK_DGRAM, 0));
    ifreq request{};
    std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
    request.ifr_flags = IFF_UP;
    return ::ioctl(control.get(), SIOCSIFFLAGS, &request) == 0;
}

struct Sockets {
    UniqueFd listener;
    std::vector<UniqueFd> fds;
    std::vector<SocketQuery> queries;
};

Sockets open_sockets(int connections) {
    Sockets sockets;
    sockets.listener = UniqueFd(::socket(AF_INET, SOCK_STREAM, 0));
    auto address = loopback(0);
    if (!sockets.listener.valid() ||
        ::bind(sockets.listener.get(), reinterpret_cast<const sockaddr*>(&address),
               sizeof(address)) != 0 ||
        ::listen(sockets.listener.get(), 4096) != 0) {
        std::perror("listen");
        return sockets;
    }
    const std::uint16_t server_port = port_of(sockets.listener.get());
    const auto ip = pw::IpAddress::parse("127.0.0.1").value_or(pw::IpAddress{});
    for (int index = 0; index < connections; ++index) {
        UniqueFd client(::socket(AF_INET, SOCK_STREAM, 0));
        const auto server = loopback(server_port);
        if (::connect(client.get(), reinterpret_cast<const sockaddr*>(&server), sizeof(server)) !=
            0) {
            std::perror("connect");
            break;
        }
        sockets.queries.push_back({.protocol = pw::packet::protocol::kTcp,
                                   .local_address = ip,
                                   .local_port = port_of(client.get()),
                                   .remote_address = ip,
                                   .remote_port = server_port,
                                   .direction = pw::packet::Direction::Outbound});
        sockets.fds.push_back(std::move(client));
        sockets.fds.emplace_back(::accept(sockets.listener.get(), nullptr, nullptr));
        UniqueFd udp(::socket(AF_INET, SOCK_DGRAM, 0));
        auto any = loopback(0);
        any.sin_addr.s_addr = INADDR_ANY;
        if (::bind(udp.get(), reinterpret_cast<const sockaddr*>(&any), sizeof(any)) != 0) {
            std::perror("bind");
            break;
        }
        sockets.queries.push_back({.protocol = pw::packet::protocol::kUdp,
                                   .local_address = ip,
                                   .local_port = port_of(udp.get()),
                                   .remote_address = ip,
                                   .remote_port = 53,
                                   .direction = pw::packet::Direction::Outbound});
        sockets.fds.push_back(std::move(udp));
    }
    return sockets;
}

void measure(const char* name, pw::state::SocketTable& table,
             const std::vector<SocketQuery>& queries, int lookups) {
    std::mt19937 random(17); // NOLINT(cert-msc32-c,cert-msc51-cpp): reproducible on purpose
    std::uniform_int_distribution<std::size_t> pick(0, queries.size() - 1);
    std::vector<double> microseconds;
    int found = 0;
    const auto start = std::chrono::steady_clock::now();
    for (int index = 0; index < lookups; ++index) {
        const auto before = std::chrono::steady_clock::now();
        const auto result = table.find(queries[pick(random)]);
        const auto after = std::chrono::steady_clock::now();
        found += result.has_value() && result->has_value() ? 1 : 0;
        microseconds.push_back(std::chrono::duration<double, std::micro>(after - before).count());
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::ranges::sort(microseconds);
    fmt::print("{:<10} lookups={} found={} p50={:.1f}us p99={:.1f}us rate={:.0f}/s\n", name,
               lookups, found, microseconds[microseconds.size() / 2],
               microseconds[microseconds.size() * 99 / 100], lookups / seconds);
}

} // namespace

int main(int argc, char** argv) {
    const int connections = argc > 1 ? std::stoi(argv[1]) : 1000;
    rlimit limit{.rlim_cur = 65536, .rlim_max = 65536};
    ::setrlimit(RLIMIT_NOFILE, &limit);
    if (!setup_namespace()) {
        return 1;
    }
    const Sockets sockets = open_sockets(connections);
    fmt::print("sockets={} (TCP connections and unconnected UDP, loopback)\n",
               sockets.fds.size() + 1);
    auto sock_diag = pw::state::SockDiagSocketTable::open();
    if (!sock_diag) {
        fmt::print(stderr, "{}\n", sock_diag.error().message());
        return 1;
    }
    measure("sock_diag", **sock_diag, sockets.queries, 100'000);
    pw::state::ProcNetSocketTable proc_net("/proc");
    measure("proc_net", proc_net, sockets.queries, 200);
    return 0;
}
