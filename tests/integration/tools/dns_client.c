// A client that resolves a name with the C library and then connects to what it got: the
// program behind the DNS integration tests' domain attribution cases (test_dns.py). The test
// compiles it and runs copies under different names, so that each resolution and connection
// belongs to an executable of its own.
//
//   dns_client NAME PORT [--family 4|6] [--wait] [--source-port N] [--timeout SECONDS]
//
// 1. getaddrinfo(NAME) for TCP in the given family (default 4): glibc asks the nameserver of
//    /etc/resolv.conf, which `ip netns exec` takes from /etc/netns/<namespace>/.
// 2. Prints {"mode":"resolved","pid":...,"addresses":[...]} (or outcome "error" and exits 1).
// 3. With --wait, reads one line from stdin before going on: the test lets two clients resolve
//    first and connect afterwards.
// 4. Connects to the first address on PORT (from --source-port if given), sends one line, reads
//    the echo and prints {"mode":"connected","outcome":"ok"|"error","pid","ppid","uid","exe",
//    "remote","localPort","detail"}.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

struct options {
    const char* name;
    int port;
    int family;
    int wait;
    int source_port;
    int timeout_ms;
};

static void usage(void) {
    fprintf(stderr,
            "usage: dns_client NAME PORT [--family 4|6] [--wait] [--source-port N] "
            "[--timeout SECONDS]\n");
    exit(2);
}

static int parse_int(const char* text, int low, int high) {
    char* end = NULL;
    errno = 0;
    const long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < low || value > high) {
        usage();
    }
    return (int)value;
}

static void print_error(const char* mode, const char* what, const char* detail) {
    printf("{\"mode\":\"%s\",\"outcome\":\"error\",\"pid\":%d,\"detail\":\"%s: %s\"}\n", mode,
           (int)getpid(), what, detail);
    fflush(stdout);
}

static int wait_for(int fd, short events, int timeout_ms) {
    struct pollfd entry = {.fd = fd, .events = events};
    const int ready = poll(&entry, 1, timeout_ms);
    if (ready == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    return ready < 0 ? -1 : 0;
}

int main(int argc, char** argv) {
    if (argc < 3) {
        usage();
    }
    struct options options = {
        .name = argv[1], .port = parse_int(argv[2], 1, 65535), .family = 4, .timeout_ms = 5000};
    for (int index = 3; index < argc; ++index) {
        const char* flag = argv[index];
        if (strcmp(flag, "--wait") == 0) {
            options.wait = 1;
            continue;
        }
        if (index + 1 >= argc) {
            usage();
        }
        if (strcmp(flag, "--family") == 0) {
            options.family = parse_int(argv[++index], 4, 6);
        } else if (strcmp(flag, "--source-port") == 0) {
            options.source_port = parse_int(argv[++index], 1, 65535);
        } else if (strcmp(flag, "--timeout") == 0) {
            options.timeout_ms = parse_int(argv[++index], 1, 60) * 1000;
        } else {
            usage();
        }
    }
    if (options.family != 4 && options.family != 6) {
        usage();
    }

    struct addrinfo hints = {.ai_family = options.family == 6 ? AF_INET6 : AF_INET,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo* found = NULL;
    char port_text[8];
    snprintf(port_text, sizeof port_text, "%d", options.port);
    const int status = getaddrinfo(options.name, port_text, &hints, &found);
    if (status != 0) {
        print_error("resolved", "getaddrinfo", gai_strerror(status));
        return 1;
    }
    printf("{\"mode\":\"resolved\",\"outcome\":\"ok\",\"pid\":%d,\"addresses\":[", (int)getpid());
    char first[INET6_ADDRSTRLEN] = "";
    int count = 0;
    for (const struct addrinfo* entry = found; entry != NULL; entry = entry->ai_next) {
        char text[INET6_ADDRSTRLEN] = "";
        const void* address =
            entry->ai_family == AF_INET6
                ? (const void*)&((const struct sockaddr_in6*)entry->ai_addr)->sin6_addr
                : (const void*)&((const struct sockaddr_in*)entry->ai_addr)->sin_addr;
        inet_ntop(entry->ai_family, address, text, sizeof text);
        printf("%s\"%s\"", count++ > 0 ? "," : "", text);
        if (first[0] == '\0') {
            memcpy(first, text, sizeof text);
        }
    }
    printf("]}\n");
    fflush(stdout);

    if (options.wait) {
        char line[64];
        if (fgets(line, sizeof line, stdin) == NULL) {
            print_error("connected", "stdin", "closed before the go line");
            freeaddrinfo(found);
            return 1;
        }
    }

    const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        print_error("connected", "socket", strerror(errno));
        freeaddrinfo(found);
        return 1;
    }
    if (options.source_port != 0) {
        const int yes = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        struct sockaddr_storage local = {0};
        socklen_t length = 0;
        if (found->ai_family == AF_INET6) {
            struct sockaddr_in6* v6 = (struct sockaddr_in6*)&local;
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons((unsigned short)options.source_port);
            length = sizeof *v6;
        } else {
            struct sockaddr_in* v4 = (struct sockaddr_in*)&local;
            v4->sin_family = AF_INET;
            v4->sin_port = htons((unsigned short)options.source_port);
            length = sizeof *v4;
        }
        if (bind(fd, (struct sockaddr*)&local, length) != 0) {
            print_error("connected", "bind", strerror(errno));
            return 1;
        }
    }
    const char* failed = NULL;
    if (connect(fd, found->ai_addr, found->ai_addrlen) != 0 && errno != EINPROGRESS) {
        failed = "connect";
    } else if (wait_for(fd, POLLOUT, options.timeout_ms) != 0) {
        failed = "connect";
    } else {
        int error = 0;
        socklen_t size = sizeof error;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size);
        if (error != 0) {
            errno = error;
            failed = "connect";
        }
    }
    int local_port = 0;
    struct sockaddr_storage local = {0};
    socklen_t local_length = sizeof local;
    if (getsockname(fd, (struct sockaddr*)&local, &local_length) == 0) {
        local_port = ntohs(local.ss_family == AF_INET6 ? ((struct sockaddr_in6*)&local)->sin6_port
                                                       : ((struct sockaddr_in*)&local)->sin_port);
    }
    static const char kLine[] = "pwt-dns-client\n";
    if (failed == NULL && send(fd, kLine, sizeof kLine - 1, MSG_NOSIGNAL) != sizeof kLine - 1) {
        failed = "send";
    }
    char echo[sizeof kLine] = "";
    size_t received = 0;
    while (failed == NULL && received < sizeof kLine - 1) {
        if (wait_for(fd, POLLIN, options.timeout_ms) != 0) {
            failed = "recv";
            break;
        }
        const ssize_t got = recv(fd, echo + received, sizeof kLine - 1 - received, 0);
        if (got <= 0) {
            if (got == 0) {
                errno = ECONNRESET;
            }
            failed = "recv";
            break;
        }
        received += (size_t)got;
    }
    const int saved_errno = errno;
    close(fd);
    freeaddrinfo(found);

    char exe[PATH_MAX] = "";
    const ssize_t exe_length = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (exe_length > 0) {
        exe[exe_length] = '\0';
    }
    printf(
        "{\"mode\":\"connected\",\"outcome\":\"%s\",\"pid\":%d,\"ppid\":%d,\"uid\":%d,"
        "\"exe\":\"%s\",\"remote\":\"%s\",\"localPort\":%d,\"detail\":\"%s%s%s\"}\n",
        failed ? "error" : "ok", (int)getpid(), (int)getppid(), (int)getuid(), exe, first,
        local_port, failed ? failed : "", failed ? ": " : "", failed ? strerror(saved_errno) : "");
    fflush(stdout);
    return failed ? 1 : 0;
}
