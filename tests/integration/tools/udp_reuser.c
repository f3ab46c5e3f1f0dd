// UDP datagrams from a fixed local port, one at a time, each waiting for its echo: for the
// reused-5-tuple test (issue 10 item 8). The test copies it under two names (a permitted and a
// blocked application) and runs them one right after the other on the same port.
//
//   udp_reuser HOST PORT SOURCE_PORT COUNT INTERVAL_MS
//
// Prints one JSON line when done: {"pid":..., "sent":N, "echoes":[true,false,...]}, echoes[i]
// telling whether datagram i was echoed within INTERVAL_MS. C11 and POSIX only.
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: udp_reuser HOST PORT SOURCE_PORT COUNT INTERVAL_MS\n");
        return 2;
    }
    const char* host = argv[1];
    const int port = atoi(argv[2]);
    const int source_port = atoi(argv[3]);
    const int count = atoi(argv[4]);
    const int interval_ms = atoi(argv[5]);
    struct sockaddr_in remote = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, host, &remote.sin_addr) != 1 || count <= 0 || count > 1000) {
        fprintf(stderr, "udp_reuser: bad arguments\n");
        return 2;
    }
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in local = {.sin_family = AF_INET,
                                .sin_port = htons((unsigned short)source_port),
                                .sin_addr = {.s_addr = htonl(INADDR_ANY)}};
    if (fd < 0 || bind(fd, (struct sockaddr*)&local, sizeof(local)) != 0) {
        perror("udp_reuser: bind");
        return 1;
    }
    printf("{\"pid\":%d,\"sent\":%d,\"echoes\":[", (int)getpid(), count);
    for (int index = 0; index < count; ++index) {
        char message[64];
        const int length = snprintf(message, sizeof(message), "pwt-reuse %d %d", getpid(), index);
        // Errors (an ICMP error from a reject, reported on a later call) count as no echo.
        sendto(fd, message, (size_t)length, 0, (struct sockaddr*)&remote, sizeof(remote));
        bool echoed = false;
        struct pollfd wait = {.fd = fd, .events = POLLIN};
        while (poll(&wait, 1, interval_ms) > 0) {
            char reply[64];
            const ssize_t got = recv(fd, reply, sizeof(reply), MSG_DONTWAIT);
            if (got == length && memcmp(reply, message, (size_t)length) == 0) {
                echoed = true;
                break;
            }
            if (got < 0) {
                break;
            }
        }
        if (echoed) {
            // Keep the interval: the next datagram leaves INTERVAL_MS after this one.
            poll(NULL, 0, interval_ms / 2);
        }
        printf("%s%s", index == 0 ? "" : ",", echoed ? "true" : "false");
    }
    printf("]}\n");
    fflush(stdout);
    close(fd);
    return 0;
}
