// pw_loadgen: the traffic side of the system benchmark (bench/run_bench.py).
//
//   pw_loadgen tcp-server  --bind ADDR --port P [--threads N]
//   pw_loadgen udp-server  --bind ADDR --port P [--threads N]
//   pw_loadgen tcp-connect --target ADDR --port P [--threads N] [--seconds S]
//   pw_loadgen udp-flows   --target ADDR --port P [--threads N] [--seconds S]
//
// The servers run until they are killed (SIGTERM's default action is all they need). The clients
// print one JSON line with the rate and the latency percentiles. Plain POSIX sockets and
// std::thread on purpose: the load generator must cost as little and as predictably as possible,
// so it has no event loop (CONVENTIONS rule 15 is about the daemon, not about this tool).

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "common/unique_fd.h"

namespace {

using Clock = std::chrono::steady_clock;
using pw::UniqueFd;

constexpr int kListenBacklog = 4096;
constexpr int kUdpReplyTimeoutMs = 1000;

// A numeric IPv4 or IPv6 address plus port, ready for bind() or connect().
struct Endpoint {
    sockaddr_storage address{};
    socklen_t length = 0;
    int family = AF_INET;
};

std::optional<Endpoint> parse_endpoint(const std::string& host, int port) {
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_family = AF_UNSPEC;
    addrinfo* result = nullptr;
    const std::string service = std::to_string(port);
    if (::getaddrinfo(host.c_str(), service.c_str(), &hints, &result) != 0 || result == nullptr) {
        return std::nullopt;
    }
    Endpoint endpoint;
    std::memcpy(&endpoint.address, result->ai_addr, result->ai_addrlen);
    endpoint.length = result->ai_addrlen;
    endpoint.family = result->ai_family;
    ::freeaddrinfo(result);
    return endpoint;
}

const sockaddr* as_sockaddr(const Endpoint& endpoint) {
    // The sockets API takes the generic type; sockaddr_storage is designed to be viewed as it.
    return reinterpret_cast<const sockaddr*>(&endpoint.address);
}

// Command-line options: every subcommand takes `--name value` pairs.
struct Options {
    std::string command;
    std::string address;
    int port = 0;
    int threads = 1;
    double seconds = 3.0;
    int processes = 0; // idle-sockets: background processes
    int sockets = 5;   // idle-sockets: TCP connections each of them holds
};

constexpr int kUsageError = 2;

int usage(std::string_view message) {
    fmt::print(stderr,
               "pw_loadgen: {}\n"
               "usage: pw_loadgen tcp-server|udp-server --bind ADDR --port P [--threads N]\n"
               "       pw_loadgen tcp-connect|udp-flows --target ADDR --port P [--threads N] "
               "[--seconds S]\n"
               "       pw_loadgen idle-sockets --target ADDR --port P --processes N "
               "[--sockets K]\n",
               message);
    return kUsageError;
}

std::string describe_errno(int error_number) {
    return std::error_code(error_number, std::system_category()).message();
}

// Parses `--name value` pairs; an error message when they do not make sense.
std::optional<std::string> parse_options(std::span<char*> arguments, Options& options) {
    if (arguments.size() < 2) {
        return "missing subcommand";
    }
    options.command = arguments[1];
    options.threads = options.command.ends_with("server") ? 2 : 1;
    for (std::size_t index = 2; index < arguments.size(); index += 2) {
        const std::string_view name = arguments[index];
        if (index + 1 >= arguments.size()) {
            return "option without value";
        }
        const std::string value = arguments[index + 1];
        if (name == "--bind" || name == "--target") {
            options.address = value;
        } else if (name == "--port") {
            options.port = std::atoi(value.c_str());
        } else if (name == "--threads") {
            options.threads = std::max(1, std::atoi(value.c_str()));
        } else if (name == "--seconds") {
            options.seconds = std::atof(value.c_str());
        } else if (name == "--processes") {
            options.processes = std::max(0, std::atoi(value.c_str()));
        } else if (name == "--sockets") {
            options.sockets = std::max(1, std::atoi(value.c_str()));
        } else {
            return "unknown option " + std::string(name);
        }
    }
    if (options.address.empty() || options.port <= 0 || options.port > 65535) {
        return "--bind/--target and --port are required";
    }
    return std::nullopt;
}

void set_int_option(int fd, int level, int name, int value) {
    ::setsockopt(fd, level, name, &value, sizeof(value));
}

// A socket bound to `endpoint` with SO_REUSEPORT, so that every server thread has its own and the
// kernel spreads flows over them. An IPv6 wildcard also accepts IPv4 (V6ONLY off). Stream
// sockets are also put into the listening state. On failure: says why, returns an invalid UniqueFd.
UniqueFd server_socket(const Endpoint& endpoint, int type) {
    UniqueFd socket_fd(::socket(endpoint.family, type | SOCK_CLOEXEC, 0));
    if (!socket_fd.valid()) {
        fmt::print(stderr, "pw_loadgen: socket: {}\n", describe_errno(errno));
        return {};
    }
    set_int_option(socket_fd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
    set_int_option(socket_fd.get(), SOL_SOCKET, SO_REUSEPORT, 1);
    if (endpoint.family == AF_INET6) {
        set_int_option(socket_fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 0);
    }
    if (::bind(socket_fd.get(), as_sockaddr(endpoint), endpoint.length) != 0 ||
        (type == SOCK_STREAM && ::listen(socket_fd.get(), kListenBacklog) != 0)) {
        fmt::print(stderr, "pw_loadgen: bind/listen: {}\n", describe_errno(errno));
        return {};
    }
    return socket_fd;
}

// Accepts and closes at once: the benchmark measures connection setup, not data transfer.
void tcp_accept_loop(const UniqueFd& listener) {
    for (;;) {
        const UniqueFd connection(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!connection.valid() && errno != EINTR && errno != ECONNABORTED) {
            // EMFILE and friends: back off briefly rather than spin.
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
}

void udp_echo_loop(const UniqueFd& socket_fd) {
    std::array<char, 2048> buffer{};
    for (;;) {
        sockaddr_storage peer{};
        socklen_t peer_length = sizeof(peer);
        auto* peer_address = reinterpret_cast<sockaddr*>(&peer);
        const ssize_t received = ::recvfrom(socket_fd.get(), buffer.data(), buffer.size(), 0,
                                            peer_address, &peer_length);
        if (received < 0) {
            continue;
        }
        ::sendto(socket_fd.get(), buffer.data(), static_cast<std::size_t>(received), 0,
                 peer_address, peer_length);
    }
}

// Opens every thread's socket first, so that a bind error ends the process with a status, then
// serves until the process is killed.
int run_server(const Options& options, int type, void (*loop)(const UniqueFd&)) {
    const auto endpoint = parse_endpoint(options.address, options.port);
    if (!endpoint) {
        return usage("not a numeric address: " + options.address);
    }
    std::vector<UniqueFd> sockets;
    for (int index = 0; index < options.threads; ++index) {
        sockets.push_back(server_socket(*endpoint, type));
        if (!sockets.back().valid()) {
            return 1;
        }
    }
    std::vector<std::jthread> threads;
    threads.reserve(sockets.size());
    for (const UniqueFd& socket_fd : sockets) {
        threads.emplace_back([&socket_fd, loop] { loop(socket_fd); });
    }
    return 0; // Reached only after the threads, which never end.
}

// What one client thread measured.
struct ThreadResult {
    std::vector<std::uint32_t> latencies_ns;
    std::uint64_t errors = 0;
    std::uint64_t lost = 0;
    std::map<int, std::uint64_t> errnos;
};

std::uint32_t nanoseconds_between(Clock::time_point start, Clock::time_point end) {
    const auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count();
    return static_cast<std::uint32_t>(std::clamp<std::int64_t>(elapsed, 0, UINT32_MAX));
}

// One new TCP connection per iteration: socket, blocking connect (timed), then close with
// SO_LINGER 0 so that the client sends RST and keeps no TIME_WAIT socket (no port exhaustion).
void tcp_connect_loop(const Endpoint& target, Clock::time_point deadline, int /*thread_index*/,
                      int /*thread_count*/, ThreadResult& result) {
    constexpr linger kAbortiveClose{.l_onoff = 1, .l_linger = 0};
    for (Clock::time_point now = Clock::now(); now < deadline;) {
        const UniqueFd socket_fd(::socket(target.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!socket_fd.valid()) {
            ++result.errors;
            ++result.errnos[errno];
            now = Clock::now();
            continue;
        }
        const Clock::time_point start = Clock::now();
        const int status = ::connect(socket_fd.get(), as_sockaddr(target), target.length);
        now = Clock::now();
        if (status != 0) {
            ++result.errors;
            ++result.errnos[errno];
            continue;
        }
        result.latencies_ns.push_back(nanoseconds_between(start, now));
        ::setsockopt(socket_fd.get(), SOL_SOCKET, SO_LINGER, &kAbortiveClose,
                     sizeof(kAbortiveClose));
    }
}

// Source ports for UDP flows. Each thread walks its own slice of this range in order, so a port
// comes back only after the whole slice (tens of thousands of flows, seconds later). Random
// ephemeral ports would often hit a conntrack entry of a recent flow that still carries the
// connmark 1710 and so skips the queue, which would flatter every firewall measured.
constexpr int kFirstUdpSourcePort = 1024;
constexpr int kLastUdpSourcePort = 65535;

// Binds the socket to the next free port of [first, last], starting after `next`.
bool bind_next_port(int fd, int family, int first, int last, int& next) {
    for (int attempts = 0; attempts <= last - first; ++attempts) {
        next = next >= last ? first : next + 1;
        Endpoint local;
        if (family == AF_INET6) {
            sockaddr_in6 address{};
            address.sin6_family = AF_INET6;
            address.sin6_port = htons(static_cast<std::uint16_t>(next));
            std::memcpy(&local.address, &address, sizeof(address));
            local.length = sizeof(address);
        } else {
            sockaddr_in address{};
            address.sin_family = AF_INET;
            address.sin_port = htons(static_cast<std::uint16_t>(next));
            std::memcpy(&local.address, &address, sizeof(address));
            local.length = sizeof(address);
        }
        if (::bind(fd, as_sockaddr(local), local.length) == 0) {
            return true;
        }
        if (errno != EADDRINUSE) {
            return false;
        }
    }
    return false;
}

// One new UDP flow per iteration: a new socket on a new source port, one request, one reply
// (timed from send to receive; no reply within 1 s counts as lost), close.
void udp_flow_loop(const Endpoint& target, Clock::time_point deadline, int thread_index,
                   int thread_count, ThreadResult& result) {
    const int slice = (kLastUdpSourcePort - kFirstUdpSourcePort + 1) / thread_count;
    const int first_port = kFirstUdpSourcePort + (thread_index * slice);
    const int last_port = first_port + slice - 1;
    int next_port = last_port;
    std::array<char, 64> buffer{};
    for (Clock::time_point now = Clock::now(); now < deadline;) {
        const UniqueFd socket_fd(::socket(target.family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        if (!socket_fd.valid() ||
            !bind_next_port(socket_fd.get(), target.family, first_port, last_port, next_port) ||
            ::connect(socket_fd.get(), as_sockaddr(target), target.length) != 0) {
            ++result.errors;
            ++result.errnos[errno];
            now = Clock::now();
            continue;
        }
        const Clock::time_point start = Clock::now();
        if (::send(socket_fd.get(), "q", 1, 0) != 1) {
            ++result.errors;
            ++result.errnos[errno];
            now = Clock::now();
            continue;
        }
        pollfd waiting{.fd = socket_fd.get(), .events = POLLIN, .revents = 0};
        const int ready = ::poll(&waiting, 1, kUdpReplyTimeoutMs);
        if (ready == 0) {
            ++result.lost;
            now = Clock::now();
            continue;
        }
        const ssize_t received = ::recv(socket_fd.get(), buffer.data(), buffer.size(), 0);
        now = Clock::now();
        if (received < 0) {
            ++result.errors;
            ++result.errnos[errno];
            continue;
        }
        result.latencies_ns.push_back(nanoseconds_between(start, now));
    }
}

double percentile_us(std::vector<std::uint32_t>& sorted_ns, double fraction) {
    if (sorted_ns.empty()) {
        return 0.0;
    }
    const auto index = static_cast<std::size_t>(fraction * static_cast<double>(sorted_ns.size()));
    return sorted_ns[std::min(index, sorted_ns.size() - 1)] / 1000.0;
}

int run_client(const Options& options,
               void (*loop)(const Endpoint&, Clock::time_point, int, int, ThreadResult&)) {
    const auto target = parse_endpoint(options.address, options.port);
    if (!target) {
        return usage("not a numeric address: " + options.address);
    }
    std::vector<ThreadResult> results(static_cast<std::size_t>(options.threads));
    const Clock::time_point start = Clock::now();
    const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(options.seconds));
    {
        std::vector<std::jthread> threads;
        for (int index = 0; index < options.threads; ++index) {
            ThreadResult& result = results[static_cast<std::size_t>(index)];
            threads.emplace_back([&target, deadline, index, &options, &result, loop] {
                loop(*target, deadline, index, options.threads, result);
            });
        }
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

    std::vector<std::uint32_t> latencies;
    std::uint64_t errors = 0;
    std::uint64_t lost = 0;
    std::map<int, std::uint64_t> errnos;
    for (const ThreadResult& result : results) {
        latencies.insert(latencies.end(), result.latencies_ns.begin(), result.latencies_ns.end());
        errors += result.errors;
        lost += result.lost;
        for (const auto& [error_number, count] : result.errnos) {
            errnos[error_number] += count;
        }
    }
    std::ranges::sort(latencies);
    for (const auto& [error_number, count] : errnos) {
        fmt::print(stderr, "pw_loadgen: {} x {}\n", count, describe_errno(error_number));
    }
    fmt::print(
        "{{\"rate\": {:.1f}, \"p50_us\": {:.1f}, \"p99_us\": {:.1f}, \"count\": {}, "
        "\"errors\": {}, \"lost\": {}, \"seconds\": {:.3f}, \"threads\": {}}}\n",
        static_cast<double>(latencies.size()) / elapsed, percentile_us(latencies, 0.50),
        percentile_us(latencies, 0.99), latencies.size(), errors, lost, elapsed, options.threads);
    return 0;
}

// Background load for attribution and socket-table costs: N processes that each hold K open TCP
// connections and do nothing else, as on a busy desktop. Prints READY when all are connected and
// stays until SIGTERM/SIGINT, then takes its children down with it.
int run_idle_sockets(const Options& options) {
    const auto endpoint = parse_endpoint(options.address, options.port);
    if (!endpoint) {
        return usage("bad --target address");
    }
    std::vector<pid_t> children;
    for (int index = 0; index < options.processes; ++index) {
        const pid_t child = ::fork();
        if (child < 0) {
            fmt::print(stderr, "fork: {}\n", describe_errno(errno));
            break;
        }
        if (child == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL); // never outlive the benchmark
            std::vector<UniqueFd> held;
            for (int socket_index = 0; socket_index < options.sockets; ++socket_index) {
                UniqueFd fd(::socket(endpoint->family, SOCK_STREAM | SOCK_CLOEXEC, 0));
                if (fd.valid() &&
                    ::connect(fd.get(), as_sockaddr(*endpoint), endpoint->length) == 0) {
                    held.push_back(std::move(fd));
                }
            }
            ::pause();
            ::_exit(0);
        }
        children.push_back(child);
    }
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    fmt::print("READY {}\n", children.size());
    std::fflush(stdout);
    int received = 0;
    ::sigwait(&stop_signals, &received);
    for (const pid_t child : children) {
        ::kill(child, SIGKILL);
    }
    for (const pid_t child : children) {
        ::waitpid(child, nullptr, 0);
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    Options options;
    if (const auto error =
            parse_options(std::span<char*>(argv, static_cast<std::size_t>(argc)), options)) {
        return usage(*error);
    }
    if (options.command == "tcp-server") {
        return run_server(options, SOCK_STREAM, tcp_accept_loop);
    }
    if (options.command == "udp-server") {
        return run_server(options, SOCK_DGRAM, udp_echo_loop);
    }
    if (options.command == "tcp-connect") {
        return run_client(options, tcp_connect_loop);
    }
    if (options.command == "udp-flows") {
        return run_client(options, udp_flow_loop);
    }
    if (options.command == "idle-sockets") {
        return run_idle_sockets(options);
    }
    return usage("unknown subcommand " + options.command);
}
