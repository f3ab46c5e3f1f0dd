#pragma once

#include <cstdint>

#include "common/result.h"
#include "dns/nameserver.h"

namespace pw::dns {

// The process's soft limit of open files (RLIMIT_NOFILE) before and after
// raise_descriptor_limit(), and the hard limit it may not pass.
struct DescriptorLimit {
    std::uint64_t before = 0;
    std::uint64_t after = 0;
    std::uint64_t hard = 0;
};

// Descriptors the daemon should be allowed for the nameserver's TCP `limits`: one per connection
// the table may hold, plus room for everything else the daemon opens (queue and netlink sockets,
// upstream sockets, the API's connections, the database, eBPF maps and /proc reads). The common
// default soft limit of 1024 leaves too little of it once a flood fills the table, and accept()
// then fails with EMFILE while idle connections hold the rest (issue 10).
[[nodiscard]] std::uint64_t descriptors_wanted(const TcpLimits& limits);

// The soft limit to set: `wanted`, but never above `hard` and never below `soft` (a limit raised
// by the administrator stays). Pure, for the tests.
[[nodiscard]] std::uint64_t soft_descriptor_limit(std::uint64_t soft, std::uint64_t hard,
                                                  std::uint64_t wanted);

// Raises the soft RLIMIT_NOFILE to soft_descriptor_limit(); an unprivileged process may do so
// up to the hard limit. Fails only when the kernel refuses (the limit then stays as it was).
// Call once at start, before the nameserver accepts anything.
[[nodiscard]] Result<DescriptorLimit> raise_descriptor_limit(std::uint64_t wanted);

} // namespace pw::dns
