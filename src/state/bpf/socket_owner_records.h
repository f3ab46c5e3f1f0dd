#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/ip_address.h"
#include "common/result.h"

// libbpf's handles, used in socket_owner_records.cc only.
struct bpf_link;
struct bpf_object;
struct ring_buffer;

namespace pw::state::bpf {

// How a flow record matched a lookup. Records written before the kernel chose the local end
// (connected UDP on an unbound socket) carry no local port; the caller should treat such an
// answer as a hint and cross-check it with the socket tables.
enum class FlowMatch : std::uint8_t {
    Exact,           // protocol, local address and port, remote address and port
    AnyLocalAddress, // the socket was bound to the wildcard address: local port and remote
    RemoteOnly,      // the local end was unknown when recorded: protocol and remote only
};

// The process that created, connected or sent on a socket, as seen by the kernel in the
// context of that system call.
struct Owner {
    std::uint32_t tgid = 0; // the process id
    std::uint32_t pid = 0;  // the thread id
    std::uint32_t uid = 0;
    std::uint64_t cookie = 0;               // the socket's SO_COOKIE
    std::chrono::nanoseconds recorded_at{}; // CLOCK_BOOTTIME of the system call
    // When the process started (CLOCK_BOOTTIME, ns): with tgid, the process's identity across
    // PID reuse. /proc/<pid>/stat field 22 is the same instant in clock ticks.
    std::chrono::nanoseconds process_start{};
    FlowMatch match = FlowMatch::Exact; // Exact for find_by_cookie()
};

// The last execve() of a process, kept by the kernel side until evicted: names a process that
// exited before the firewall could read /proc.
struct ExecRecord {
    std::uint32_t tgid = 0;
    std::uint32_t parent_tgid = 0;
    std::uint32_t uid = 0;
    std::chrono::nanoseconds process_start{}; // as Owner::process_start
    std::string path;        // as passed to execve(): may be relative; the script for #! scripts
    std::string interpreter; // the #! interpreter when the kernel ran a script, else empty
    bool inherited = false;  // copied from the parent at fork (the child never called execve)
    bool path_cut = false;   // longer than the kernel side keeps
};

// One flow from this host's point of view ("local" is our end). IPv4-mapped IPv6 addresses are
// folded to IPv4 by IpAddress, as the BPF programs fold them.
struct Flow {
    std::uint8_t protocol = 6; // IANA number: 6 TCP, 17 UDP
    IpAddress local_address;
    std::uint16_t local_port = 0;
    IpAddress remote_address;
    std::uint16_t remote_port = 0;
};

// A socket sent on a UDP flow that no record named it for: the flow's first send, or a new
// socket (often of another process) reusing the flow of an earlier one. The firewall decides a
// flow again when its new sender is another process than the one it was decided for (issue 10
// item 8: conntrack would give the new sender the old one's verdict).
struct UdpSender {
    Flow flow; // the local address is unspecified when the socket was bound to the wildcard
    Owner owner;
    std::uint64_t previous_cookie = 0; // the socket the record named before; 0: none
};

struct BpfLinkDeleter {
    void operator()(bpf_link* link) const noexcept; // detaches the program
};
using BpfLink = std::unique_ptr<bpf_link, BpfLinkDeleter>;

struct BpfObjectDeleter {
    void operator()(bpf_object* object) const noexcept; // unloads programs and maps
};
using BpfObject = std::unique_ptr<bpf_object, BpfObjectDeleter>;

struct RingBufferDeleter {
    void operator()(ring_buffer* ring) const noexcept;
};
using RingBuffer = std::unique_ptr<ring_buffer, RingBufferDeleter>;

// What the kernel recorded about sockets and processes. SocketOwnerRecords in the daemon;
// tests of the attribution logic use a fake. Lookups are read-only.
class OwnerRecords {
public:
    virtual ~OwnerRecords() = default;
    // The process that created the socket with this SO_COOKIE; nullopt when no record exists
    // (created before load(), outside the cgroup, or evicted).
    [[nodiscard]] virtual std::optional<Owner> find_by_cookie(std::uint64_t cookie) const = 0;
    // The process that connected or last sent on this flow. Tries the exact flow first, then a
    // wildcard local address, then the remote end only (see FlowMatch).
    [[nodiscard]] virtual std::optional<Owner> find_by_flow(const Flow& flow) const = 0;
    // The last connect() of a UDP socket to the flow's remote end (protocol and remote only):
    // the record find_by_flow() falls back to last.
    [[nodiscard]] virtual std::optional<Owner> find_by_remote(const Flow& flow) const = 0;
    // The last exec record of process `tgid`; nullopt when there is none (the process was
    // started before the records were loaded and never forked, or the record was evicted).
    [[nodiscard]] virtual std::optional<ExecRecord> find_exec(std::uint32_t tgid) const = 0;
};

// eBPF socket-owner records (issue 3, part 2): cgroup hooks record, in kernel context, which
// process created each socket (by cookie) and which process connected or sent on each flow, so
// that even a fire-and-forget UDP sender that has already exited is attributed. Owned by the
// composition root; lookups are read-only map syscalls, safe from any thread. When load()
// fails the caller falls back to the socket tables.
class SocketOwnerRecords final : public OwnerRecords {
public:
    // Loads the programs and attaches them to `cgroup`, a cgroup v2 directory: the v2 root in
    // the daemon (every process on the host), a child cgroup in tests. The exec and fork
    // programs are raw tracepoints and see every process on the host whatever `cgroup` is;
    // they are optional (see has_exec_records()). Fails with a clear
    // message without permission, without eBPF support, on a verifier rejection or when the
    // path is not a cgroup v2 directory.
    [[nodiscard]] static Result<std::unique_ptr<SocketOwnerRecords>> load(
        const std::filesystem::path& cgroup);

    SocketOwnerRecords(const SocketOwnerRecords&) = delete;
    SocketOwnerRecords& operator=(const SocketOwnerRecords&) = delete;
    SocketOwnerRecords(SocketOwnerRecords&&) = delete;
    SocketOwnerRecords& operator=(SocketOwnerRecords&&) = delete;
    ~SocketOwnerRecords() override; // detaches every program, then unloads

    // OwnerRecords. find_exec() is always nullopt without exec records (has_exec_records()).
    [[nodiscard]] std::optional<Owner> find_by_cookie(std::uint64_t cookie) const override;
    [[nodiscard]] std::optional<Owner> find_by_flow(const Flow& flow) const override;
    [[nodiscard]] std::optional<Owner> find_by_remote(const Flow& flow) const override;
    [[nodiscard]] std::optional<ExecRecord> find_exec(std::uint32_t tgid) const override;

    // False when the kernel refused the exec/fork tracepoint programs (no BTF, say): socket
    // records still work, exited processes are then only known by PID.
    [[nodiscard]] bool has_exec_records() const { return exec_by_tgid_fd_ >= 0; }

    // New UDP senders (UdpSender), as the kernel reports them. The fd becomes readable when
    // reports wait; -1 when they are not available. Register it with the event loop and call
    // drain_udp_senders() when readable.
    [[nodiscard]] int udp_sender_fd() const;
    // Hands every waiting report to `on_sender`, oldest first; returns how many.
    using UdpSenderHandler = std::function<void(const UdpSender&)>;
    [[nodiscard]] Result<std::size_t> drain_udp_senders(const UdpSenderHandler& on_sender);
    // Reports the kernel dropped because nobody read them fast enough.
    [[nodiscard]] std::uint64_t udp_senders_lost() const;

private:
    struct MapFds {
        int owner_by_cookie = -1;
        int owner_by_flow = -1;
        int exec_by_tgid = -1; // -1 without exec records
        int udp_senders = -1;  // the ring buffer
        int udp_sender_lost = -1;
    };
    SocketOwnerRecords(BpfObject object, std::vector<BpfLink> links, MapFds maps);
    // libbpf's ring_buffer sample callback: `context` is this.
    static int on_udp_sender(void* context, void* data, std::size_t size);

    BpfObject object_;
    std::vector<BpfLink> links_;  // declared after object_: detached before it is unloaded
    int owner_by_cookie_fd_ = -1; // owned by object_
    int owner_by_flow_fd_ = -1;   // owned by object_
    int exec_by_tgid_fd_ = -1;    // owned by object_
    int udp_sender_lost_fd_ = -1; // owned by object_
    RingBuffer udp_senders_;      // null when the ring could not be set up
    // Set during drain_udp_senders(): libbpf's C callback reaches it through its context.
    const UdpSenderHandler* udp_sender_handler_ = nullptr;
};

// Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup on a unified system,
// /sys/fs/cgroup/unified on a hybrid one. An error when neither is cgroup2.
[[nodiscard]] Result<std::filesystem::path> find_cgroup2_root();

// `path` if it is a cgroup v2 directory, else an error that says what to do about it.
[[nodiscard]] Result<std::filesystem::path> resolve_cgroup2_directory(
    const std::filesystem::path& path);

// True when `path` is a directory on a cgroup2 file system.
[[nodiscard]] bool is_cgroup2_directory(const std::filesystem::path& path);

// A cgroup2 file system that we mounted on a fresh directory of our own, for as long as the
// object lives: the destructor unmounts it (lazily) and removes the directory. Attach the
// programs first: an attachment holds the cgroup itself, not the mount. Never mounts over an
// existing mount point (issue 10 item 9: never over the host's /sys/fs/cgroup).
class PrivateCgroup2Mount {
public:
    // Mounts cgroup2 on a new directory `parent`/cgroup2-XXXXXX (parent made 0700 if missing).
    // It shows the root of the caller's cgroup namespace: the whole host for a daemon in the
    // initial one, the namespace's own root for one started with `unshare --cgroup`.
    [[nodiscard]] static Result<std::unique_ptr<PrivateCgroup2Mount>> create(
        const std::filesystem::path& parent);

    PrivateCgroup2Mount(const PrivateCgroup2Mount&) = delete;
    PrivateCgroup2Mount& operator=(const PrivateCgroup2Mount&) = delete;
    PrivateCgroup2Mount(PrivateCgroup2Mount&&) = delete;
    PrivateCgroup2Mount& operator=(PrivateCgroup2Mount&&) = delete;
    ~PrivateCgroup2Mount();

    [[nodiscard]] const std::filesystem::path& path() const { return path_; }

private:
    explicit PrivateCgroup2Mount(std::filesystem::path path) : path_(std::move(path)) {}
    std::filesystem::path path_;
};

// The cgroup v2 root to attach the programs to.
struct Cgroup2Root {
    std::filesystem::path path;
    // Set when no hierarchy was visible and we mounted one (keep it until attached).
    std::unique_ptr<PrivateCgroup2Mount> private_mount;
};

// find_cgroup2_root(), or when no cgroup v2 hierarchy is visible (a hybrid host without the
// unified mount, a daemon started by `ip netns exec`, which mounts a fresh /sys), a private
// cgroup2 mount under `run_directory` instead of giving up eBPF for the slower socket tables.
[[nodiscard]] Result<Cgroup2Root> find_or_mount_cgroup2_root(
    const std::filesystem::path& run_directory);

} // namespace pw::state::bpf
