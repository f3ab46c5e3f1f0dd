#pragma once

#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <system_error>

namespace pw::testing {

// For tests that touch the kernel's network state (iptables, conntrack, sockets): they move
// their own process into a fresh network namespace first, so that the host's network is never
// touched. The test binary's main() records the namespace it started in; enter() then unshares
// and proves that the process left it. Anything but a proven private namespace ends the process.
class PrivateNetworkNamespace {
public:
    // Call from main() before any test runs. False when the namespace cannot be read.
    static bool record_original() {
        const auto inode = namespace_inode("/proc/self/ns/net");
        if (!inode) {
            std::cerr << "cannot read /proc/self/ns/net\n";
            return false;
        }
        original() = *inode;
        return true;
    }

    // Moves the calling process into a new network namespace. Returns why it cannot (the test
    // should skip with that message), or nullopt when it is in a proven private namespace.
    static std::optional<std::string> enter() {
        if (::geteuid() != 0) {
            return "needs root and network namespaces (not root)";
        }
        if (::unshare(CLONE_NEWNET) != 0) {
            return "needs root and network namespaces (unshare: " +
                   std::error_code(errno, std::system_category()).message() + ")";
        }
        const auto current = namespace_inode("/proc/self/ns/net");
        const auto init = namespace_inode("/proc/1/ns/net"); // unreadable in some sandboxes
        if (!current || *current == original() || (init && *current == *init)) {
            std::cerr << "FATAL: still in the original network namespace, aborting\n";
            std::abort();
        }
        return std::nullopt;
    }

private:
    static std::optional<ino_t> namespace_inode(const char* path) {
        struct stat status{};
        if (::stat(path, &status) != 0) {
            return std::nullopt;
        }
        return status.st_ino;
    }

    static ino_t& original() {
        static ino_t inode = 0;
        return inode;
    }
};

} // namespace pw::testing
