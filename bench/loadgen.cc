// pw_loadgen: the traffic side of the system benchmark (bench/run_bench.py).
//
//   pw_loadgen tcp-server  --bind ADDR --port P [--threads N]
//   pw_loadgen udp-server  --bind ADDR --port P [--threads N]
//   pw_loadgen tcp-connect --target ADDR --port P [--threads N] [--inflight K] [--seconds S]
//   pw_loadgen udp-flows   --target ADDR --port P [--threads N] [--inflight K] [--seconds S]
//
// The servers run until they are killed (SIGTERM's default action is all they need). The clients
// keep K new flows in flight per thread and print one JSON line with the rate and the latency
// percentiles. Plain POSIX sockets, epoll and std::thread on purpose: the load generator must
// cost as little and as predictably as possible (CONVENTIONS rule 15, Boost.Asio, is about the
// daemon, not about this tool).

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
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
#include <deque>
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
// The TCP server leaves handshakes unaccepted: with TCP_DEFER_ACCEPT the final ACK of a handshake
// that carries no data creates no connection, and the client's RST, right after its connect
// completes, removes the half-open one. The client sees a complete handshake and the firewall
// under test the same four packets (SYN, SYN-ACK, ACK, RST) as with a server that accepts, but
// the server's side costs almost nothing: accepting and closing each connection cost the server
// 10-18 µs of CPU per connection on the 2 shared vCPUs, CPU that the firewall under test then
// lacked. A client that keeps its connection (idle-sockets) is accepted after about 1 s, when it
// answers the server's repeated SYN-ACK, and then closed like any other.
constexpr int kDeferAcceptSeconds = 1;

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

// Flows in flight per client thread, unless --inflight says otherwise: enough to keep the
// minimal verdict program busy on a 2-vCPU machine (see the sweep in bench/README.md).
constexpr int kDefaultInflight = 64;
// More flows in flight than this per thread only queue up in the firewall's netlink queue.
constexpr int kMaxInflight = 4096;

// Command-line options: every subcommand takes `--name value` pairs.
struct Options {
    std::string command;
    std::string address;
    int port = 0;
    int threads = 1;
    int inflight = kDefaultInflight; // clients: new flows in flight per thread
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
               "[--inflight K] [--seconds S]\n"
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
        } else if (name == "--inflight") {
            options.inflight = std::atoi(value.c_str());
            if (options.inflight < 1 || options.inflight > kMaxInflight) {
                return fmt::format("--inflight must be 1..{}", kMaxInflight);
            }
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
    if (type == SOCK_STREAM) {
        set_int_option(socket_fd.get(), IPPROTO_TCP, TCP_DEFER_ACCEPT, kDeferAcceptSeconds);
    }
    if (::bind(socket_fd.get(), as_sockaddr(endpoint), endpoint.length) != 0 ||
        (type == SOCK_STREAM && ::listen(socket_fd.get(), kListenBacklog) != 0)) {
        fmt::print(stderr, "pw_loadgen: bind/listen: {}\n", describe_errno(errno));
        return {};
    }
    return socket_fd;
}

// Accepts and closes at once: the benchmark measures connection setup, not data transfer. With
// TCP_DEFER_ACCEPT (server_socket) only connections that were kept open or sent data get here.
void tcp_accept_loop(const UniqueFd& listener) {
    for (;;) {
        const UniqueFd connection(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!connection.valid() && errno != EINTR && errno != ECONNABORTED) {
            // EMFILE and friends: back off briefly rather than spin.
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
}

// Echoes every datagram back to its sender. recvmmsg/sendmmsg take whatever has arrived, up to
// kEchoBatch datagrams, in one call each: with many flows in flight the server then costs two
// system calls per batch rather than per datagram, and leaves the CPUs to the firewall.
void udp_echo_loop(const UniqueFd& socket_fd) {
    constexpr std::size_t kEchoBatch = 64;
    constexpr std::size_t kDatagramSize = 2048;
    std::vector<char> buffers(kEchoBatch * kDatagramSize);
    std::array<sockaddr_storage, kEchoBatch> peers{};
    std::array<iovec, kEchoBatch> vectors{};
    std::array<mmsghdr, kEchoBatch> messages{};
    for (std::size_t index = 0; index < kEchoBatch; ++index) {
        messages[index].msg_hdr.msg_name = &peers[index];
        messages[index].msg_hdr.msg_iov = &vectors[index];
        messages[index].msg_hdr.msg_iovlen = 1;
    }
    for (;;) {
        for (std::size_t index = 0; index < kEchoBatch; ++index) {
            vectors[index] = {.iov_base = &buffers[index * kDatagramSize],
                              .iov_len = kDatagramSize};
            messages[index].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
        }
        const int received =
            ::recvmmsg(socket_fd.get(), messages.data(), kEchoBatch, MSG_WAITFORONE, nullptr);
        if (received <= 0) {
            continue;
        }
        for (std::size_t index = 0; index < static_cast<std::size_t>(received); ++index) {
            vectors[index].iov_len = messages[index].msg_len; // the reply is the request
        }
        ::sendmmsg(socket_fd.get(), messages.data(), static_cast<unsigned int>(received), 0);
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
    std::uint64_t errors = 0;   // failed flows (refused, reset, socket/bind errors, TCP timeouts)
    std::uint64_t lost = 0;     // UDP requests without a reply within kUdpReplyTimeout
    std::uint64_t timeouts = 0; // TCP connects not done within kTcpConnectTimeout (in errors)
    std::map<int, std::uint64_t> errnos;

    void fail(int error_number) {
        ++errors;
        ++errnos[error_number];
    }
};

std::uint32_t nanoseconds_between(Clock::time_point start, Clock::time_point end) {
    const auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count();
    return static_cast<std::uint32_t>(std::clamp<std::int64_t>(elapsed, 0, UINT32_MAX));
}

enum class FlowKind { Tcp, Udp };

// A SYN that the firewall dropped is sent again after 1 s, and again 2 s later: a connect that
// is not done after 3 s is given up (counted as an error, ETIMEDOUT) so that its slot carries on.
constexpr auto kTcpConnectTimeout = std::chrono::seconds(3);
// A UDP request without an echo within 1 s is lost.
constexpr auto kUdpReplyTimeout = std::chrono::seconds(1);
constexpr int kMaxEvents = 256;
// How long a slot whose flow could not even be opened (EMFILE, no free port) waits to try again.
constexpr int kRetryAfterFailureMs = 1;

// Source ports for UDP flows. Each thread walks its own slice of this range in order, so a port
// comes back only after the whole slice (tens of thousands of flows, seconds later). Random
// ephemeral ports would often hit a conntrack entry of a recent flow that still carries the
// connmark 1710 and so skips the queue, which would flatter every firewall measured.
constexpr int kFirstUdpSourcePort = 1024;
constexpr int kLastUdpSourcePort = 65535;

struct PortRange {
    int first = 0;
    int last = 0;
};

// Binds the socket to the next free port of `range`, starting after `next`.
bool bind_next_port(int fd, int family, PortRange range, int& next) {
    for (int attempts = 0; attempts <= range.last - range.first; ++attempts) {
        next = next >= range.last ? range.first : next + 1;
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

// Keeps `inflight` new flows of one kind open at once on one thread, until the deadline: each
// slot opens a flow, and the moment it completes (TCP: the handshake is done; UDP: the reply is
// in), fails or times out, opens the next one. Non-blocking sockets and one epoll instance, so a
// thread never waits for one flow while it could start others: the old one-blocking-connect-at-
// a-time loop left the CPUs idle for most of each round trip through the firewall, and so
// measured its own latency rather than the firewall's capacity.
//
// A TCP flow: socket, SO_LINGER 0, non-blocking connect (the kernel picks the source port), wait
// for writable, close. The close sends a RST: neither side keeps a TIME_WAIT socket, so ports
// never run out, and conntrack's entry goes to CLOSE (1 s timeout in the benchmark's namespace;
// a SYN that reuses the tuple replaces it). A UDP flow: socket, bind to the next port of the
// thread's slice, sendto, wait for the echo, close. Latency is from just before connect/sendto
// to the epoll wake-up that reports completion, so with many flows in flight it includes the
// time the flow waited in the queues of the firewall and of this thread (Little's law:
// latency ≈ inflight / rate); `--inflight 1` measures one flow at a time.
//
// Owned by one client thread; nothing in it is shared.
class FlowDriver {
public:
    FlowDriver(const Endpoint& target, FlowKind kind, PortRange udp_ports, int inflight,
               ThreadResult& result)
        : target_(target),
          kind_(kind),
          udp_ports_(udp_ports),
          next_udp_port_(udp_ports.last),
          epoll_(::epoll_create1(EPOLL_CLOEXEC)),
          slots_(static_cast<std::size_t>(inflight)),
          result_(result) {}

    void run(Clock::time_point deadline) {
        if (!epoll_.valid()) {
            result_.fail(errno);
            return;
        }
        for (std::size_t index = 0; index < slots_.size(); ++index) {
            idle_.push_back(index);
        }
        std::array<epoll_event, kMaxEvents> events{};
        for (Clock::time_point now = Clock::now(); now < deadline; now = Clock::now()) {
            start_idle_slots(deadline);
            const int ready = ::epoll_wait(epoll_.get(), events.data(), kMaxEvents,
                                           wait_ms(Clock::now(), deadline));
            for (int index = 0; index < ready; ++index) {
                on_event(events[static_cast<std::size_t>(index)]);
            }
            expire(Clock::now());
        }
        // Flows still in flight at the deadline are neither counted nor failed; the slots'
        // destructors close them (a TCP one with a RST).
    }

private:
    struct Slot {
        UniqueFd fd;
        Clock::time_point start;
        std::uint32_t generation = 0; // tells a slot's current flow from its earlier ones
    };
    struct Pending {
        std::size_t index = 0;
        std::uint32_t generation = 0;
    };
    enum class Started { InFlight, Completed, Failed };

    static std::uint64_t tag(std::size_t index, std::uint32_t generation) {
        return (std::uint64_t{generation} << 32U) | index;
    }

    // Opens a flow in every idle slot. A slot whose flow failed at once waits for the next
    // round of the loop (see wait_ms) rather than spin on the same error.
    void start_idle_slots(Clock::time_point deadline) {
        std::size_t failed = 0;
        while (idle_.size() > failed) {
            const std::size_t index = idle_[failed];
            if (Clock::now() >= deadline) {
                return;
            }
            switch (start_flow(index)) {
                case Started::InFlight:
                    idle_[failed] = idle_.back();
                    idle_.pop_back();
                    break;
                case Started::Completed:
                    break; // the slot is free again: open its next flow
                case Started::Failed:
                    ++failed;
                    break;
            }
        }
        retry_pending_ = failed > 0;
    }

    Started start_flow(std::size_t index) {
        Slot& slot = slots_[index];
        slot.fd.reset(::socket(
            target_.family,
            (kind_ == FlowKind::Tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!slot.fd.valid()) {
            result_.fail(errno);
            return Started::Failed;
        }
        ++slot.generation;
        int status = 0;
        if (kind_ == FlowKind::Tcp) {
            constexpr linger kAbortiveClose{.l_onoff = 1, .l_linger = 0};
            ::setsockopt(slot.fd.get(), SOL_SOCKET, SO_LINGER, &kAbortiveClose,
                         sizeof(kAbortiveClose));
            slot.start = Clock::now();
            status = ::connect(slot.fd.get(), as_sockaddr(target_), target_.length);
            if (status == 0) {
                complete(slot, slot.start);
                return Started::Completed;
            }
            if (errno != EINPROGRESS) {
                return fail(slot, errno);
            }
        } else {
            if (!bind_next_port(slot.fd.get(), target_.family, udp_ports_, next_udp_port_)) {
                return fail(slot, errno);
            }
            slot.start = Clock::now();
            if (::sendto(slot.fd.get(), "q", 1, 0, as_sockaddr(target_), target_.length) != 1) {
                return fail(slot, errno);
            }
        }
        epoll_event event{.events = kind_ == FlowKind::Tcp ? EPOLLOUT : EPOLLIN,
                          .data = {.u64 = tag(index, slot.generation)}};
        if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, slot.fd.get(), &event) != 0) {
            return fail(slot, errno);
        }
        pending_.push_back({.index = index, .generation = slot.generation});
        return Started::InFlight;
    }

    Started fail(Slot& slot, int error_number) {
        result_.fail(error_number);
        slot.fd.reset();
        return Started::Failed;
    }

    void complete(Slot& slot, Clock::time_point now) {
        result_.latencies_ns.push_back(nanoseconds_between(slot.start, now));
        slot.fd.reset();
    }

    void on_event(const epoll_event& event) {
        const auto index = static_cast<std::size_t>(event.data.u64 & UINT32_MAX);
        const auto generation = static_cast<std::uint32_t>(event.data.u64 >> 32U);
        Slot& slot = slots_[index];
        if (slot.generation != generation || !slot.fd.valid()) {
            return;
        }
        const Clock::time_point now = Clock::now();
        if (kind_ == FlowKind::Tcp) {
            int error_number = 0;
            socklen_t length = sizeof(error_number);
            if ((event.events & (EPOLLERR | EPOLLHUP)) != 0) {
                ::getsockopt(slot.fd.get(), SOL_SOCKET, SO_ERROR, &error_number, &length);
            }
            // ECONNRESET: the handshake was done, the server closed already.
            if (error_number == 0 || error_number == ECONNRESET) {
                complete(slot, now);
            } else {
                fail(slot, error_number);
            }
        } else {
            std::array<char, 64> buffer{};
            if (::recv(slot.fd.get(), buffer.data(), buffer.size(), 0) > 0) {
                complete(slot, now);
            } else {
                fail(slot, errno);
            }
        }
        idle_.push_back(index);
    }

    // Flows are started in the order of pending_, and all have the same timeout, so the
    // expired ones are at its front (behind entries of flows that are already done).
    void expire(Clock::time_point now) {
        const auto timeout = kind_ == FlowKind::Tcp ? Clock::duration(kTcpConnectTimeout)
                                                    : Clock::duration(kUdpReplyTimeout);
        while (!pending_.empty()) {
            const Pending& oldest = pending_.front();
            Slot& slot = slots_[oldest.index];
            const bool current = slot.generation == oldest.generation && slot.fd.valid();
            if (current && now - slot.start < timeout) {
                return;
            }
            if (current) {
                slot.fd.reset();
                if (kind_ == FlowKind::Tcp) {
                    ++result_.timeouts;
                    result_.fail(ETIMEDOUT);
                } else {
                    ++result_.lost;
                }
                idle_.push_back(oldest.index);
            }
            pending_.pop_front();
        }
    }

    // Until the deadline, the oldest flow's timeout, or (after a failure to open) a short retry.
    int wait_ms(Clock::time_point now, Clock::time_point deadline) {
        Clock::time_point until = deadline;
        for (const Pending& oldest : pending_) {
            const Slot& slot = slots_[oldest.index];
            if (slot.generation == oldest.generation && slot.fd.valid()) {
                until = std::min(until, slot.start + (kind_ == FlowKind::Tcp
                                                          ? Clock::duration(kTcpConnectTimeout)
                                                          : Clock::duration(kUdpReplyTimeout)));
                break;
            }
        }
        const auto remaining =
            std::chrono::ceil<std::chrono::milliseconds>(std::max(until - now, Clock::duration{}));
        const int milliseconds = static_cast<int>(remaining.count());
        return retry_pending_ ? std::min(milliseconds, kRetryAfterFailureMs) : milliseconds;
    }

    Endpoint target_;
    FlowKind kind_;
    PortRange udp_ports_;
    int next_udp_port_;
    UniqueFd epoll_;
    std::vector<Slot> slots_;
    std::vector<std::size_t> idle_;
    std::deque<Pending> pending_;
    bool retry_pending_ = false;
    ThreadResult& result_;
};

double percentile_us(std::vector<std::uint32_t>& sorted_ns, double fraction) {
    if (sorted_ns.empty()) {
        return 0.0;
    }
    const auto index = static_cast<std::size_t>(fraction * static_cast<double>(sorted_ns.size()));
    return sorted_ns[std::min(index, sorted_ns.size() - 1)] / 1000.0;
}

double cpu_seconds(const rusage& usage) {
    const auto seconds = [](const timeval& value) {
        return static_cast<double>(value.tv_sec) + (static_cast<double>(value.tv_usec) / 1e6);
    };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

int run_client(const Options& options, FlowKind kind) {
    const auto target = parse_endpoint(options.address, options.port);
    if (!target) {
        return usage("not a numeric address: " + options.address);
    }
    std::vector<ThreadResult> results(static_cast<std::size_t>(options.threads));
    rusage usage_before{};
    ::getrusage(RUSAGE_SELF, &usage_before);
    const Clock::time_point start = Clock::now();
    const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(options.seconds));
    {
        const int slice = (kLastUdpSourcePort - kFirstUdpSourcePort + 1) / options.threads;
        std::vector<std::jthread> threads;
        for (int index = 0; index < options.threads; ++index) {
            const PortRange ports{.first = kFirstUdpSourcePort + (index * slice),
                                  .last = kFirstUdpSourcePort + ((index + 1) * slice) - 1};
            ThreadResult& result = results[static_cast<std::size_t>(index)];
            threads.emplace_back([&target, deadline, kind, ports, &options, &result] {
                FlowDriver(*target, kind, ports, options.inflight, result).run(deadline);
            });
        }
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    rusage usage_after{};
    ::getrusage(RUSAGE_SELF, &usage_after);

    std::vector<std::uint32_t> latencies;
    ThreadResult total;
    for (const ThreadResult& result : results) {
        latencies.insert(latencies.end(), result.latencies_ns.begin(), result.latencies_ns.end());
        total.errors += result.errors;
        total.lost += result.lost;
        total.timeouts += result.timeouts;
        for (const auto& [error_number, count] : result.errnos) {
            total.errnos[error_number] += count;
        }
    }
    std::ranges::sort(latencies);
    for (const auto& [error_number, count] : total.errnos) {
        fmt::print(stderr, "pw_loadgen: {} x {}\n", count, describe_errno(error_number));
    }
    // The generator's own CPU time per completed flow (all threads, user + kernel): the
    // kernel's send path of each SYN/request, RST and of the replies it receives is in it.
    const double cpu = cpu_seconds(usage_after) - cpu_seconds(usage_before);
    const double cpu_us_per_flow =
        latencies.empty() ? 0.0 : cpu * 1e6 / static_cast<double>(latencies.size());
    fmt::print(
        "{{\"rate\": {:.1f}, \"p50_us\": {:.1f}, \"p99_us\": {:.1f}, \"count\": {}, "
        "\"errors\": {}, \"lost\": {}, \"timeouts\": {}, \"seconds\": {:.3f}, "
        "\"threads\": {}, \"inflight\": {}, \"cpu_us_per_flow\": {:.2f}}}\n",
        static_cast<double>(latencies.size()) / elapsed, percentile_us(latencies, 0.50),
        percentile_us(latencies, 0.99), latencies.size(), total.errors, total.lost, total.timeouts,
        elapsed, options.threads, options.inflight, cpu_us_per_flow);
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
        return run_client(options, FlowKind::Tcp);
    }
    if (options.command == "udp-flows") {
        return run_client(options, FlowKind::Udp);
    }
    if (options.command == "idle-sockets") {
        return run_idle_sockets(options);
    }
    return usage("unknown subcommand " + options.command);
}
