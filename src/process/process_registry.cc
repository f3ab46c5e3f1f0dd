#include "process/process_registry.h"

#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <utility>
#include <vector>

#include "process/proc_files.h"

namespace pw::process {
namespace {

constexpr std::size_t kStatMaxBytes = 4096;
constexpr std::size_t kStatusMaxBytes = std::size_t{16} * 1024;
constexpr std::size_t kCommandLineMaxBytes = std::size_t{64} * 1024;
constexpr std::size_t kFlatpakInfoMaxBytes = std::size_t{16} * 1024;
constexpr std::size_t kCgroupMaxBytes = std::size_t{16} * 1024; // v1: one line per hierarchy
constexpr std::string_view kDeletedSuffix = " (deleted)";

std::optional<std::string> path_component_after(std::string_view path, std::string_view prefix) {
    if (!path.starts_with(prefix)) {
        return std::nullopt;
    }
    path.remove_prefix(prefix.size());
    return std::string(path.substr(0, path.find('/')));
}

} // namespace

ProcessRegistry::ProcessRegistry(std::filesystem::path proc_root, const Clock& clock,
                                 RegistryOptions options)
    : proc_root_(std::move(proc_root)),
      clock_(clock),
      options_(options),
      self_pid_(options.self_pid.value_or(::getpid())) {}

bool ProcessRegistry::open_root() {
    return open_directory_once(root_fd_, proc_root_);
}

Result<std::shared_ptr<const ProcessInfo>> ProcessRegistry::lookup(int pid) {
    ++counters_.lookups;
    if (pid == 0) {
        return kernel_identity();
    }
    if (pid < 0) {
        ++counters_.failures;
        return fail("process lookup: negative pid " + std::to_string(pid));
    }
    if (!open_root()) {
        ++counters_.failures;
        return fail_errno("open " + proc_root_.string(), errno);
    }
    // Every read goes through this one directory fd. Once the process exits, reads under it fail
    // (ESRCH/ENOENT) even if the PID is reused meanwhile, so the fields cannot mix two processes.
    auto pid_dir = open_directory(root_fd_.get(), std::to_string(pid).c_str());
    if (!pid_dir) {
        ++counters_.failures;
        return std::unexpected(pid_dir.error());
    }
    const auto stat_text = read_file_at(pid_dir->get(), "stat", kStatMaxBytes);
    if (!stat_text) {
        ++counters_.failures;
        return std::unexpected(stat_text.error());
    }
    const auto stat = parse_stat(*stat_text);
    if (!stat) {
        ++counters_.failures;
        return std::unexpected(stat.error());
    }
    const Key key{.pid = pid, .start_time = stat->start_time};
    if (const auto cached = entries_.find(key); cached != entries_.end()) {
        ++counters_.cache_hits;
        return cached->second.info;
    }
    auto info = load(pid_dir->get(), *stat);
    if (!info) {
        ++counters_.failures;
        return info;
    }
    ++counters_.loads;
    entries_.insert_or_assign(key, Entry{.info = *info, .gone_since = std::nullopt});
    return info;
}

Result<std::shared_ptr<const ProcessInfo>> ProcessRegistry::lookup_started(
    int pid, std::uint64_t start_time) {
    if (const auto cached = entries_.find(Key{.pid = pid, .start_time = start_time});
        cached != entries_.end()) {
        ++counters_.lookups;
        ++counters_.cache_hits;
        return cached->second.info;
    }
    auto info = lookup(pid);
    if (info && (*info)->kind != IdentityKind::Kernel && (*info)->start_time != start_time) {
        ++counters_.failures;
        return fail("process " + std::to_string(pid) + " is gone; its PID now belongs to " +
                    "a process started later");
    }
    return info;
}

void ProcessRegistry::adopt(std::shared_ptr<const ProcessInfo> info) {
    const Key key{.pid = info->pid, .start_time = info->start_time};
    entries_.insert_or_assign(key, Entry{.info = std::move(info), .gone_since = clock_.now()});
}

Result<std::shared_ptr<const ProcessInfo>> ProcessRegistry::load(int pid_dir,
                                                                 const StatFields& stat) {
    auto info = std::make_shared<ProcessInfo>();
    info->pid = stat.pid;
    info->start_time = stat.start_time;
    info->parent_pid = stat.parent_pid;

    const auto status = read_file_at(pid_dir, "status", kStatusMaxBytes);
    if (!status) {
        return std::unexpected(status.error());
    }
    const auto uid = parse_status_uid(*status);
    if (!uid) {
        return fail("status: no Uid line for pid " + std::to_string(stat.pid));
    }
    info->uid = *uid;
    info->user = user_name(*uid);

    if ((stat.flags & kKernelThreadFlag) != 0) {
        // Kernel threads have no executable and no command line.
        info->kind = IdentityKind::Kernel;
        info->identity_path = kernel_identity()->identity_path;
        return info;
    }
    if (stat.pid == self_pid_) {
        info->kind = IdentityKind::Portwarden;
    }
    if (auto exe = read_link_at(pid_dir, "exe")) {
        if (exe->ends_with(kDeletedSuffix)) {
            exe->resize(exe->size() - kDeletedSuffix.size());
            info->deleted = true;
        }
        info->executable = std::move(*exe);
    }
    if (const auto command_line = read_file_at(pid_dir, "cmdline", kCommandLineMaxBytes)) {
        info->command_line = split_nul(*command_line);
    }
    add_identity(pid_dir, *info);
    add_packaging(pid_dir, *info);
    add_cgroup(pid_dir, *info);
    return info;
}

void ProcessRegistry::add_identity(int pid_dir, ProcessInfo& info) const {
    info.identity_path = info.executable;
    const auto family = interpreter_family(info.executable);
    if (!family) {
        return;
    }
    const auto script = script_argument(*family, info.command_line);
    if (!script) {
        return; // an interactive shell, inline code: the interpreter is the identity
    }
    std::filesystem::path path(*script);
    if (path.is_relative()) {
        // Relative to the working directory the interpreter started in. A script that changed
        // directory since is misplaced here; /proc has no record of the start directory.
        if (const auto cwd = read_link_at(pid_dir, "cwd")) {
            path = std::filesystem::path(*cwd) / path;
        }
    }
    info.identity_path = path.lexically_normal().string();
    info.tags.interpreter = info.executable;
}

void ProcessRegistry::add_packaging(int pid_dir, ProcessInfo& info) const {
    // environ belongs to the process's owner; unreadable (not root) just means fewer tags.
    std::string environ =
        read_file_at(pid_dir, "environ", options_.max_environ_bytes).value_or(std::string());
    if (environ.size() >= options_.max_environ_bytes && !environ.ends_with('\0')) {
        // Cut: drop the partial last entry rather than keep a truncated value.
        const std::size_t last_nul = environ.rfind('\0');
        environ.resize(last_nul == std::string::npos ? 0 : last_nul + 1);
    }
    info.environment = parse_environ(environ);

    info.tags.flatpak_id = environment_value(environ, "FLATPAK_ID");
    if (!info.tags.flatpak_id) {
        if (const auto flatpak_info =
                read_file_at(pid_dir, "root/.flatpak-info", kFlatpakInfoMaxBytes)) {
            info.tags.flatpak_id = flatpak_info_name(*flatpak_info).value_or(std::string());
        }
    }
    info.tags.snap_name = environment_value(environ, "SNAP_NAME");
    if (!info.tags.snap_name) {
        info.tags.snap_name = path_component_after(info.executable, "/snap/");
    }
    info.tags.appimage = environment_value(environ, "APPIMAGE");
    if (!info.tags.appimage) {
        if (const auto mount = path_component_after(info.executable, "/tmp/.mount_")) {
            info.tags.appimage = "/tmp/.mount_" + *mount;
        }
    }
}

void ProcessRegistry::add_cgroup(int pid_dir, ProcessInfo& info) {
    const auto cgroup = read_file_at(pid_dir, "cgroup", kCgroupMaxBytes);
    if (!cgroup) {
        return; // no cgroup support, or the process is gone: no unit, no container
    }
    CgroupFacts facts = parse_cgroup(*cgroup);
    info.systemd_unit = std::move(facts.systemd_unit);
    info.container_id = std::move(facts.container_id);
    info.container_name = std::move(facts.container_name);
}

std::vector<std::shared_ptr<const ProcessInfo>> ProcessRegistry::ancestors(
    const ProcessInfo& process) {
    std::vector<std::shared_ptr<const ProcessInfo>> chain;
    std::vector<int> seen{process.pid};
    int parent_pid = process.parent_pid;
    std::uint64_t child_start = process.start_time;
    while (chain.size() < kMaxAncestors && parent_pid > 1 &&
           std::ranges::find(seen, parent_pid) == seen.end()) {
        auto parent = lookup(parent_pid);
        if (!parent || (*parent)->kind == IdentityKind::Kernel ||
            (*parent)->start_time > child_start) {
            break;
        }
        seen.push_back(parent_pid);
        parent_pid = (*parent)->parent_pid;
        child_start = (*parent)->start_time;
        chain.push_back(std::move(*parent));
    }
    return chain;
}

std::size_t ProcessRegistry::expire() {
    const Clock::TimePoint now = clock_.now();
    std::size_t removed = 0;
    for (auto entry = entries_.begin(); entry != entries_.end();) {
        auto& [key, value] = *entry;
        if (!value.gone_since && !alive(key)) {
            value.gone_since = now;
        }
        if (value.gone_since && now - *value.gone_since >= options_.keep_after_exit) {
            entry = entries_.erase(entry);
            ++removed;
            continue;
        }
        ++entry;
    }
    counters_.expired += removed;
    return removed;
}

bool ProcessRegistry::alive(const Key& key) const {
    const std::string path = std::to_string(key.pid) + "/stat";
    const auto stat_text = read_file_at(root_fd_.get(), path.c_str(), kStatMaxBytes);
    if (!stat_text) {
        return false;
    }
    const auto stat = parse_stat(*stat_text);
    return stat && stat->start_time == key.start_time;
}

const std::string& ProcessRegistry::user_name(std::uint32_t uid) {
    if (const auto known = users_.find(uid); known != users_.end()) {
        return known->second;
    }
    std::string name = std::to_string(uid);
    std::vector<char> buffer(1024);
    passwd entry{};
    passwd* result = nullptr;
    int error = 0;
    while ((error = ::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &result)) == ERANGE &&
           buffer.size() < std::size_t{1024} * 1024) {
        buffer.resize(buffer.size() * 2);
    }
    if (error == 0 && result != nullptr && result->pw_name != nullptr) {
        name = result->pw_name;
    }
    return users_.emplace(uid, std::move(name)).first->second;
}

} // namespace pw::process
