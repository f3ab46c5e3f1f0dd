#pragma once

// The layout of the BPF maps, shared by socket_owner.bpf.c (compiled by clang for the BPF
// target) and the C++ reader. Plain C on purpose: both compilers must agree byte for byte.
// NOLINTBEGIN(modernize-avoid-c-arrays,modernize-use-using,modernize-macro-to-enum): shared with
// BPF C, which has neither std::array, `using` nor scoped constants (the map definition needs a
// macro).

#include <linux/types.h>

// Entries per map. LRU hash maps evict the least recently used entry when full, so the maps
// stay bounded whatever the host does.
#define PW_SOCKET_OWNER_MAX_ENTRIES 16384

// Address families in SocketOwnerFlowKey.family.
#define PW_SOCKET_OWNER_FAMILY_V4 4
#define PW_SOCKET_OWNER_FAMILY_V6 6

// One flow from the socket's point of view. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are
// folded to IPv4 (family 4, address in the first 4 bytes), as pw::IpAddress does. A local
// address of all zeros and a local port of 0 mean "not known when the record was written" (a
// socket that was not bound yet, or bound to the wildcard address).
struct SocketOwnerFlowKey {
    __u8 local_address[16];  // network byte order; IPv4 in the first 4 bytes, rest zero
    __u8 remote_address[16]; // network byte order; IPv4 in the first 4 bytes, rest zero
    __u16 local_port;        // host byte order
    __u16 remote_port;       // host byte order
    __u8 protocol;           // IANA number: 6 TCP, 17 UDP
    __u8 family;             // PW_SOCKET_OWNER_FAMILY_V4 or _V6
    __u8 padding[2];         // always zero: keys are compared as bytes
};

// Who acted on a socket, taken in the context of the process that made the system call.
struct SocketOwnerValue {
    __u64 cookie;        // the kernel's socket cookie (SO_COOKIE)
    __u64 time_ns;       // bpf_ktime_get_boot_ns(): CLOCK_BOOTTIME
    __u64 start_time_ns; // the process's start (group leader's start_boottime), 0 if unknown:
                         // with tgid the key that survives PID reuse (/proc/<pid>/stat field 22)
    __u32 tgid;          // process id
    __u32 pid;           // thread id
    __u32 uid;
    __u32 padding;
};

// Ring buffer bytes for UdpSenderEvent records (a power of two, a multiple of the page size):
// ~4,000 events, read by the daemon as they come.
#define PW_UDP_SENDER_RING_BYTES (256 * 1024)

// A socket sent on a UDP flow that no record named it for: either the first send of the flow,
// or another socket (often another process) reusing a flow that an earlier socket used. The
// firewall decides such a flow again when it was decided for another process (issue 10 item 8):
// conntrack would otherwise give the new sender the old sender's verdict.
struct UdpSenderEvent {
    struct SocketOwnerFlowKey key;
    struct SocketOwnerValue owner; // the new sender
    __u64 previous_cookie;         // the socket the record named before, 0 if none
};

// Bytes of an executed file's path kept per exec record; longer paths are cut (and flagged).
#define PW_EXEC_PATH_MAX 256

// The last execve() of a process (raw tracepoint sched_process_exec), or the exec record of
// its parent for a process that forked without exec. Lets the firewall name a process that sent
// its last packet and exited before it could read /proc.
struct ExecRecord {
    __u64 start_time_ns; // the process's start_boottime: must match the flow record's
    __u64 time_ns;       // when it was recorded, CLOCK_BOOTTIME
    __u32 tgid;
    __u32 parent_tgid;
    __u32 uid;
    __u32 flags;                        // PW_EXEC_* below
    char path[PW_EXEC_PATH_MAX];        // the file passed to execve(): the script for scripts
    char interpreter[PW_EXEC_PATH_MAX]; // the interpreter when the kernel ran a #! script
};
#define PW_EXEC_INHERITED 1U      // copied from the parent at fork: no exec of its own yet
#define PW_EXEC_PATH_CUT 2U       // path longer than PW_EXEC_PATH_MAX - 1
#define PW_EXEC_SCRIPT 4U         // interpreter holds the #! interpreter
#define PW_EXEC_MAX_ENTRIES 16384 // processes remembered; the LRU evicts the oldest

// NOLINTEND(modernize-avoid-c-arrays,modernize-use-using,modernize-macro-to-enum)
