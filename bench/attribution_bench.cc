// Latency and correctness of process attribution (issue 3, item 6): how long
// pw::network::ProcessAttributor::attribute() takes, and whether it names the right process,
// with 200 and 1,000 idle background processes holding 5 TCP sockets each. Not a test: run it by
// hand as root (bench/README.md, "Attribution benchmark").
//
// Everything runs in a private network namespace that the benchmark unshares before it creates
// any socket. The eBPF programs are attached to a child cgroup that the benchmark creates and
// removes; only processes that the benchmark started are moved into it, killed and reaped.
//
// Three kinds of process take part:
//  - the benchmark: the attributors under test and nothing else. It does not fork after
//    start-up, so no copy-on-write fault lands in a timed call;
//  - the spawner: this binary again (`--spawner`, internal), started with execve() after the
//    eBPF programs were loaded, so that the kernel's exec records know its executable. It lives
//    in the benchmark's cgroup, owns the servers (a TCP listener and a UDP receiver on
//    127.0.0.1), forks the background processes and the clients, and holds the server ends;
//  - the spawner's children: idle background processes, and clients whose flows are
//    attributed. They inherit the cgroup, and keep no file descriptor of the spawner's.
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "common/clock.h"
#include "common/ip_address.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "firewall/connection_facts.h"
#include "network/attributor.h"
#include "packet/packet_info.h"
#include "process/inode_pid_index.h"
#include "process/process_info.h"
#include "process/process_registry.h"
#include "state/bpf/socket_owner_records.h"
#include "state/proc_net_socket_table.h"
#include "state/sock_diag_socket_table.h"
#include "state/socket_table.h"

namespace {

namespace fs = std::filesystem;
using pw::UniqueFd;
using SteadyTime = std::chrono::steady_clock;

constexpr int kExitSkipped = 77;      // what ctest and automake take for "skipped"
constexpr int kExitInterrupted = 130; // as a shell reports SIGINT
constexpr int kExitUsage = 2;
constexpr int kSocketsPerBackgroundProcess = 5;
// Flows a warm client holds at once: it opens this many, they are attributed, it closes them
// and opens the next batch. A process with thousands of sockets would measure the cost of
// re-reading its fd directory rather than that of a typical busy program.
constexpr std::uint32_t kWarmBatch = 50;
constexpr int kChannelFd = 3; // the spawner's command socket, a child's report socket
constexpr int kPeerTimeoutMs = 5'000;
constexpr int kReplyTimeoutMs = 60'000;
constexpr std::string_view kSpawnerFlag = "--spawner";
constexpr std::string_view kCgroupPrefix = "pw-attribution-bench-";

// Set by SIGINT, SIGTERM and SIGHUP in the benchmark process. The one mutable global: a signal
// handler has no other way to reach the program. Loops check it; blocking waits end with EINTR
// (the handlers are installed without SA_RESTART) and then check it.
volatile std::sig_atomic_t stop_signal = 0;

void on_stop_signal(int signal_number) {
    stop_signal = signal_number;
}

// Unwinds the benchmark on a stop signal, so that every destructor cleans up on the way out.
class Interrupted : public std::runtime_error {
public:
    Interrupted() : std::runtime_error("interrupted") {}
};

void check_stop() {
    if (stop_signal != 0) {
        throw Interrupted();
    }
}

std::string errno_text(int error_number) {
    return std::error_code(error_number, std::system_category()).message();
}

[[noreturn]] void fail_with(const std::string& what) {
    throw std::runtime_error(what);
}

// --- Sockets and byte streams, used by all three kinds of process. ---

sockaddr_in loopback_address(std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

// The socket calls take the generic sockaddr: the cast is the BSD socket API's convention.
const sockaddr* as_sockaddr(const sockaddr_in& address) {
    return reinterpret_cast<const sockaddr*>(&address);
}

sockaddr* as_sockaddr(sockaddr_in& address) {
    return reinterpret_cast<sockaddr*>(&address);
}

std::optional<std::uint16_t> local_port(int fd) {
    sockaddr_in address{};
    socklen_t length = sizeof(address);
    if (::getsockname(fd, as_sockaddr(address), &length) != 0) {
        return std::nullopt;
    }
    return ntohs(address.sin_port);
}

template <typename T>
std::span<std::byte> writable_bytes(T& value) {
    return std::as_writable_bytes(std::span(&value, 1));
}

template <typename T>
std::span<const std::byte> bytes(const T& value) {
    return std::as_bytes(std::span(&value, 1));
}

enum class Io : std::uint8_t { Done, Closed, TimedOut, Interrupted, Failed };

// Reads exactly `buffer.size()` bytes, waiting at most `timeout_ms` for each part (-1: no limit).
Io read_exact(int fd, std::span<std::byte> buffer, int timeout_ms) {
    std::size_t done = 0;
    while (done < buffer.size()) {
        pollfd waiting{.fd = fd, .events = POLLIN, .revents = 0};
        const int ready = ::poll(&waiting, 1, timeout_ms);
        if (ready < 0) {
            if (errno != EINTR) {
                return Io::Failed;
            }
            if (stop_signal != 0) {
                return Io::Interrupted;
            }
            continue;
        }
        if (ready == 0) {
            return Io::TimedOut;
        }
        const ssize_t count = ::read(fd, buffer.subspan(done).data(), buffer.size() - done);
        if (count == 0) {
            return Io::Closed;
        }
        if (count < 0) {
            if (errno == EINTR) {
                continue;
            }
            return Io::Failed;
        }
        done += static_cast<std::size_t>(count);
    }
    return Io::Done;
}

bool write_exact(int fd, std::span<const std::byte> data) {
    while (!data.empty()) {
        const ssize_t count = ::write(fd, data.data(), data.size());
        if (count < 0 && errno == EINTR) {
            continue;
        }
        if (count <= 0) {
            return false;
        }
        data = data.subspan(static_cast<std::size_t>(count));
    }
    return true;
}

// A socket pair between a parent and the child it is about to fork.
struct Channel {
    UniqueFd parent;
    UniqueFd child;
};

std::optional<Channel> make_channel() {
    std::array<int, 2> fds{};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds.data()) != 0) {
        return std::nullopt;
    }
    return Channel{.parent = UniqueFd(fds[0]), .child = UniqueFd(fds[1])};
}

// In a child between fork() and its work: `channel` becomes fd 3 (without FD_CLOEXEC), and
// every other descriptor above 2 is closed. Async-signal-safe calls only.
bool keep_only_channel(int channel) {
    if (channel == kChannelFd) {
        if (::fcntl(kChannelFd, F_SETFD, 0) != 0) {
            return false;
        }
    } else if (::dup2(channel, kChannelFd) != kChannelFd) {
        return false;
    }
    return ::close_range(kChannelFd + 1, ~0U, 0) == 0;
}

std::optional<int> parse_int(std::string_view text) {
    int value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

std::optional<ino_t> namespace_inode(const char* path) {
    struct stat status{};
    if (::stat(path, &status) != 0) {
        return std::nullopt;
    }
    return status.st_ino;
}

// Appends a PID to a cgroup.procs file, which moves that process into the cgroup.
bool write_pid(const fs::path& procs, pid_t pid) {
    std::ofstream out(procs);
    out << pid << '\n';
    out.flush();
    return static_cast<bool>(out);
}

// What the spawner's clients do; each flow goes to the spawner's servers on 127.0.0.1.
enum class Traffic : std::uint8_t {
    Tcp,              // connect() and keep the connection open
    ConnectedUdp,     // connect() a UDP socket, send() one datagram, keep the socket
    FireAndForgetUdp, // sendto() from an unbound socket, close it; the client exits at once
};
constexpr std::array kTraffic{Traffic::Tcp, Traffic::ConnectedUdp, Traffic::FireAndForgetUdp};

std::string_view name_of(Traffic traffic) {
    switch (traffic) {
        case Traffic::Tcp:
            return "tcp";
        case Traffic::ConnectedUdp:
            return "udp-connected";
        case Traffic::FireAndForgetUdp:
            return "udp-fire-forget";
    }
    return "?";
}

// --- The spawner protocol: one Command, one Reply followed by `ports` port numbers. ---

enum class Op : std::uint8_t {
    StartBackground, // fork `count` idle processes with 5 TCP connections each
    StopBackground,  // kill and reap them
    StartClient,     // fork a client for `traffic` (stopping the previous one)
    OpenFlows,       // the client opens `count` flows; their local ports come back
    StopClient,      // kill and reap the client (nothing to do after fire-and-forget)
};

struct Command {
    Op op = Op::StopClient;
    Traffic traffic = Traffic::Tcp;
    std::uint32_t count = 0;
};

struct Reply {
    std::int32_t error = 0;  // 0, or an errno value; the spawner printed the details
    std::int32_t pid = 0;    // the client's (OpenFlows, StartClient) or the spawner's (greeting)
    std::uint32_t ports = 0; // how many uint16_t ports follow
};

// ===== The spawner's side (this binary started with --spawner) =====

// A server socket of the spawner on 127.0.0.1 and an ephemeral port.
struct Server {
    UniqueFd fd;
    std::uint16_t port = 0;
};

std::optional<Server> open_server(int type) {
    Server server{.fd = UniqueFd(::socket(AF_INET, type | SOCK_CLOEXEC, 0)), .port = 0};
    const sockaddr_in address = loopback_address(0);
    if (!server.fd.valid() || ::bind(server.fd.get(), as_sockaddr(address), sizeof(address)) != 0) {
        return std::nullopt;
    }
    if (type == SOCK_STREAM && ::listen(server.fd.get(), SOMAXCONN) != 0) {
        return std::nullopt;
    }
    const auto port = local_port(server.fd.get());
    if (!port) {
        return std::nullopt;
    }
    server.port = *port;
    return server;
}

UniqueFd accept_one(int listener) {
    pollfd waiting{.fd = listener, .events = POLLIN, .revents = 0};
    const int ready = ::poll(&waiting, 1, kPeerTimeoutMs);
    if (ready != 1) {
        errno = ready == 0 ? ETIMEDOUT : errno;
        return {};
    }
    return UniqueFd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
}

void drain_datagrams(int receiver) {
    std::array<char, 64> buffer{};
    while (::recv(receiver, buffer.data(), buffer.size(), MSG_DONTWAIT) > 0) {
    }
}

Reply failure(std::string_view what, int error_number) {
    fmt::print(stderr, "pw_attribution_bench (spawner): {}: {}\n", what, errno_text(error_number));
    return Reply{.error = error_number != 0 ? error_number : EIO, .pid = 0, .ports = 0};
}

// Forks a child that keeps stdin, stdout, stderr and `channel` (as fd 3) and nothing else of the
// parent's, and that dies with its parent. Runs `body` in the child; returns the child's PID.
template <typename Body>
pid_t fork_child(int channel, const Body& body) {
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid != 0) {
        return pid;
    }
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent ||
        !keep_only_channel(channel)) {
        ::_exit(1);
    }
    body();
    ::_exit(0);
}

// A background process: 5 TCP connections to the spawner's listener, then sleep until killed.
[[noreturn]] void run_background_process(std::uint16_t tcp_port) {
    std::array<UniqueFd, kSocketsPerBackgroundProcess> held;
    char status = 0;
    const sockaddr_in server = loopback_address(tcp_port);
    for (UniqueFd& fd : held) {
        fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd.valid() || ::connect(fd.get(), as_sockaddr(server), sizeof(server)) != 0) {
            status = 1;
        }
    }
    write_exact(kChannelFd, bytes(status));
    ::close(kChannelFd);
    for (;;) {
        ::pause();
    }
}

// Opens one flow of `traffic`; its local port, or nullopt on failure. The socket is kept in
// `held`, except after fire-and-forget, where it is closed at once.
std::optional<std::uint16_t> open_flow(Traffic traffic, const sockaddr_in& server,
                                       std::vector<UniqueFd>& held) {
    const bool tcp = traffic == Traffic::Tcp;
    UniqueFd fd(::socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        return std::nullopt;
    }
    const char payload = 'x';
    bool sent = false;
    switch (traffic) {
        case Traffic::Tcp: {
            // RST on close: thousands of flows per run leave no TIME_WAIT behind.
            const linger reset_on_close{.l_onoff = 1, .l_linger = 0};
            ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &reset_on_close, sizeof(reset_on_close));
            sent = ::connect(fd.get(), as_sockaddr(server), sizeof(server)) == 0;
            break;
        }
        case Traffic::ConnectedUdp:
            sent = ::connect(fd.get(), as_sockaddr(server), sizeof(server)) == 0 &&
                   ::send(fd.get(), &payload, 1, 0) == 1;
            break;
        case Traffic::FireAndForgetUdp:
            sent = ::sendto(fd.get(), &payload, 1, 0, as_sockaddr(server), sizeof(server)) == 1;
            break;
    }
    if (!sent) {
        return std::nullopt;
    }
    const auto port = local_port(fd.get());
    if (port && traffic != Traffic::FireAndForgetUdp) {
        held.push_back(std::move(fd));
    }
    return port;
}

// A client: on each count read from fd 3, closes its previous flows, opens `count` new ones
// and writes back their local ports. A fire-and-forget client exits right after reporting.
[[noreturn]] void run_client(Traffic traffic, std::uint16_t server_port) {
    const sockaddr_in server = loopback_address(server_port);
    std::vector<UniqueFd> held;
    std::vector<std::uint16_t> ports;
    for (;;) {
        std::uint32_t count = 0;
        if (read_exact(kChannelFd, writable_bytes(count), -1) != Io::Done) {
            ::_exit(0);
        }
        held.clear();
        ports.clear();
        for (std::uint32_t index = 0; index < count; ++index) {
            const auto port = open_flow(traffic, server, held);
            if (!port) {
                break;
            }
            ports.push_back(*port);
        }
        const auto reported = static_cast<std::uint32_t>(ports.size());
        if (!write_exact(kChannelFd, bytes(reported)) ||
            !write_exact(kChannelFd, std::as_bytes(std::span(ports)))) {
            ::_exit(1);
        }
        if (traffic == Traffic::FireAndForgetUdp) {
            ::_exit(0); // gone before anyone looks
        }
    }
}

// The spawner's state: its servers, its children and the server ends it holds for them.
class SpawnerProcess {
public:
    SpawnerProcess(UniqueFd command, Server tcp, Server udp)
        : command_(std::move(command)), tcp_(std::move(tcp)), udp_(std::move(udp)) {}

    // Serves commands until the benchmark closes the command socket, then kills and reaps
    // every child and exits.
    [[noreturn]] void run() {
        for (;;) {
            Command command;
            if (read_exact(command_.get(), writable_bytes(command), -1) != Io::Done) {
                break;
            }
            std::vector<std::uint16_t> ports;
            Reply reply = dispatch(command, ports);
            reply.ports = static_cast<std::uint32_t>(ports.size());
            if (!write_exact(command_.get(), bytes(reply)) ||
                !write_exact(command_.get(), std::as_bytes(std::span(ports)))) {
                break;
            }
        }
        stop_client();
        stop_background();
        ::_exit(0);
    }

private:
    Reply dispatch(const Command& command, std::vector<std::uint16_t>& ports) {
        switch (command.op) {
            case Op::StartBackground:
                return start_background(command.count);
            case Op::StopBackground:
                stop_background();
                return {};
            case Op::StartClient:
                return start_client(command.traffic);
            case Op::OpenFlows:
                return open_flows(command.count, ports);
            case Op::StopClient:
                stop_client();
                return {};
        }
        return failure("unknown command", EINVAL);
    }

    Reply start_background(std::uint32_t count) {
        for (std::uint32_t index = 0; index < count; ++index) {
            auto channel = make_channel();
            if (!channel) {
                return failure("socketpair", errno);
            }
            const std::uint16_t port = tcp_.port;
            const pid_t pid =
                fork_child(channel->child.get(), [port] { run_background_process(port); });
            const int fork_error = errno;
            channel->child.reset();
            if (pid < 0) {
                return failure("fork", fork_error);
            }
            background_.push_back(pid);
            char status = 1;
            if (read_exact(channel->parent.get(), writable_bytes(status), kPeerTimeoutMs) !=
                    Io::Done ||
                status != 0) {
                return failure("background process " + std::to_string(pid) + " did not connect",
                               EIO);
            }
            for (int socket = 0; socket < kSocketsPerBackgroundProcess; ++socket) {
                UniqueFd end = accept_one(tcp_.fd.get());
                if (!end.valid()) {
                    return failure("accept (background)", errno);
                }
                background_ends_.push_back(std::move(end));
            }
        }
        return {};
    }

    void stop_background() {
        for (const pid_t pid : background_) {
            ::kill(pid, SIGKILL);
        }
        for (const pid_t pid : background_) {
            ::waitpid(pid, nullptr, 0);
        }
        background_.clear();
        background_ends_.clear();
    }

    Reply start_client(Traffic traffic) {
        stop_client();
        auto channel = make_channel();
        if (!channel) {
            return failure("socketpair", errno);
        }
        const std::uint16_t port = traffic == Traffic::Tcp ? tcp_.port : udp_.port;
        const pid_t pid =
            fork_child(channel->child.get(), [traffic, port] { run_client(traffic, port); });
        if (pid < 0) {
            return failure("fork", errno);
        }
        client_ = pid;
        client_traffic_ = traffic;
        client_control_ = std::move(channel->parent);
        return Reply{.error = 0, .pid = pid, .ports = 0};
    }

    Reply open_flows(std::uint32_t count, std::vector<std::uint16_t>& ports) {
        const pid_t pid = client_;
        if (pid <= 0 || !write_exact(client_control_.get(), bytes(count))) {
            return failure("no client to open flows", EINVAL);
        }
        std::uint32_t opened = 0;
        if (read_exact(client_control_.get(), writable_bytes(opened), kReplyTimeoutMs) !=
            Io::Done) {
            return failure("client " + std::to_string(pid) + " did not report", EIO);
        }
        ports.resize(opened);
        if (read_exact(client_control_.get(), std::as_writable_bytes(std::span(ports)),
                       kReplyTimeoutMs) != Io::Done) {
            return failure("client " + std::to_string(pid) + " did not report", EIO);
        }
        if (client_traffic_ == Traffic::Tcp) {
            client_ends_.clear(); // the previous batch, reset by the client already
            for (std::uint32_t index = 0; index < opened; ++index) {
                UniqueFd end = accept_one(tcp_.fd.get());
                if (!end.valid()) {
                    return failure("accept (client)", errno);
                }
                client_ends_.push_back(std::move(end));
            }
        } else {
            drain_datagrams(udp_.fd.get());
        }
        if (client_traffic_ == Traffic::FireAndForgetUdp) {
            ::waitpid(pid, nullptr, 0); // it exits by itself: reaped before the attribution
            client_ = -1;
            client_control_.reset();
        }
        if (opened != count) {
            return failure("client " + std::to_string(pid) + " opened " + std::to_string(opened) +
                               " of " + std::to_string(count) + " flows",
                           EIO);
        }
        return Reply{.error = 0, .pid = pid, .ports = 0};
    }

    void stop_client() {
        if (client_ > 0) {
            client_control_.reset();
            ::kill(client_, SIGKILL);
            ::waitpid(client_, nullptr, 0);
            client_ = -1;
        }
        client_ends_.clear();
    }

    UniqueFd command_;
    Server tcp_;
    Server udp_;
    std::vector<pid_t> background_;
    std::vector<UniqueFd> background_ends_;
    pid_t client_ = -1;
    Traffic client_traffic_ = Traffic::Tcp;
    UniqueFd client_control_;
    std::vector<UniqueFd> client_ends_;
};

// argv: <binary> --spawner <benchmark PID> <cgroup>; the command socket is fd 3.
int run_spawner(std::span<char*> arguments) {
    UniqueFd command(kChannelFd);
    const auto parent = arguments.size() == 4 ? parse_int(arguments[2]) : std::nullopt;
    if (!parent || ::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != *parent) {
        fmt::print(stderr, "pw_attribution_bench: --spawner is internal to the benchmark\n");
        return kExitUsage;
    }
    for (const int signal_number : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) {
        std::signal(signal_number, SIG_IGN); // the benchmark decides when everything stops
    }
    auto greet = [&](Reply reply, std::span<const std::uint16_t> ports) {
        reply.pid = ::getpid();
        reply.ports = static_cast<std::uint32_t>(ports.size());
        write_exact(command.get(), bytes(reply));
        write_exact(command.get(), std::as_bytes(ports));
    };
    const auto own = namespace_inode("/proc/self/ns/net");
    const auto init = namespace_inode("/proc/1/ns/net");
    if (!own || (init && *own == *init)) {
        greet(failure("not in a private network namespace", EPERM), {});
        return 1;
    }
    if (!write_pid(fs::path(arguments[3]) / "cgroup.procs", ::getpid())) {
        greet(failure(std::string("join cgroup ") + arguments[3], errno), {});
        return 1;
    }
    auto tcp = open_server(SOCK_STREAM);
    auto udp = open_server(SOCK_DGRAM);
    if (!tcp || !udp) {
        greet(failure("open the servers on 127.0.0.1", errno), {});
        return 1;
    }
    const std::array<std::uint16_t, 2> ports{tcp->port, udp->port};
    greet(Reply{}, ports);
    SpawnerProcess(std::move(command), std::move(*tcp), std::move(*udp)).run();
}

// ===== The benchmark's side =====

// The spawner, seen from the benchmark. Destroying it closes the command socket; the spawner
// then kills and reaps its children and exits, and is reaped here with anything orphaned (the
// benchmark is a child subreaper).
class Spawner {
public:
    struct Flows {
        pid_t pid = -1;
        std::vector<std::uint16_t> ports;
    };

    Spawner(pid_t pid, UniqueFd command) : pid_(pid), command_(std::move(command)) {}
    Spawner(const Spawner&) = delete;
    Spawner& operator=(const Spawner&) = delete;
    Spawner(Spawner&&) = delete;
    Spawner& operator=(Spawner&&) = delete;
    ~Spawner() {
        command_.reset();
        const auto deadline = SteadyTime::now() + std::chrono::seconds(30);
        while (::waitpid(pid_, nullptr, WNOHANG) == 0) {
            if (SteadyTime::now() > deadline) {
                ::kill(pid_, SIGKILL); // its children die with it (PR_SET_PDEATHSIG)
                ::waitpid(pid_, nullptr, 0);
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        reap_orphans();
    }

    // Starts this binary as the spawner, in `cgroup`.
    static std::unique_ptr<Spawner> start(const fs::path& cgroup) {
        std::error_code error;
        const fs::path self = fs::read_symlink("/proc/self/exe", error);
        if (error) {
            fail_with("read /proc/self/exe: " + error.message());
        }
        std::vector<std::string> argv_text{self.string(), std::string(kSpawnerFlag),
                                           std::to_string(::getpid()), cgroup.string()};
        std::vector<char*> argv;
        argv.reserve(argv_text.size() + 1);
        for (std::string& argument : argv_text) {
            argv.push_back(argument.data());
        }
        argv.push_back(nullptr);
        auto channel = make_channel();
        if (!channel) {
            fail_with("socketpair: " + errno_text(errno));
        }
        const pid_t pid = ::fork();
        if (pid == 0) {
            if (keep_only_channel(channel->child.get())) {
                ::execv(argv[0], argv.data());
            }
            ::_exit(127);
        }
        if (pid < 0) {
            fail_with("fork: " + errno_text(errno));
        }
        auto spawner = std::make_unique<Spawner>(pid, std::move(channel->parent));
        std::vector<std::uint16_t> ports;
        spawner->receive(ports, "start the spawner");
        if (ports.size() != 2) {
            fail_with("the spawner did not report its servers");
        }
        spawner->tcp_port_ = ports[0];
        spawner->udp_port_ = ports[1];
        return spawner;
    }

    [[nodiscard]] std::uint16_t server_port(Traffic traffic) const {
        return traffic == Traffic::Tcp ? tcp_port_ : udp_port_;
    }

    void start_background(int count) {
        call({.op = Op::StartBackground,
              .traffic = Traffic::Tcp,
              .count = static_cast<std::uint32_t>(count)},
             "start the background processes");
    }
    void stop_background() {
        call({.op = Op::StopBackground, .traffic = Traffic::Tcp, .count = 0},
             "stop the background processes");
    }
    void start_client(Traffic traffic) {
        call({.op = Op::StartClient, .traffic = traffic, .count = 0}, "start a client");
    }
    Flows open_flows(std::uint32_t count) {
        Flows flows;
        flows.pid = call({.op = Op::OpenFlows, .traffic = Traffic::Tcp, .count = count},
                         "open flows", &flows.ports)
                        .pid;
        return flows;
    }
    void stop_client() {
        call({.op = Op::StopClient, .traffic = Traffic::Tcp, .count = 0}, "stop a client");
    }

private:
    Reply call(const Command& command, std::string_view what,
               std::vector<std::uint16_t>* ports = nullptr) {
        check_stop();
        if (!write_exact(command_.get(), bytes(command))) {
            check_stop();
            fail_with(std::string(what) + ": the spawner is gone: " + errno_text(errno));
        }
        std::vector<std::uint16_t> ignored;
        return receive(ports != nullptr ? *ports : ignored, what);
    }

    Reply receive(std::vector<std::uint16_t>& ports, std::string_view what) {
        Reply reply;
        Io io = read_exact(command_.get(), writable_bytes(reply), kReplyTimeoutMs);
        if (io == Io::Done) {
            ports.resize(reply.ports);
            io = read_exact(command_.get(), std::as_writable_bytes(std::span(ports)),
                            kReplyTimeoutMs);
        }
        switch (io) {
            case Io::Done:
                break;
            case Io::Interrupted:
                throw Interrupted();
            case Io::TimedOut:
                fail_with(std::string(what) + ": the spawner did not answer in time");
            case Io::Closed:
            case Io::Failed:
                fail_with(std::string(what) + ": the spawner is gone (see above)");
        }
        if (reply.error != 0) {
            fail_with(std::string(what) + ": " + errno_text(reply.error) + " (see above)");
        }
        return reply;
    }

    // Reaps every remaining child: processes orphaned by a spawner that died are ours now.
    static void reap_orphans() {
        const auto deadline = SteadyTime::now() + std::chrono::seconds(10);
        for (;;) {
            const pid_t pid = ::waitpid(-1, nullptr, WNOHANG);
            if (pid < 0 || SteadyTime::now() > deadline) {
                return; // ECHILD: none left
            }
            if (pid == 0) {
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
        }
    }

    pid_t pid_;
    UniqueFd command_;
    std::uint16_t tcp_port_ = 0;
    std::uint16_t udp_port_ = 0;
};

// This process's cgroup v2 directory, from the "0::/path" line of /proc/self/cgroup.
fs::path own_cgroup(const fs::path& root) {
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("0::")) {
            return root / fs::path(line.substr(3)).relative_path();
        }
    }
    return root;
}

// The cgroup the eBPF programs are attached to: a child of the cgroup v2 root, never the root.
// Removed at the end, with any process still in it moved back to the benchmark's own cgroup.
class BenchCgroup {
public:
    BenchCgroup(fs::path path, fs::path home) : path_(std::move(path)), home_(std::move(home)) {}
    BenchCgroup(const BenchCgroup&) = delete;
    BenchCgroup& operator=(const BenchCgroup&) = delete;
    BenchCgroup(BenchCgroup&&) = delete;
    BenchCgroup& operator=(BenchCgroup&&) = delete;
    ~BenchCgroup() {
        // Dead processes can keep a cgroup busy for a moment after they were reaped.
        for (int attempt = 0; attempt < 100; ++attempt) {
            std::ifstream procs(path_ / "cgroup.procs");
            pid_t pid = 0;
            while (procs >> pid) {
                write_pid(home_ / "cgroup.procs", pid);
            }
            if (::rmdir(path_.c_str()) == 0 || errno != EBUSY) {
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        fmt::print(stderr, "warning: could not remove the benchmark cgroup {}: {}\n",
                   path_.string(), errno_text(errno));
    }

    static std::unique_ptr<BenchCgroup> create() {
        const auto root = pw::state::bpf::find_cgroup2_root();
        if (!root) {
            fail_with(root.error().message());
        }
        remove_stale(*root);
        const fs::path path = *root / (std::string(kCgroupPrefix) + std::to_string(::getpid()));
        if (::mkdir(path.c_str(), 0755) != 0) {
            fail_with("create cgroup " + path.string() + ": " + errno_text(errno));
        }
        return std::make_unique<BenchCgroup>(path, own_cgroup(*root));
    }

    [[nodiscard]] const fs::path& path() const { return path_; }

private:
    // An earlier run that was killed (SIGKILL) left its cgroup; removed if empty and its
    // benchmark process is gone.
    static void remove_stale(const fs::path& root) {
        std::error_code error;
        for (const auto& entry : fs::directory_iterator(root, error)) {
            const std::string name = entry.path().filename().string();
            if (!name.starts_with(kCgroupPrefix)) {
                continue;
            }
            const auto pid = parse_int(std::string_view(name).substr(kCgroupPrefix.size()));
            if (pid && !fs::exists("/proc/" + std::to_string(*pid)) &&
                ::rmdir(entry.path().c_str()) == 0) {
                fmt::print("removed {}, left by an interrupted run\n", entry.path().string());
            }
        }
    }

    fs::path path_;
    fs::path home_;
};

// Moves this process into a new network namespace and brings its loopback interface up. Aborts
// when the move cannot be proven: the host's network must never be touched.
void enter_private_network_namespace() {
    const auto original = namespace_inode("/proc/self/ns/net");
    if (!original) {
        fail_with("cannot read /proc/self/ns/net");
    }
    if (::unshare(CLONE_NEWNET) != 0) {
        fail_with("unshare(CLONE_NEWNET): " + errno_text(errno));
    }
    const auto current = namespace_inode("/proc/self/ns/net");
    const auto init = namespace_inode("/proc/1/ns/net"); // unreadable in some sandboxes
    if (!current || *current == *original || (init && *current == *init)) {
        fmt::print(stderr, "FATAL: still in the original network namespace, aborting\n");
        std::abort();
    }
    const UniqueFd control(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq request{};
    std::ranges::copy(std::string_view("lo"), std::begin(request.ifr_name));
    if (!control.valid() || ::ioctl(control.get(), SIOCGIFFLAGS, &request) != 0) {
        fail_with("read the flags of lo: " + errno_text(errno));
    }
    request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
    if (::ioctl(control.get(), SIOCSIFFLAGS, &request) != 0) {
        fail_with("bring lo up: " + errno_text(errno));
    }
}

// 1,000 background processes hold 5,000 server ends in the spawner.
rlim_t raise_open_files_limit() {
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    return limit.rlim_cur;
}

std::size_t count_processes() {
    std::size_t count = 0;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator("/proc", error)) {
        count += parse_int(entry.path().filename().string()) ? 1 : 0;
    }
    return count;
}

// --- The seed's attribution, for comparison. ---

struct DirectoryCloser {
    void operator()(DIR* directory) const noexcept { ::closedir(directory); }
};
using DirectoryStream = std::unique_ptr<DIR, DirectoryCloser>;

// True when one of the fd links in `fd_directory` is `wanted` ("socket:[inode]").
bool holds_link(const std::string& fd_directory, std::string_view wanted) {
    const DirectoryStream fds(::opendir(fd_directory.c_str()));
    if (!fds) {
        return false;
    }
    const int directory_fd = ::dirfd(fds.get());
    std::array<char, 64> target{};
    // NOLINTNEXTLINE(concurrency-mt-unsafe): readdir is safe on a stream no other thread uses
    while (const dirent* entry = ::readdir(fds.get())) {
        if (entry->d_name[0] == '.') {
            continue;
        }
        const ssize_t length =
            ::readlinkat(directory_fd, entry->d_name, target.data(), target.size());
        if (length > 0 &&
            std::string_view(target.data(), static_cast<std::size_t>(length)) == wanted) {
            return true;
        }
    }
    return false;
}

// The seed's search: every /proc/<pid>/fd in directory order (ascending PIDs) until one links
// to the socket. Plain readdir/readlinkat, no caching: the method, not std::filesystem's cost.
std::optional<int> find_socket_holder(std::uint64_t inode) {
    const std::string wanted = "socket:[" + std::to_string(inode) + "]";
    const DirectoryStream proc(::opendir("/proc"));
    if (!proc) {
        return std::nullopt;
    }
    // NOLINTNEXTLINE(concurrency-mt-unsafe): readdir is safe on a stream no other thread uses
    while (const dirent* entry = ::readdir(proc.get())) {
        const auto pid = parse_int(entry->d_name);
        if (pid && holds_link("/proc/" + std::string(entry->d_name) + "/fd", wanted)) {
            return pid;
        }
    }
    return std::nullopt;
}

// The seed's way (DESIGN.md, the seed's "proc/net"): parse /proc/net/{tcp,udp}{,6} for the
// socket's inode, then search /proc/*/fd for it, on every lookup. The process is described by
// a ProcessRegistry like in the other configurations, so that the difference is the search.
class SeedAttributor final : public pw::network::Attributor {
public:
    explicit SeedAttributor(pw::process::ProcessRegistry& processes)
        : sockets_("/proc"), processes_(processes) {}

    // network::Attributor
    [[nodiscard]] pw::network::Attribution attribute(
        const pw::firewall::ConnectionFacts& connection) override {
        const pw::state::SocketQuery query{.protocol = connection.protocol,
                                           .local_address = connection.local_address,
                                           .local_port = connection.local_port,
                                           .remote_address = connection.remote_address,
                                           .remote_port = connection.remote_port,
                                           .direction = connection.direction};
        const auto looked_up = sockets_.find(query);
        if (!looked_up) {
            return nobody();
        }
        const std::optional<pw::state::SocketRecord>& record = *looked_up;
        if (!record || record->inode == 0) {
            return nobody();
        }
        const auto pid = find_socket_holder(record->inode);
        if (!pid) {
            return nobody();
        }
        const auto info = processes_.lookup(*pid);
        if (!info) {
            return nobody();
        }
        pw::firewall::ProcessFacts facts;
        facts.pid = (*info)->pid;
        facts.parent_pid = (*info)->parent_pid;
        facts.executable = (*info)->executable;
        facts.identity = (*info)->identity_path;
        facts.uid = (*info)->uid;
        facts.source = "seed";
        return {.process = std::move(facts), .worth_retrying = false};
    }

private:
    static pw::network::Attribution nobody() {
        pw::firewall::ProcessFacts facts;
        facts.kind = pw::firewall::ProcessKind::Unidentified;
        return {.process = std::move(facts), .worth_retrying = true};
    }

    pw::state::ProcNetSocketTable sockets_;
    pw::process::ProcessRegistry& processes_;
};

// --- Configurations, measurements and results. ---

enum class Configuration : std::uint8_t { Ebpf, Tables, Seed };
constexpr std::array kConfigurations{Configuration::Ebpf, Configuration::Tables,
                                     Configuration::Seed};

std::string_view name_of(Configuration configuration) {
    switch (configuration) {
        case Configuration::Ebpf:
            return "ebpf";
        case Configuration::Tables:
            return "tables";
        case Configuration::Seed:
            return "seed";
    }
    return "?";
}

enum class Workload : std::uint8_t {
    Warm,       // one client opens every flow: its process is cached after the first
    NewProcess, // each flow from a freshly forked client: the cost of a first connection
};
constexpr std::array kWorkloads{Workload::Warm, Workload::NewProcess};

std::string_view name_of(Workload workload) {
    return workload == Workload::Warm ? "warm" : "new-process";
}

// One configuration's attributor and everything it borrows, built fresh for each row group.
struct Stack {
    std::unique_ptr<pw::state::SocketTable> sockets;
    std::unique_ptr<pw::process::InodePidIndex> index;
    std::unique_ptr<pw::process::ProcessRegistry> registry;
    std::unique_ptr<pw::network::Attributor> attributor;
    double prescan_ms = 0;
    std::size_t prescanned_pids = 0;
};

Stack build_stack(Configuration configuration, const pw::state::bpf::OwnerRecords* records,
                  const pw::Clock& clock) {
    Stack stack;
    stack.registry = std::make_unique<pw::process::ProcessRegistry>("/proc", clock);
    if (configuration == Configuration::Seed) {
        stack.attributor = std::make_unique<SeedAttributor>(*stack.registry);
        return stack;
    }
    auto sock_diag = pw::state::SockDiagSocketTable::open();
    if (!sock_diag) {
        fail_with("sock_diag: " + sock_diag.error().message());
    }
    stack.sockets = std::move(*sock_diag);
    stack.index = std::make_unique<pw::process::InodePidIndex>("/proc", clock);
    // As the daemon does at start-up, so that known processes' sockets are cached.
    const auto start = SteadyTime::now();
    stack.prescanned_pids = stack.index->scan_new_processes();
    stack.prescan_ms = std::chrono::duration<double, std::milli>(SteadyTime::now() - start).count();
    stack.attributor =
        std::make_unique<pw::network::ProcessAttributor>(pw::network::AttributionSources{
            .kernel_records = configuration == Configuration::Ebpf ? records : nullptr,
            .sockets = stack.sockets.get(),
            .inode_owners = stack.index.get(),
            .processes = stack.registry.get()});
    return stack;
}

struct Row {
    Configuration configuration = Configuration::Ebpf;
    int background = 0;
    Workload workload = Workload::Warm;
    Traffic traffic = Traffic::Tcp;
    std::vector<double> latencies_us;
    int correct = 0;                         // the client's PID
    int wrong = 0;                           // another process
    int unattributed = 0;                    // no process
    std::map<std::string, int> answers;      // how they were found: ProcessFacts::source, or kind
    std::vector<std::string> wrong_examples; // the first few wrong answers, for the report
    std::string skipped;                     // why the row was not measured
};

constexpr std::size_t kWrongExamples = 3;

struct Stats {
    double p50_us = 0;
    double p99_us = 0;
    double max_us = 0;
    double per_second = 0; // 1 / mean latency: back-to-back lookups on one thread
};

Stats stats_of(std::vector<double> latencies) {
    if (latencies.empty()) {
        return {};
    }
    std::ranges::sort(latencies);
    const auto rank = [&](double fraction) {
        const auto index = static_cast<std::size_t>(
            std::max(0.0, std::ceil(fraction * static_cast<double>(latencies.size())) - 1));
        return latencies[std::min(index, latencies.size() - 1)];
    };
    const double total = std::accumulate(latencies.begin(), latencies.end(), 0.0);
    return {.p50_us = rank(0.50),
            .p99_us = rank(0.99),
            .max_us = latencies.back(),
            .per_second = total > 0 ? 1e6 * static_cast<double>(latencies.size()) / total : 0};
}

void score(const pw::network::Attribution& answer, pid_t client, std::uint16_t port, Row& row) {
    if (!answer.process || answer.process->pid <= 0) {
        ++row.unattributed;
        ++row.answers[answer.process
                          ? std::string(pw::firewall::process_kind_name(answer.process->kind))
                          : std::string("no-answer")];
        return;
    }
    const pw::firewall::ProcessFacts& facts = *answer.process;
    ++row.answers[facts.executable.empty() ? facts.source + "(pid-only)" : facts.source];
    if (facts.pid == client) {
        ++row.correct;
        return;
    }
    ++row.wrong;
    if (row.wrong_examples.size() < kWrongExamples) {
        row.wrong_examples.push_back(
            fmt::format("local port {}: client pid {}, answer pid {} (source {}, executable '{}')",
                        port, client, facts.pid, facts.source, facts.executable));
    }
}

pw::firewall::ConnectionFacts connection_facts(Traffic traffic, std::uint16_t local_port,
                                               std::uint16_t remote_port) {
    const auto loopback = pw::IpAddress::parse("127.0.0.1").value_or(pw::IpAddress{});
    pw::firewall::ConnectionFacts facts;
    facts.direction = pw::packet::Direction::Outbound;
    facts.ip_family = pw::IpFamily::V4;
    facts.protocol =
        traffic == Traffic::Tcp ? pw::packet::protocol::kTcp : pw::packet::protocol::kUdp;
    facts.local_address = loopback;
    facts.local_port = local_port;
    facts.remote_address = loopback;
    facts.remote_port = remote_port;
    return facts;
}

// Attributes every flow of `flows` once, timing each attribute() call alone.
void attribute_flows(pw::network::Attributor& attributor, Traffic traffic,
                     std::uint16_t server_port, const Spawner::Flows& flows, Row* row) {
    for (const std::uint16_t port : flows.ports) {
        check_stop();
        const auto facts = connection_facts(traffic, port, server_port);
        const auto start = SteadyTime::now();
        const pw::network::Attribution answer = attributor.attribute(facts);
        const auto elapsed = SteadyTime::now() - start;
        if (row != nullptr) {
            row->latencies_us.push_back(std::chrono::duration<double, std::micro>(elapsed).count());
            score(answer, flows.pid, port, *row);
        }
    }
}

void measure_warm(pw::network::Attributor& attributor, Spawner& spawner, Traffic traffic,
                  std::uint32_t lookups, Row* row) {
    const std::uint16_t server_port = spawner.server_port(traffic);
    spawner.start_client(traffic);
    if (traffic == Traffic::FireAndForgetUdp) {
        // All datagrams from one process, which is gone (and reaped) before the first lookup.
        attribute_flows(attributor, traffic, server_port, spawner.open_flows(lookups), row);
    } else {
        for (std::uint32_t done = 0; done < lookups; done += kWarmBatch) {
            const Spawner::Flows flows = spawner.open_flows(std::min(kWarmBatch, lookups - done));
            attribute_flows(attributor, traffic, server_port, flows, row);
        }
    }
    spawner.stop_client();
}

void measure_new_processes(pw::network::Attributor& attributor, Spawner& spawner, Traffic traffic,
                           std::uint32_t lookups, Row& row) {
    const std::uint16_t server_port = spawner.server_port(traffic);
    for (std::uint32_t index = 0; index < lookups; ++index) {
        spawner.start_client(traffic);
        attribute_flows(attributor, traffic, server_port, spawner.open_flows(1), &row);
        spawner.stop_client(); // before the next one: the process count stays constant
    }
}

struct Options {
    std::vector<int> processes{200, 1000};
    std::uint32_t lookups = 2000;
    std::string json_path;
    bool quick = false;
    bool help = false;

    [[nodiscard]] std::uint32_t lookups_for(Configuration configuration, Workload workload) const {
        if (configuration == Configuration::Seed) {
            return std::max<std::uint32_t>(1, lookups / 20);
        }
        return workload == Workload::Warm ? lookups : std::max<std::uint32_t>(1, lookups / 5);
    }
};

// What the run found out about its surroundings, for the report.
struct Environment {
    std::string kernel;
    unsigned cpus = 0;
    std::string ebpf = "loaded"; // or why not
    bool exec_records = false;
    rlim_t open_files = 0;
    struct Background {
        int processes = 0;
        std::size_t pids_in_proc = 0;
        double prescan_ms = 0; // InodePidIndex::scan_new_processes() of the tables stack
        std::size_t prescanned_pids = 0;
    };
    std::vector<Background> background;
};

// Everything the configurations of one run share.
struct Bench {
    const Options& options;
    Spawner& spawner;
    const pw::state::bpf::OwnerRecords* records; // null when eBPF could not be loaded
    const pw::Clock& clock;
    Environment& environment;
    std::vector<Row>& rows;
};

void measure_configuration(Bench& bench, Configuration configuration, int background) {
    const bool unavailable = configuration == Configuration::Ebpf && bench.records == nullptr;
    Stack stack;
    if (!unavailable) {
        stack = build_stack(configuration, bench.records, bench.clock);
        if (configuration == Configuration::Tables) {
            bench.environment.background.back().prescan_ms = stack.prescan_ms;
            bench.environment.background.back().prescanned_pids = stack.prescanned_pids;
        }
    }
    for (const Workload workload : kWorkloads) {
        for (const Traffic traffic : kTraffic) {
            Row row{.configuration = configuration,
                    .background = background,
                    .workload = workload,
                    .traffic = traffic,
                    .latencies_us = {},
                    .correct = 0,
                    .wrong = 0,
                    .unattributed = 0,
                    .answers = {},
                    .wrong_examples = {},
                    .skipped = unavailable ? bench.environment.ebpf : std::string()};
            if (!unavailable) {
                const std::uint32_t lookups = bench.options.lookups_for(configuration, workload);
                if (workload == Workload::Warm) {
                    measure_warm(*stack.attributor, bench.spawner, traffic, lookups, &row);
                } else {
                    measure_new_processes(*stack.attributor, bench.spawner, traffic, lookups, row);
                }
            }
            bench.rows.push_back(std::move(row));
        }
    }
}

void measure_background(Bench& bench, int background) {
    const auto start = SteadyTime::now();
    bench.spawner.start_background(background);
    bench.environment.background.push_back({.processes = background,
                                            .pids_in_proc = count_processes(),
                                            .prescan_ms = 0,
                                            .prescanned_pids = 0});
    fmt::print("{} background processes ({} processes in /proc) started in {:.1f} s\n", background,
               bench.environment.background.back().pids_in_proc,
               std::chrono::duration<double>(SteadyTime::now() - start).count());
    std::fflush(stdout); // progress, also when stdout is a file
    for (const Configuration configuration : kConfigurations) {
        const auto configuration_start = SteadyTime::now();
        measure_configuration(bench, configuration, background);
        fmt::print("  {:<7} measured in {:.1f} s\n", name_of(configuration),
                   std::chrono::duration<double>(SteadyTime::now() - configuration_start).count());
        std::fflush(stdout);
    }
    const Environment::Background& measured = bench.environment.background.back();
    fmt::print("  inode index pre-scan (scan_new_processes): {:.1f} ms for {} PIDs\n",
               measured.prescan_ms, measured.prescanned_pids);
    bench.spawner.stop_background();
}

std::string json_string(std::string_view text) {
    std::string out = "\"";
    for (const char character : text) {
        if (character == '"' || character == '\\') {
            out += '\\';
            out += character;
        } else if (static_cast<unsigned char>(character) < 0x20) {
            out += fmt::format("\\u{:04x}", static_cast<int>(character));
        } else {
            out += character;
        }
    }
    return out + '"';
}

std::string answers_text(const std::map<std::string, int>& answers) {
    std::string text;
    for (const auto& [how, count] : answers) {
        text += fmt::format("{}{} {}", text.empty() ? "" : ", ", how, count);
    }
    return text;
}

void print_table(const std::vector<Row>& rows) {
    fmt::print("\n{:<7} {:>9} {:<11} {:<15} {:>6} {:>9} {:>9} {:>10} {:>11} {:>5} {:>5}  {}\n",
               "config", "processes", "case", "traffic", "n", "p50 us", "p99 us", "lookups/s",
               "correct", "wrong", "none", "answered by");
    for (const Row& row : rows) {
        if (!row.skipped.empty()) {
            fmt::print("{:<7} {:>9} {:<11} {:<15} skipped: {}\n", name_of(row.configuration),
                       row.background, name_of(row.workload), name_of(row.traffic), row.skipped);
            continue;
        }
        const Stats stats = stats_of(row.latencies_us);
        fmt::print(
            "{:<7} {:>9} {:<11} {:<15} {:>6} {:>9.1f} {:>9.1f} {:>10.0f} {:>11} {:>5} {:>5}  "
            "{}\n",
            name_of(row.configuration), row.background, name_of(row.workload), name_of(row.traffic),
            row.latencies_us.size(), stats.p50_us, stats.p99_us, stats.per_second,
            fmt::format("{}/{}", row.correct, row.latencies_us.size()), row.wrong, row.unattributed,
            answers_text(row.answers));
    }
}

void print_wrong_examples(const std::vector<Row>& rows) {
    for (const Row& row : rows) {
        if (row.wrong_examples.empty()) {
            continue;
        }
        fmt::print("\nwrong answers, {} {} {} {} (first {} of {}):\n", name_of(row.configuration),
                   row.background, name_of(row.workload), name_of(row.traffic),
                   row.wrong_examples.size(), row.wrong);
        for (const std::string& example : row.wrong_examples) {
            fmt::print("  {}\n", example);
        }
    }
}

// The fraction attributed correctly per configuration and traffic kind, over every case.
void print_correctness(const std::vector<Row>& rows) {
    fmt::print("\ncorrectly attributed (all cases and background sizes):\n");
    for (const Configuration configuration : kConfigurations) {
        std::string line = fmt::format("  {:<7}", name_of(configuration));
        for (const Traffic traffic : kTraffic) {
            std::size_t correct = 0;
            std::size_t total = 0;
            for (const Row& row : rows) {
                if (row.configuration == configuration && row.traffic == traffic) {
                    correct += static_cast<std::size_t>(row.correct);
                    total += row.latencies_us.size();
                }
            }
            line +=
                total == 0
                    ? fmt::format("  {} -", name_of(traffic))
                    : fmt::format("  {} {:.1f}% ({}/{})", name_of(traffic),
                                  100.0 * static_cast<double>(correct) / static_cast<double>(total),
                                  correct, total);
        }
        fmt::print("{}\n", line);
    }
}

std::string row_json(const Row& row) {
    const Stats stats = stats_of(row.latencies_us);
    std::string answers;
    for (const auto& [how, count] : row.answers) {
        answers += fmt::format("{}{}: {}", answers.empty() ? "" : ", ", json_string(how), count);
    }
    std::string examples;
    for (const std::string& example : row.wrong_examples) {
        examples += fmt::format("{}{}", examples.empty() ? "" : ", ", json_string(example));
    }
    return fmt::format(
        "{{\"configuration\": {}, \"background_processes\": {}, \"case\": {}, \"traffic\": {}, "
        "\"lookups\": {}, \"p50_us\": {:.2f}, \"p99_us\": {:.2f}, \"max_us\": {:.2f}, "
        "\"lookups_per_second\": {:.0f}, \"correct\": {}, \"wrong\": {}, \"unattributed\": {}, "
        "\"answered_by\": {{{}}}, \"wrong_examples\": [{}], \"skipped\": {}}}",
        json_string(name_of(row.configuration)), row.background, json_string(name_of(row.workload)),
        json_string(name_of(row.traffic)), row.latencies_us.size(), stats.p50_us, stats.p99_us,
        stats.max_us, stats.per_second, row.correct, row.wrong, row.unattributed, answers, examples,
        row.skipped.empty() ? "null" : json_string(row.skipped));
}

void write_json(const std::string& path, const Environment& environment,
                const std::vector<Row>& rows, const Options& options) {
    std::string backgrounds;
    for (const auto& background : environment.background) {
        backgrounds += fmt::format(
            "{}{{\"processes\": {}, \"pids_in_proc\": {}, \"index_prescan_ms\": {:.2f}, "
            "\"index_prescanned_pids\": {}}}",
            backgrounds.empty() ? "" : ", ", background.processes, background.pids_in_proc,
            background.prescan_ms, background.prescanned_pids);
    }
    std::string row_list;
    for (const Row& row : rows) {
        row_list += fmt::format("{}\n    {}", row_list.empty() ? "" : ",", row_json(row));
    }
    std::ofstream out(path);
    out << fmt::format(
        "{{\n  \"benchmark\": \"attribution\",\n  \"kernel\": {},\n  \"cpus\": {},\n"
        "  \"ebpf\": {},\n  \"exec_records\": {},\n  \"open_files_limit\": {},\n"
        "  \"lookups\": {{\"warm\": {}, \"new_process\": {}, \"seed\": {}}},\n"
        "  \"warm_batch\": {},\n  \"sockets_per_background_process\": {},\n"
        "  \"background\": [{}],\n  \"rows\": [{}\n  ]\n}}\n",
        json_string(environment.kernel), environment.cpus, json_string(environment.ebpf),
        environment.exec_records, environment.open_files,
        options.lookups_for(Configuration::Tables, Workload::Warm),
        options.lookups_for(Configuration::Tables, Workload::NewProcess),
        options.lookups_for(Configuration::Seed, Workload::Warm), kWarmBatch,
        kSocketsPerBackgroundProcess, backgrounds, row_list);
    if (!out.flush()) {
        fail_with("write " + path);
    }
    fmt::print("\nwrote {}\n", path);
}

constexpr std::string_view kUsage =
    "usage: pw_attribution_bench [--processes 200,1000] [--lookups N] [--quick] [--json FILE]\n"
    "  --processes A,B  background processes (5 TCP sockets each) to measure with\n"
    "                   (default 200,1000)\n"
    "  --lookups N      lookups per row in the warm case (default 2000); the new-process case\n"
    "                   makes N/5, the seed configuration N/20 in both cases\n"
    "  --quick          smoke test: --processes 200 --lookups 200\n"
    "  --json FILE      also write the results to FILE as JSON\n"
    "Needs root: it unshares a network namespace, loads eBPF programs on a cgroup of its own\n"
    "and reads every /proc/<pid>/fd. Exits 77 without root.\n";

pw::Result<std::vector<int>> parse_process_counts(std::string_view text) {
    std::vector<int> counts;
    while (!text.empty()) {
        const std::size_t comma = text.find(',');
        const auto count = parse_int(text.substr(0, comma));
        if (!count || *count < 0 || *count > 10'000) {
            return pw::fail("--processes takes counts from 0 to 10000, separated by commas");
        }
        counts.push_back(*count);
        text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    }
    if (counts.empty()) {
        return pw::fail("--processes needs at least one count");
    }
    return counts;
}

pw::Result<Options> parse_options(std::span<char*> arguments) {
    Options options;
    bool processes_given = false;
    bool lookups_given = false;
    for (std::size_t index = 1; index < arguments.size(); ++index) {
        const std::string_view argument = arguments[index];
        const bool has_value = index + 1 < arguments.size();
        if (argument == "--help" || argument == "-h") {
            options.help = true;
        } else if (argument == "--quick") {
            options.quick = true;
        } else if (argument == "--processes" && has_value) {
            auto counts = parse_process_counts(arguments[++index]);
            if (!counts) {
                return std::unexpected(counts.error());
            }
            options.processes = std::move(*counts);
            processes_given = true;
        } else if (argument == "--lookups" && has_value) {
            const auto lookups = parse_int(arguments[++index]);
            if (!lookups || *lookups < 20 || *lookups > 1'000'000) {
                return pw::fail("--lookups takes a number from 20 to 1000000");
            }
            options.lookups = static_cast<std::uint32_t>(*lookups);
            lookups_given = true;
        } else if (argument == "--json" && has_value) {
            options.json_path = arguments[++index];
        } else {
            return pw::fail("unknown option or missing value: " + std::string(argument));
        }
    }
    if (options.quick && !processes_given) {
        options.processes = {200};
    }
    if (options.quick && !lookups_given) {
        options.lookups = 200;
    }
    return options;
}

void install_stop_handlers() {
    struct sigaction action{};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0; // no SA_RESTART: a blocking wait ends, and the stop flag is seen
    for (const int signal_number : {SIGINT, SIGTERM, SIGHUP}) {
        ::sigaction(signal_number, &action, nullptr);
    }
    std::signal(SIGPIPE, SIG_IGN);
}

Environment describe_environment(rlim_t open_files) {
    Environment environment;
    utsname name{};
    if (::uname(&name) == 0) {
        environment.kernel = name.release;
    }
    environment.cpus = std::thread::hardware_concurrency();
    environment.open_files = open_files;
    return environment;
}

// Untimed: touches the benchmark's pages after the spawner's fork, and warms the caches.
void warm_up(Spawner& spawner, const pw::Clock& clock) {
    Stack stack = build_stack(Configuration::Tables, nullptr, clock);
    measure_warm(*stack.attributor, spawner, Traffic::Tcp, 2 * kWarmBatch, nullptr);
}

int run(const Options& options) {
    // Children orphaned by a spawner that died are reparented here and reaped at the end.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    const rlim_t open_files = raise_open_files_limit();
    const auto most = static_cast<rlim_t>(std::ranges::max(options.processes));
    if (open_files < most * kSocketsPerBackgroundProcess + kWarmBatch + 64) {
        fail_with(fmt::format("the open files limit is {}, too low for {} background processes",
                              open_files, most));
    }
    Environment environment = describe_environment(open_files);
    enter_private_network_namespace();
    const auto cgroup = BenchCgroup::create();
    fmt::print("private network namespace; eBPF cgroup {}\n", cgroup->path().string());

    std::unique_ptr<pw::state::bpf::SocketOwnerRecords> records;
    if (auto loaded = pw::state::bpf::SocketOwnerRecords::load(cgroup->path())) {
        records = std::move(*loaded);
        environment.exec_records = records->has_exec_records();
    } else {
        environment.ebpf = "eBPF not available: " + loaded.error().message();
        fmt::print("{}; the ebpf configuration is skipped\n", environment.ebpf);
    }
    if (records && !environment.exec_records) {
        fmt::print("note: no exec records (the exec tracepoints did not load)\n");
    }

    const pw::SteadyClock clock;
    const auto spawner = Spawner::start(cgroup->path());
    warm_up(*spawner, clock);
    std::vector<Row> rows;
    Bench bench{.options = options,
                .spawner = *spawner,
                .records = records.get(),
                .clock = clock,
                .environment = environment,
                .rows = rows};
    for (const int background : options.processes) {
        measure_background(bench, background);
    }
    print_table(rows);
    print_wrong_examples(rows);
    print_correctness(rows);
    if (!options.json_path.empty()) {
        write_json(options.json_path, environment, rows, options);
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    const std::span<char*> arguments(argv, static_cast<std::size_t>(argc));
    if (arguments.size() >= 2 && std::string_view(arguments[1]) == kSpawnerFlag) {
        return run_spawner(arguments);
    }
    const auto options = parse_options(arguments);
    if (!options) {
        fmt::print(stderr, "pw_attribution_bench: {}\n{}", options.error().message(), kUsage);
        return kExitUsage;
    }
    if (options->help) {
        fmt::print("{}", kUsage);
        return 0;
    }
    if (::geteuid() != 0) {
        fmt::print(stderr,
                   "pw_attribution_bench: needs root (it unshares a network namespace, loads "
                   "eBPF programs on a cgroup of its own and reads every /proc/<pid>/fd); "
                   "skipped\n");
        return kExitSkipped;
    }
    install_stop_handlers();
    try {
        return run(*options);
    } catch (const Interrupted&) {
        fmt::print(stderr,
                   "pw_attribution_bench: interrupted; processes, cgroup and eBPF "
                   "programs removed\n");
        return kExitInterrupted;
    } catch (const std::exception& error) {
        fmt::print(stderr, "pw_attribution_bench: {}\n", error.what());
        return 1;
    }
}
