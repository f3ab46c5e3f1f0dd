// SPDX-License-Identifier: GPL-2.0-only
// Socket-owner records for portwarden (issue 3, part 2). Observes only: every program returns 1
// (allow) and never changes the socket, the address or the message.
//
// Built against the kernel's uapi headers, without vmlinux.h: the socket programs read the
// stable context structs bpf_sock, bpf_sock_addr and bpf_sock_ops. The three kernel structs
// below are read through CO-RE (preserve_access_index): libbpf relocates each field against the
// running kernel's BTF at load time, so only the fields named here must exist.

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/socket.h>

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "socket_owner_abi.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

// Context fields must be read with the size the verifier allows (4 bytes here); volatile keeps
// clang from merging two neighbouring 4-byte loads into one 8-byte load, which it rejects.
#define PW_READ_U32(field) (*(volatile __u32*)&(field))

char LICENSE[] SEC("license") = "GPL";

struct task_struct {
    int pid; // thread id
    int tgid;
    struct task_struct* real_parent;
    struct task_struct* group_leader;
    __u64 start_boottime; // what /proc/<pid>/stat field 22 shows, in ns
} __attribute__((preserve_access_index));

struct linux_binprm {
    const char* filename; // as passed to execve(); for a #! script, the script
    const char* interp;   // the file finally run: the interpreter for a #! script
} __attribute__((preserve_access_index));

// Socket cookie -> the process that bound the socket (cgroup/post_bind4|6: listeners and bound
// UDP sockets, whose inbound flows the socket tables find) or connected it (UDP). Not every socket:
// client sockets are named by their flow records, and one map update per socket() call costs more
// than a connection's whole attribution (~1.4 µs once the map is full and evicts).
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, PW_SOCKET_OWNER_MAX_ENTRIES);
    __type(key, __u64);
    __type(value, struct SocketOwnerValue);
} owner_by_cookie SEC(".maps");

// Flow -> the process that connected or sent on it (cgroup/connect4|6, sendmsg4|6, sockops).
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, PW_SOCKET_OWNER_MAX_ENTRIES);
    __type(key, struct SocketOwnerFlowKey);
    __type(value, struct SocketOwnerValue);
} owner_by_flow SEC(".maps");

// UDP flows that a new socket sends on (see UdpSenderEvent): the daemon reads them as they
// come. When the ring is full, events are lost and counted in udp_sender_lost.
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, PW_UDP_SENDER_RING_BYTES);
} udp_senders SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} udp_sender_lost SEC(".maps");

// The last exec of each process (tgid), for processes gone before the firewall reads /proc.
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, PW_EXEC_MAX_ENTRIES);
    __type(key, __u32);
    __type(value, struct ExecRecord);
} exec_by_tgid SEC(".maps");

// An ExecRecord is larger than the 512-byte BPF stack: it is built here, one per CPU.
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct ExecRecord);
} exec_scratch SEC(".maps");

static __always_inline __u64 current_process_start(void) {
    struct task_struct* task = (struct task_struct*)bpf_get_current_task();
    return BPF_CORE_READ(task, group_leader, start_boottime);
}

static __always_inline void fill_value(struct SocketOwnerValue* value, __u64 cookie) {
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    value->cookie = cookie;
    value->time_ns = bpf_ktime_get_boot_ns();
    value->start_time_ns = current_process_start();
    value->tgid = (__u32)(pid_tgid >> 32);
    value->pid = (__u32)pid_tgid;
    value->uid = (__u32)bpf_get_current_uid_gid();
    value->padding = 0;
}

static __always_inline int is_v4_mapped(__u32 a0, __u32 a1, __u32 a2) {
    return a0 == 0 && a1 == 0 && a2 == bpf_htonl(0x0000ffff);
}

static __always_inline void put_v4(__u8* bytes, __u32 address_be) {
    __builtin_memcpy(bytes, &address_be, 4);
}

static __always_inline void put_v6(__u8* bytes, __u32 a0, __u32 a1, __u32 a2, __u32 a3) {
    __builtin_memcpy(bytes, &a0, 4);
    __builtin_memcpy(bytes + 4, &a1, 4);
    __builtin_memcpy(bytes + 8, &a2, 4);
    __builtin_memcpy(bytes + 12, &a3, 4);
}

// The socket's own (local) address. With an IPv4 remote, a v4-mapped local address is folded
// and an IPv6 wildcard (::) stays all zeros ("unknown").
static __always_inline void put_local_from_sock(struct SocketOwnerFlowKey* key,
                                                struct bpf_sock* sk) {
    if (!sk) {
        return;
    }
    key->local_port = (__u16)sk->src_port;
    if (sk->family == AF_INET) {
        put_v4(key->local_address, sk->src_ip4);
        return;
    }
    __u32 a0 = PW_READ_U32(sk->src_ip6[0]);
    __u32 a1 = PW_READ_U32(sk->src_ip6[1]);
    __u32 a2 = PW_READ_U32(sk->src_ip6[2]);
    __u32 a3 = PW_READ_U32(sk->src_ip6[3]);
    if (is_v4_mapped(a0, a1, a2)) {
        put_v4(key->local_address, a3);
    } else if (key->family == PW_SOCKET_OWNER_FAMILY_V6) {
        put_v6(key->local_address, a0, a1, a2, a3);
    }
}

// Remote address of a connect4/sendmsg4 call.
static __always_inline void put_remote_v4(struct SocketOwnerFlowKey* key,
                                          struct bpf_sock_addr* ctx) {
    key->family = PW_SOCKET_OWNER_FAMILY_V4;
    put_v4(key->remote_address, ctx->user_ip4);
    key->remote_port = bpf_ntohs((__u16)ctx->user_port);
}

// Remote address of a connect6/sendmsg6 call; ::ffff:a.b.c.d becomes a.b.c.d.
static __always_inline void put_remote_v6(struct SocketOwnerFlowKey* key,
                                          struct bpf_sock_addr* ctx) {
    __u32 a0 = PW_READ_U32(ctx->user_ip6[0]);
    __u32 a1 = PW_READ_U32(ctx->user_ip6[1]);
    __u32 a2 = PW_READ_U32(ctx->user_ip6[2]);
    __u32 a3 = PW_READ_U32(ctx->user_ip6[3]);
    if (is_v4_mapped(a0, a1, a2)) {
        key->family = PW_SOCKET_OWNER_FAMILY_V4;
        put_v4(key->remote_address, a3);
    } else {
        key->family = PW_SOCKET_OWNER_FAMILY_V6;
        put_v6(key->remote_address, a0, a1, a2, a3);
    }
    key->remote_port = bpf_ntohs((__u16)ctx->user_port);
}

// Reports a UDP flow with a known local port whose record named another socket, or none:
// the first send of a flow, or a new socket (and maybe process) reusing one (UdpSenderEvent).
// Sends on the socket the record already names, the common case, cost one lookup.
static __always_inline void report_new_udp_sender(const struct SocketOwnerFlowKey* key,
                                                  const struct SocketOwnerValue* value) {
    if (key->protocol != IPPROTO_UDP || key->local_port == 0) {
        return; // without the local port, the flow is not known yet
    }
    struct SocketOwnerValue* previous = bpf_map_lookup_elem(&owner_by_flow, key);
    if (previous && previous->cookie == value->cookie) {
        return;
    }
    struct UdpSenderEvent event;
    __builtin_memcpy(&event.key, key, sizeof(event.key));
    __builtin_memcpy(&event.owner, value, sizeof(event.owner));
    event.previous_cookie = previous ? previous->cookie : 0;
    if (bpf_ringbuf_output(&udp_senders, &event, sizeof(event), 0) != 0) {
        __u32 zero = 0;
        __u64* lost = bpf_map_lookup_elem(&udp_sender_lost, &zero);
        if (lost) {
            *lost += 1;
        }
    }
}

// Records the flow `key` (remote end filled in) for the socket of a connect() or sendmsg()
// call, with what the socket knows of its local end; returns the record's value.
static __always_inline void record_flow(struct bpf_sock_addr* ctx, struct SocketOwnerFlowKey* key,
                                        struct SocketOwnerValue* value) {
    key->protocol = (__u8)ctx->protocol;
    put_local_from_sock(key, ctx->sk);
    fill_value(value, bpf_get_socket_cookie(ctx));
    report_new_udp_sender(key, value);
    bpf_map_update_elem(&owner_by_flow, key, value, BPF_ANY);
}

// connect() on UDP: the local port is known only if the socket was bound before connect(),
// since the kernel binds it after this hook. The flow record then holds only the remote end,
// which every socket connecting there shares (DNS: all of them), so the socket is recorded by
// cookie too: the socket the socket table finds is named exactly.
static __always_inline void record_connect(struct bpf_sock_addr* ctx,
                                           struct SocketOwnerFlowKey* key) {
    struct SocketOwnerValue value;
    record_flow(ctx, key, &value);
    bpf_map_update_elem(&owner_by_cookie, &value.cookie, &value, BPF_ANY);
}

// sendmsg() with a destination address (unconnected UDP). The kernel has already bound the
// socket by now, so the local port is known; the local address is known only if bound to one.
static __always_inline void record_sendmsg(struct bpf_sock_addr* ctx,
                                           struct SocketOwnerFlowKey* key) {
    struct SocketOwnerValue value;
    record_flow(ctx, key, &value);
}

static __always_inline int record_bind(struct bpf_sock* sk) {
    __u64 cookie = bpf_get_socket_cookie(sk);
    struct SocketOwnerValue value;
    fill_value(&value, cookie);
    bpf_map_update_elem(&owner_by_cookie, &cookie, &value, BPF_ANY);
    return 1;
}

SEC("cgroup/post_bind4")
int pw_post_bind4(struct bpf_sock* sk) {
    return record_bind(sk);
}

SEC("cgroup/post_bind6")
int pw_post_bind6(struct bpf_sock* sk) {
    return record_bind(sk);
}

SEC("cgroup/connect4")
int pw_connect4(struct bpf_sock_addr* ctx) {
    if (ctx->protocol != IPPROTO_UDP) {
        return 1; // TCP: recorded by pw_sockops once the kernel chose the local port
    }
    struct SocketOwnerFlowKey key;
    __builtin_memset(&key, 0, sizeof(key));
    put_remote_v4(&key, ctx);
    record_connect(ctx, &key);
    return 1;
}

SEC("cgroup/connect6")
int pw_connect6(struct bpf_sock_addr* ctx) {
    if (ctx->protocol != IPPROTO_UDP) {
        return 1; // TCP: recorded by pw_sockops once the kernel chose the local port
    }
    struct SocketOwnerFlowKey key;
    __builtin_memset(&key, 0, sizeof(key));
    put_remote_v6(&key, ctx);
    record_connect(ctx, &key);
    return 1;
}

SEC("cgroup/sendmsg4")
int pw_sendmsg4(struct bpf_sock_addr* ctx) {
    struct SocketOwnerFlowKey key;
    __builtin_memset(&key, 0, sizeof(key));
    put_remote_v4(&key, ctx);
    record_sendmsg(ctx, &key);
    return 1;
}

SEC("cgroup/sendmsg6")
int pw_sendmsg6(struct bpf_sock_addr* ctx) {
    struct SocketOwnerFlowKey key;
    __builtin_memset(&key, 0, sizeof(key));
    put_remote_v6(&key, ctx);
    record_sendmsg(ctx, &key);
    return 1;
}

// TCP_CONNECT runs in tcp_connect(), in the context of the process calling connect() (or
// sendmsg() with TCP Fast Open), after the local port was chosen and before the SYN leaves: the
// exact record exists before the firewall sees the first packet. One map update per
// connection; an earlier version parked a record from cgroup/connect4|6 in a second map until
// here, which cost a third more.
SEC("sockops")
int pw_sockops(struct bpf_sock_ops* skops) {
    if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB) {
        return 1;
    }
    struct SocketOwnerFlowKey key;
    __builtin_memset(&key, 0, sizeof(key));
    key.protocol = IPPROTO_TCP;
    key.local_port = (__u16)skops->local_port;              // host byte order
    key.remote_port = (__u16)bpf_ntohl(skops->remote_port); // network order, upper half
    int v4 = skops->family == AF_INET;
    if (!v4) {
        __u32 r0 = PW_READ_U32(skops->remote_ip6[0]);
        __u32 r1 = PW_READ_U32(skops->remote_ip6[1]);
        __u32 r2 = PW_READ_U32(skops->remote_ip6[2]);
        __u32 r3 = PW_READ_U32(skops->remote_ip6[3]);
        if (is_v4_mapped(r0, r1, r2)) {
            v4 = 1; // a dual-stack socket reaching IPv4: its IPv4 fields are set too
        } else {
            key.family = PW_SOCKET_OWNER_FAMILY_V6;
            put_v6(key.remote_address, r0, r1, r2, r3);
            put_v6(key.local_address, PW_READ_U32(skops->local_ip6[0]),
                   PW_READ_U32(skops->local_ip6[1]), PW_READ_U32(skops->local_ip6[2]),
                   PW_READ_U32(skops->local_ip6[3]));
        }
    }
    if (v4) {
        key.family = PW_SOCKET_OWNER_FAMILY_V4;
        put_v4(key.remote_address, skops->remote_ip4);
        put_v4(key.local_address, skops->local_ip4);
    }
    struct SocketOwnerValue value;
    fill_value(&value, bpf_get_socket_cookie(skops));
    bpf_map_update_elem(&owner_by_flow, &key, &value, BPF_ANY);
    return 1;
}

// Every successful execve(): the file it ran, before the process can exit and take its /proc
// entry with it. Observes only.
SEC("raw_tp/sched_process_exec")
int pw_exec(struct bpf_raw_tracepoint_args* ctx) {
    struct task_struct* task = (struct task_struct*)ctx->args[0];
    struct linux_binprm* bprm = (struct linux_binprm*)ctx->args[2];
    __u32 zero = 0;
    struct ExecRecord* record = bpf_map_lookup_elem(&exec_scratch, &zero);
    if (!record) {
        return 0;
    }
    record->tgid = (__u32)BPF_CORE_READ(task, tgid);
    record->parent_tgid = (__u32)BPF_CORE_READ(task, real_parent, tgid);
    record->start_time_ns = BPF_CORE_READ(task, group_leader, start_boottime);
    record->time_ns = bpf_ktime_get_boot_ns();
    record->uid = (__u32)bpf_get_current_uid_gid();
    record->flags = 0;
    const char* filename = BPF_CORE_READ(bprm, filename);
    const char* interp = BPF_CORE_READ(bprm, interp);
    long length = bpf_probe_read_kernel_str(record->path, sizeof(record->path), filename);
    if (length < 0) {
        record->path[0] = 0;
    } else if (length >= PW_EXEC_PATH_MAX) {
        record->flags |= PW_EXEC_PATH_CUT;
    }
    record->interpreter[0] = 0;
    if (interp && interp != filename) {
        if (bpf_probe_read_kernel_str(record->interpreter, sizeof(record->interpreter), interp) >
            0) {
            record->flags |= PW_EXEC_SCRIPT;
        }
    }
    bpf_map_update_elem(&exec_by_tgid, &record->tgid, record, BPF_ANY);
    return 0;
}

// A new process (not a thread) runs its parent's program until it calls execve(): give it a
// copy of the parent's exec record, so a forked child that sends and exits is named too.
SEC("raw_tp/sched_process_fork")
int pw_fork(struct bpf_raw_tracepoint_args* ctx) {
    struct task_struct* parent = (struct task_struct*)ctx->args[0];
    struct task_struct* child = (struct task_struct*)ctx->args[1];
    __u32 child_pid = (__u32)BPF_CORE_READ(child, pid);
    __u32 child_tgid = (__u32)BPF_CORE_READ(child, tgid);
    if (child_pid != child_tgid) {
        return 0; // a thread
    }
    __u32 parent_tgid = (__u32)BPF_CORE_READ(parent, tgid);
    struct ExecRecord* inherited = bpf_map_lookup_elem(&exec_by_tgid, &parent_tgid);
    if (!inherited) {
        return 0;
    }
    __u32 zero = 0;
    struct ExecRecord* record = bpf_map_lookup_elem(&exec_scratch, &zero);
    if (!record) {
        return 0;
    }
    __builtin_memcpy(record, inherited, sizeof(*record));
    record->tgid = child_tgid;
    record->parent_tgid = parent_tgid;
    record->start_time_ns = BPF_CORE_READ(child, start_boottime);
    record->time_ns = bpf_ktime_get_boot_ns();
    record->flags |= PW_EXEC_INHERITED;
    bpf_map_update_elem(&exec_by_tgid, &child_tgid, record, BPF_ANY);
    return 0;
}
