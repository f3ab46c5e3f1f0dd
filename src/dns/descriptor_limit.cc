#include "dns/descriptor_limit.h"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string>

namespace pw::dns {
namespace {

// Everything but the nameserver's TCP connections, with a wide margin: the API alone may hold 64
// connections, and the eBPF maps, queues and upstream sockets take a few dozen more.
constexpr std::uint64_t kOtherDescriptors = 1024;

} // namespace

std::uint64_t descriptors_wanted(const TcpLimits& limits) {
    return static_cast<std::uint64_t>(limits.max_connections) + kOtherDescriptors;
}

std::uint64_t soft_descriptor_limit(std::uint64_t soft, std::uint64_t hard, std::uint64_t wanted) {
    return std::max(soft, std::min(wanted, hard));
}

Result<DescriptorLimit> raise_descriptor_limit(std::uint64_t wanted) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        return fail_errno("getrlimit(RLIMIT_NOFILE)", errno);
    }
    // RLIM_INFINITY is the largest rlim_t, so it compares as "no limit" here as well.
    DescriptorLimit result{
        .before = limit.rlim_cur, .after = limit.rlim_cur, .hard = limit.rlim_max};
    const std::uint64_t target = soft_descriptor_limit(limit.rlim_cur, limit.rlim_max, wanted);
    if (target == limit.rlim_cur) {
        return result;
    }
    limit.rlim_cur = static_cast<rlim_t>(target);
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
        return fail_errno("setrlimit(RLIMIT_NOFILE, " + std::to_string(target) + ")", errno);
    }
    result.after = target;
    return result;
}

} // namespace pw::dns
