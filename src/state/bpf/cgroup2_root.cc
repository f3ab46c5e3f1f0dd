// find_cgroup2_root() and is_cgroup2_directory(): plain statfs(2), no libbpf, so that the stub
// build has them too.
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <filesystem>
#include <string>
#include <system_error>

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

Result<std::unique_ptr<PrivateCgroup2Mount>> PrivateCgroup2Mount::create(
    const std::filesystem::path& parent) {
    std::error_code error;
    std::filesystem::create_directories(parent, error);
    if (error) {
        return fail("create " + parent.string(), error);
    }
    std::filesystem::permissions(parent, std::filesystem::perms::owner_all, error);
    // A fresh directory: nothing is mounted there yet, so the mount hides nothing.
    std::string directory = (parent / "cgroup2-XXXXXX").string();
    if (::mkdtemp(directory.data()) == nullptr) {
        return fail_errno("create a directory under " + parent.string(), errno);
    }
    if (::mount("cgroup2", directory.c_str(), "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                nullptr) != 0) {
        const int saved_errno = errno;
        ::rmdir(directory.c_str());
        return fail_errno("mount cgroup2 on " + directory, saved_errno);
    }
    return std::unique_ptr<PrivateCgroup2Mount>(new PrivateCgroup2Mount(directory));
}

PrivateCgroup2Mount::~PrivateCgroup2Mount() {
    // MNT_DETACH: a file the kernel still holds open there must not keep the mount visible.
    ::umount2(path_.c_str(), MNT_DETACH);
    ::rmdir(path_.c_str());
}

Result<Cgroup2Root> find_or_mount_cgroup2_root(const std::filesystem::path& run_directory) {
    auto found = find_cgroup2_root();
    if (found) {
        return Cgroup2Root{.path = std::move(*found), .private_mount = nullptr};
    }
    auto mounted = PrivateCgroup2Mount::create(run_directory);
    if (!mounted) {
        return fail(found.error().what +
                        ", and a private one could not be mounted: " + mounted.error().message(),
                    mounted.error().reason);
    }
    std::filesystem::path path = (*mounted)->path();
    return Cgroup2Root{.path = std::move(path), .private_mount = std::move(*mounted)};
}

} // namespace pw::state::bpf
