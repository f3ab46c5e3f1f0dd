// One socket action from one process, for the process-attribution integration tests.
//
// The tests copy this program under several names and paths, so that every process they start
// has an executable of its own, and then check that the daemon names the right one. C11 and
// POSIX only; the test compiles it with `cc -O2 -o DEST attribution_client.c`.
//
//   attribution_client tcp HOST PORT            connect, send a line, read the echo, close
//   attribution_client udp-connected HOST PORT  connected UDP socket, one datagram, read the echo
//   attribution_client udp-sendto HOST PORT     fire and forget: print, sendto() once, exit
//   attribution_client tcp6-dualstack V4 PORT   AF_INET6 socket (IPV6_V6ONLY=0) to ::ffff:V4
//   attribution_client listen PORT              accept one TCP connection, echo it, exit
//   attribution_client udp-listen PORT          answer one UDP datagram, exit
//   attribution_client spawn-at PID [--tries N] -- PROGRAM [ARGS...]
//                      fork until a child gets PID (via /proc/sys/kernel/ns_last_pid), which
//                      then execs PROGRAM; for the PID-reuse test
//   attribution_client idle COUNT [--no-sockets]
//                      COUNT idle children, each holding a UDP and a listening TCP socket on
//                      127.0.0.1, until SIGTERM; the parent then SIGKILLs them by PID
//
// Options: --source-port N (bind this local port first), --bind ADDR (bind this local
// address; for listen/udp-listen the listening address, default 0.0.0.0), --hold SECONDS (sleep
// before exiting, socket still open), --timeout SECONDS (connect and receive, default 3).
//
// Every mode prints JSON lines on stdout, flushed at once. The first line of a socket mode:
//   {"mode":..., "pid":..., "ppid":..., "uid":..., "localIp":..., "localPort":...,
//    "outcome":"ok"|"error", "detail":...}
// udp-sendto prints it before it sends (the process is gone when the daemon looks);
// listen/udp-listen print it once listening ("listening":true) and a second line when served.
// Exit status: 0 ok, 1 network error, 2 usage error, 3 spawn-at could not get the PID.

#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct options {
    const char* mode;
    const char* host;
    int port;
    int source_port;
    const char* bind_address;
    double hold_seconds;
    double timeout_seconds;
    int tries;
    bool no_sockets;
    char** program; // spawn-at: PROGRAM and its arguments, NULL-terminated
};

struct endpoint {
    struct sockaddr_storage address;
    socklen_t length;
};

static _Noreturn void usage(void) {
    fprintf(stderr,
            "usage: attribution_client MODE ARGS [--source-port N] [--bind ADDR] "
            "[--hold SECONDS] [--timeout SECONDS]\n"
            "modes: tcp HOST PORT | udp-connected HOST PORT | udp-sendto HOST PORT | "
            "tcp6-dualstack V4HOST PORT | listen PORT | udp-listen PORT |\n"
            "       spawn-at PID [--tries N] -- PROGRAM [ARGS...] | idle COUNT [--no-sockets]\n");
    exit(2);
}

static void json_string(FILE* out, const char* text) {
    fputc('"', out);
    for (const char* c = text; *c != '\0'; ++c) {
        if (*c == '"' || *c == '\\') {
            fputc('\\', out);
            fputc(*c, out);
        } else if ((unsigned char)*c < 0x20) {
            fprintf(out, "\\u%04x", (unsigned)(unsigned char)*c);
        } else {
            fputc(*c, out);
        }
    }
    fputc('"', out);
}

static void endpoint_text(const struct sockaddr_storage* address, char* ip, size_t ip_size,
                          int* port) {
    ip[0] = '\0';
    *port = 0;
    if (address->ss_family == AF_INET) {
        const struct sockaddr_in* v4 = (const struct sockaddr_in*)address;
        inet_ntop(AF_INET, &v4->sin_addr, ip, (socklen_t)ip_size);
        *port = ntohs(v4->sin_port);
    } else if (address->ss_family == AF_INET6) {
        const struct sockaddr_in6* v6 = (const struct sockaddr_in6*)address;
        inet_ntop(AF_INET6, &v6->sin6_addr, ip, (socklen_t)ip_size);
        *port = ntohs(v6->sin6_port);
    }
}

// The result line. `fd` may be -1 (no socket); `extra` is appended verbatim (",\"k\":v").
static void report(const struct options* options, int fd, const char* outcome, const char* detail,
                   const char* extra) {
    char ip[INET6_ADDRSTRLEN] = "";
    int port = 0;
    if (fd >= 0) {
        struct sockaddr_storage local;
        socklen_t length = sizeof local;
        memset(&local, 0, sizeof local);
        if (getsockname(fd, (struct sockaddr*)&local, &length) == 0) {
            endpoint_text(&local, ip, sizeof ip, &port);
        }
    }
    printf("{\"mode\":");
    json_string(stdout, options->mode);
    printf(",\"pid\":%d,\"ppid\":%d,\"uid\":%d,\"localIp\":", (int)getpid(), (int)getppid(),
           (int)getuid());
    json_string(stdout, ip);
    printf(",\"localPort\":%d,\"outcome\":", port);
    json_string(stdout, outcome);
    printf(",\"detail\":");
    json_string(stdout, detail);
    printf("%s}\n", extra != NULL ? extra : "");
    fflush(stdout);
}

static _Noreturn void fail(const struct options* options, int fd, const char* what) {
    char detail[256];
    snprintf(detail, sizeof detail, "%s: %s", what, strerror(errno));
    report(options, fd, "error", detail, NULL);
    exit(1);
}

static void sleep_seconds(double seconds) {
    if (seconds <= 0) {
        return;
    }
    struct timespec duration = {.tv_sec = (time_t)seconds,
                                .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&duration, &duration) != 0 && errno == EINTR) {
    }
}

static bool parse_address(const char* text, int port, struct endpoint* out) {
    memset(out, 0, sizeof *out);
    struct sockaddr_in* v4 = (struct sockaddr_in*)&out->address;
    struct sockaddr_in6* v6 = (struct sockaddr_in6*)&out->address;
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((unsigned short)port);
        out->length = sizeof *v4;
        return true;
    }
    if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((unsigned short)port);
        out->length = sizeof *v6;
        return true;
    }
    return false;
}

static struct endpoint must_parse(const struct options* options, const char* text, int port) {
    struct endpoint endpoint;
    if (!parse_address(text, port, &endpoint)) {
        fprintf(stderr, "attribution_client %s: not an IP address: %s\n", options->mode, text);
        exit(2);
    }
    return endpoint;
}

static void set_timeouts(int fd, double seconds) {
    struct timeval value = {.tv_sec = (time_t)seconds,
                            .tv_usec = (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, sizeof value);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, sizeof value);
}

// A socket of `family`, bound to --bind / --source-port when given (wildcard otherwise). Binding
// port 0 makes the kernel choose the local port now, so it can be printed before any packet.
static int open_bound(const struct options* options, int family, int type, bool dual_stack) {
    int fd = socket(family, type | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fail(options, -1, "socket");
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET6) {
        int v6only = dual_stack ? 0 : 1;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    }
    set_timeouts(fd, options->timeout_seconds);
    const char* address = options->bind_address;
    if (address == NULL) {
        address = family == AF_INET6 ? "::" : "0.0.0.0";
    }
    struct endpoint local = must_parse(options, address, options->source_port);
    if (local.address.ss_family != family) {
        fprintf(stderr, "attribution_client: --bind %s does not match the socket family\n",
                address);
        exit(2);
    }
    if (bind(fd, (struct sockaddr*)&local.address, local.length) != 0) {
        fail(options, fd, "bind");
    }
    return fd;
}

static void receive_exactly(const struct options* options, int fd, char* buffer, size_t count) {
    size_t received = 0;
    while (received < count) {
        ssize_t got = recv(fd, buffer + received, count - received, 0);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            fail(options, fd, "recv");
        }
        if (got == 0) {
            errno = ECONNRESET;
            fail(options, fd, "recv: connection closed early");
        }
        received += (size_t)got;
    }
}

static void exchange_tcp(const struct options* options, int fd) {
    char payload[64];
    int length = snprintf(payload, sizeof payload, "pwt-attribution %d\n", (int)getpid());
    if (send(fd, payload, (size_t)length, MSG_NOSIGNAL) != length) {
        fail(options, fd, "send");
    }
    char echoed[64];
    receive_exactly(options, fd, echoed, (size_t)length);
    if (memcmp(echoed, payload, (size_t)length) != 0) {
        errno = EPROTO;
        fail(options, fd, "echo differs");
    }
    // An orderly close: our FIN, then wait for the peer's.
    shutdown(fd, SHUT_WR);
    char rest[16];
    while (recv(fd, rest, sizeof rest, 0) > 0) {
    }
}

static int mode_tcp(const struct options* options, bool dual_stack) {
    struct endpoint remote;
    int family;
    if (dual_stack) {
        struct endpoint v4 = must_parse(options, options->host, options->port);
        if (v4.address.ss_family != AF_INET) {
            fprintf(stderr, "attribution_client tcp6-dualstack: %s is not IPv4\n", options->host);
            return 2;
        }
        char mapped[INET6_ADDRSTRLEN + 8];
        snprintf(mapped, sizeof mapped, "::ffff:%s", options->host);
        remote = must_parse(options, mapped, options->port);
        family = AF_INET6;
    } else {
        remote = must_parse(options, options->host, options->port);
        family = remote.address.ss_family;
    }
    int fd = open_bound(options, family, SOCK_STREAM, dual_stack);
    if (connect(fd, (struct sockaddr*)&remote.address, remote.length) != 0) {
        fail(options, fd, "connect");
    }
    exchange_tcp(options, fd);
    report(options, fd, "ok", "", NULL);
    sleep_seconds(options->hold_seconds);
    close(fd);
    return 0;
}

static int mode_udp_connected(const struct options* options) {
    struct endpoint remote = must_parse(options, options->host, options->port);
    int fd = open_bound(options, remote.address.ss_family, SOCK_DGRAM, false);
    if (connect(fd, (struct sockaddr*)&remote.address, remote.length) != 0) {
        fail(options, fd, "connect");
    }
    char payload[64];
    int length = snprintf(payload, sizeof payload, "pwt-attribution %d", (int)getpid());
    if (send(fd, payload, (size_t)length, 0) != length) {
        fail(options, fd, "send");
    }
    char echoed[128];
    ssize_t got = recv(fd, echoed, sizeof echoed, 0);
    if (got < 0) {
        fail(options, fd, "recv");
    }
    if (got != length || memcmp(echoed, payload, (size_t)length) != 0) {
        errno = EPROTO;
        fail(options, fd, "echo differs");
    }
    report(options, fd, "ok", "", NULL);
    sleep_seconds(options->hold_seconds);
    close(fd);
    return 0;
}

static int mode_udp_sendto(const struct options* options) {
    struct endpoint remote = must_parse(options, options->host, options->port);
    int fd = open_bound(options, remote.address.ss_family, SOCK_DGRAM, false);
    // Printed first: once the datagram is out, the test may look for its event at any time.
    report(options, fd, "ok", "", NULL);
    char payload[64];
    int length = snprintf(payload, sizeof payload, "pwt-attribution %d", (int)getpid());
    if (sendto(fd, payload, (size_t)length, 0, (struct sockaddr*)&remote.address, remote.length) !=
        length) {
        fail(options, fd, "sendto");
    }
    sleep_seconds(options->hold_seconds);
    // No close(), no wait for the echo: exit while the daemon is still deciding.
    _exit(0);
}

static bool wait_readable(int fd, double seconds) {
    struct pollfd poller = {.fd = fd, .events = POLLIN};
    int ready;
    do {
        ready = poll(&poller, 1, (int)(seconds * 1000));
    } while (ready < 0 && errno == EINTR);
    return ready > 0;
}

static int mode_listen(const struct options* options, int type) {
    const char* address = options->bind_address != NULL ? options->bind_address : "0.0.0.0";
    struct endpoint local = must_parse(options, address, options->port);
    struct options bound = *options;
    bound.bind_address = address;
    bound.source_port = options->port;
    int fd = open_bound(&bound, local.address.ss_family, type, false);
    if (type == SOCK_STREAM && listen(fd, 4) != 0) {
        fail(options, fd, "listen");
    }
    report(options, fd, "ok", "", ",\"listening\":true");
    if (!wait_readable(fd, options->timeout_seconds)) {
        errno = ETIMEDOUT;
        fail(options, fd, "nobody came");
    }
    struct sockaddr_storage peer;
    socklen_t peer_length = sizeof peer;
    memset(&peer, 0, sizeof peer);
    char buffer[2048];
    int served = -1;
    if (type == SOCK_STREAM) {
        served = accept4(fd, (struct sockaddr*)&peer, &peer_length, SOCK_CLOEXEC);
        if (served < 0) {
            fail(options, fd, "accept");
        }
        set_timeouts(served, options->timeout_seconds);
        ssize_t got;
        while ((got = recv(served, buffer, sizeof buffer, 0)) > 0) {
            if (send(served, buffer, (size_t)got, MSG_NOSIGNAL) != got) {
                break;
            }
        }
    } else {
        ssize_t got = recvfrom(fd, buffer, sizeof buffer, 0, (struct sockaddr*)&peer, &peer_length);
        if (got < 0) {
            fail(options, fd, "recvfrom");
        }
        sendto(fd, buffer, (size_t)got, 0, (struct sockaddr*)&peer, peer_length);
    }
    char peer_ip[INET6_ADDRSTRLEN];
    int peer_port = 0;
    endpoint_text(&peer, peer_ip, sizeof peer_ip, &peer_port);
    char extra[128];
    snprintf(extra, sizeof extra, ",\"served\":true,\"peerIp\":\"%s\",\"peerPort\":%d", peer_ip,
             peer_port);
    report(options, fd, "ok", "", extra);
    sleep_seconds(options->hold_seconds);
    if (served >= 0) {
        close(served);
    }
    close(fd);
    return 0;
}

// Fork until a child gets `target` as its PID. Writing target - 1 to ns_last_pid makes the
// kernel hand out `target` next, unless another process on the host forks in between: then
// the child that got the wrong PID exits at once (without exec) and we try again.
static int mode_spawn_at(const struct options* options) {
    pid_t target = (pid_t)options->port;
    if (target < 2 || kill(target, 0) == 0 || errno != ESRCH) {
        char detail[96];
        snprintf(detail, sizeof detail, "pid %d is in use or invalid", (int)target);
        report(options, -1, "error", detail, NULL);
        return 3;
    }
    pid_t last_got = 0;
    for (int attempt = 1; attempt <= options->tries; ++attempt) {
        int last_pid_file = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
        if (last_pid_file < 0) {
            fail(options, -1, "open /proc/sys/kernel/ns_last_pid");
        }
        char text[32];
        int length = snprintf(text, sizeof text, "%d", (int)(target - 1));
        fflush(stdout);
        if (write(last_pid_file, text, (size_t)length) != length) {
            fail(options, -1, "write /proc/sys/kernel/ns_last_pid");
        }
        pid_t child = fork();
        if (child < 0) {
            fail(options, -1, "fork");
        }
        if (child == 0) {
            if (getpid() != target) {
                _exit(99);
            }
            close(last_pid_file);
            execv(options->program[0], options->program);
            fprintf(stderr, "attribution_client spawn-at: exec %s: %s\n", options->program[0],
                    strerror(errno));
            _exit(127);
        }
        close(last_pid_file);
        if (child != target) {
            last_got = child;
            waitpid(child, NULL, 0);
            continue;
        }
        char extra[96];
        snprintf(extra, sizeof extra, ",\"spawnedPid\":%d,\"tries\":%d", (int)child, attempt);
        report(options, -1, "ok", "", extra);
        int status = 0;
        waitpid(child, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    char detail[128];
    snprintf(detail, sizeof detail, "pid %d not obtained in %d tries (last child got %d)",
             (int)target, options->tries, (int)last_got);
    report(options, -1, "error", detail, NULL);
    return 3;
}

static void hold_sockets_forever(void) {
    struct endpoint loopback;
    parse_address("127.0.0.1", 0, &loopback);
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    if (udp >= 0) {
        bind(udp, (struct sockaddr*)&loopback.address, loopback.length);
    }
    if (tcp >= 0 && bind(tcp, (struct sockaddr*)&loopback.address, loopback.length) == 0) {
        listen(tcp, 1);
    }
}

static int mode_idle(const struct options* options) {
    int count = options->port;
    pid_t* children = calloc((size_t)count, sizeof *children);
    int ready[2];
    if (children == NULL || pipe2(ready, O_CLOEXEC) != 0) {
        fail(options, -1, "setup");
    }
    // The parent waits for these signals with sigwait(); children inherit the mask and only
    // ever die by SIGKILL (from the parent, or PR_SET_PDEATHSIG when the parent is gone).
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGHUP);
    sigprocmask(SIG_BLOCK, &stop_signals, NULL);
    pid_t parent = getpid();
    fflush(stdout);
    int started = 0;
    for (; started < count; ++started) {
        pid_t child = fork();
        if (child < 0) {
            break;
        }
        if (child == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) {
                _exit(0);
            }
            close(ready[0]);
            if (!options->no_sockets) {
                hold_sockets_forever();
            }
            char byte = 1;
            (void)write(ready[1], &byte, 1);
            close(ready[1]);
            for (;;) {
                pause();
            }
        }
        children[started] = child;
    }
    close(ready[1]);
    int confirmed = 0;
    char buffer[256];
    ssize_t got;
    while (confirmed < started && (got = read(ready[0], buffer, sizeof buffer)) > 0) {
        confirmed += (int)got;
    }
    close(ready[0]);
    char extra[64];
    snprintf(extra, sizeof extra, ",\"children\":%d", confirmed);
    report(options, -1, confirmed == count ? "ok" : "error",
           confirmed == count ? "" : "fewer children than asked", extra);
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    for (int index = 0; index < started; ++index) {
        kill(children[index], SIGKILL);
    }
    for (int index = 0; index < started; ++index) {
        waitpid(children[index], NULL, 0);
    }
    free(children);
    return 0;
}

static int parse_int(const char* text) {
    char* end = NULL;
    long value = strtol(text, &end, 10);
    if (end == text || *end != '\0' || value < 0 || value > 4194304) {
        usage();
    }
    return (int)value;
}

static double parse_seconds(const char* text) {
    char* end = NULL;
    double value = strtod(text, &end);
    if (end == text || *end != '\0' || value < 0) {
        usage();
    }
    return value;
}

static struct options parse(int argc, char** argv) {
    struct options options = {.timeout_seconds = 3.0, .tries = 50};
    if (argc < 3) {
        usage();
    }
    options.mode = argv[1];
    int index = 2;
    bool has_host =
        strcmp(options.mode, "tcp") == 0 || strcmp(options.mode, "udp-connected") == 0 ||
        strcmp(options.mode, "udp-sendto") == 0 || strcmp(options.mode, "tcp6-dualstack") == 0;
    if (has_host) {
        if (argc < 4) {
            usage();
        }
        options.host = argv[index++];
    }
    options.port = parse_int(argv[index++]); // PORT, or PID for spawn-at, COUNT for idle
    for (; index < argc; ++index) {
        const char* flag = argv[index];
        bool has_value = index + 1 < argc;
        if (strcmp(flag, "--") == 0 && strcmp(options.mode, "spawn-at") == 0) {
            if (!has_value) {
                usage();
            }
            options.program = &argv[index + 1];
            break;
        }
        if (strcmp(flag, "--no-sockets") == 0) {
            options.no_sockets = true;
        } else if (!has_value) {
            usage();
        } else if (strcmp(flag, "--source-port") == 0) {
            options.source_port = parse_int(argv[++index]);
        } else if (strcmp(flag, "--bind") == 0) {
            options.bind_address = argv[++index];
        } else if (strcmp(flag, "--hold") == 0) {
            options.hold_seconds = parse_seconds(argv[++index]);
        } else if (strcmp(flag, "--timeout") == 0) {
            options.timeout_seconds = parse_seconds(argv[++index]);
        } else if (strcmp(flag, "--tries") == 0) {
            options.tries = parse_int(argv[++index]);
        } else {
            usage();
        }
    }
    return options;
}

int main(int argc, char** argv) {
    struct options options = parse(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(options.mode, "tcp") == 0) {
        return mode_tcp(&options, false);
    }
    if (strcmp(options.mode, "tcp6-dualstack") == 0) {
        return mode_tcp(&options, true);
    }
    if (strcmp(options.mode, "udp-connected") == 0) {
        return mode_udp_connected(&options);
    }
    if (strcmp(options.mode, "udp-sendto") == 0) {
        return mode_udp_sendto(&options);
    }
    if (strcmp(options.mode, "listen") == 0) {
        return mode_listen(&options, SOCK_STREAM);
    }
    if (strcmp(options.mode, "udp-listen") == 0) {
        return mode_listen(&options, SOCK_DGRAM);
    }
    if (strcmp(options.mode, "spawn-at") == 0) {
        if (options.program == NULL) {
            usage();
        }
        return mode_spawn_at(&options);
    }
    if (strcmp(options.mode, "idle") == 0) {
        return mode_idle(&options);
    }
    usage();
}
