// find_cgroup2_root() and is_cgroup2_directory(): plain statfs(2), no libbpf, so that the stub
// build has them too.
#include <linux/magic.h>
#include <sys/statfs.h>

#include <array>
#include <filesystem>

#include "state/bpf/socket_owner_records.h"

namespace pw::state::bpf {

bool is_cgroup2_directory(const std::filesystem::path& path) {
    struct statfs info{};
    if (::statfs(path.c_str(), &info) != 0) {
        return false;
    }
    return info.f_type == CGROUP2_SUPER_MAGIC;
}

Result<std::filesystem::path> resolve_cgroup2_directory(const std::filesystem::path& path) {
    if (is_cgroup2_directory(path)) {
        return path;
    }
    return fail(path.string() +
                " is not a cgroup v2 directory (note: `ip netns exec` remounts /sys without the "
                "cgroup file systems; enter a network namespace with `nsenter --net=...` to keep "
                "them)");
}

Result<std::filesystem::path> find_cgroup2_root() {
    const std::array<std::filesystem::path, 2> candidates{"/sys/fs/cgroup",
                                                          "/sys/fs/cgroup/unified"};
    for (const auto& candidate : candidates) {
        if (auto resolved = resolve_cgroup2_directory(candidate)) {
            return resolved;
        }
    }
    return fail("no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified");
}

} // namespace pw::state::bpf
