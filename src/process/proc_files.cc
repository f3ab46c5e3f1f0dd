#include "process/proc_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

namespace pw::process {

Result<UniqueFd> open_directory(int dir_fd, const char* path) {
    const int fd = ::openat(dir_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return fail_errno(std::string("open ") + path, errno);
    }
    return UniqueFd(fd);
}

Result<DirHandle> directory_stream(UniqueFd directory) {
    DIR* dir = ::fdopendir(directory.get());
    if (dir == nullptr) {
        return fail_errno("fdopendir", errno);
    }
    // The DIR now owns the fd; closedir() closes it.
    static_cast<void>(directory.release());
    return DirHandle(dir);
}

Result<std::string> read_file_at(int dir_fd, const char* path, std::size_t max_bytes) {
    const UniqueFd file(::openat(dir_fd, path, O_RDONLY | O_CLOEXEC));
    if (!file.valid()) {
        return fail_errno(std::string("open ") + path, errno);
    }
    std::string content;
    constexpr std::size_t kChunk = 4096;
    while (content.size() < max_bytes) {
        const std::size_t offset = content.size();
        const std::size_t want = std::min(kChunk, max_bytes - offset);
        content.resize(offset + want);
        const ssize_t got = ::read(file.get(), content.data() + offset, want);
        if (got < 0) {
            if (errno == EINTR) {
                content.resize(offset);
                continue;
            }
            return fail_errno(std::string("read ") + path, errno);
        }
        content.resize(offset + static_cast<std::size_t>(got));
        if (got == 0) {
            break;
        }
    }
    return content;
}

Result<std::string> read_link_at(int dir_fd, const char* path, std::size_t max_bytes) {
    std::string target(max_bytes, '\0');
    const ssize_t length = ::readlinkat(dir_fd, path, target.data(), target.size());
    if (length < 0) {
        return fail_errno(std::string("readlink ") + path, errno);
    }
    target.resize(static_cast<std::size_t>(length));
    return target;
}

std::optional<int> parse_pid(std::string_view name) {
    const auto pid = parse_decimal<int>(name);
    if (!pid || *pid <= 0) {
        return std::nullopt;
    }
    return pid;
}

std::optional<std::uint64_t> parse_socket_link(std::string_view target) {
    constexpr std::string_view kPrefix = "socket:[";
    if (!target.starts_with(kPrefix) || !target.ends_with(']')) {
        return std::nullopt;
    }
    const std::string_view digits =
        target.substr(kPrefix.size(), target.size() - kPrefix.size() - 1);
    return parse_decimal<std::uint64_t>(digits);
}

bool open_directory_once(UniqueFd& directory, const std::filesystem::path& path) {
    if (directory.valid()) {
        return true;
    }
    auto opened = open_directory(AT_FDCWD, path.c_str());
    if (!opened) {
        return false;
    }
    directory = std::move(*opened);
    return true;
}

} // namespace pw::process
