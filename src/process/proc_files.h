#pragma once

#include <dirent.h>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "common/result.h"
#include "common/unique_fd.h"

// Small readers for /proc files, relative to directory fds so that the hot path never builds
// absolute paths or goes through std::filesystem. Every function tolerates a process that exits
// while it is being read: the error is returned, never thrown or asserted.
namespace pw::process {

struct DirCloser {
    void operator()(DIR* dir) const noexcept { ::closedir(dir); }
};
using DirHandle = std::unique_ptr<DIR, DirCloser>;

// Opens `path` (relative to `dir_fd`, or absolute) as a directory.
[[nodiscard]] Result<UniqueFd> open_directory(int dir_fd, const char* path);

// Opens the directory `path` into `directory` unless it is open already (the proc root is
// opened lazily and kept). True when `directory` is open afterwards.
[[nodiscard]] bool open_directory_once(UniqueFd& directory, const std::filesystem::path& path);

// Wraps an open directory fd for readdir(). Takes ownership of the fd.
[[nodiscard]] Result<DirHandle> directory_stream(UniqueFd directory);

// Reads at most `max_bytes` of a file; a longer file is cut, not an error (environ, cmdline).
[[nodiscard]] Result<std::string> read_file_at(int dir_fd, const char* path, std::size_t max_bytes);

// The target of a symbolic link; /proc links are short, so `max_bytes` bounds the result.
[[nodiscard]] Result<std::string> read_link_at(int dir_fd, const char* path,
                                               std::size_t max_bytes = 4096);

// A whole string_view as one decimal number: no sign, no spaces, nothing after it.
template <typename Number>
[[nodiscard]] std::optional<Number> parse_decimal(std::string_view text) {
    Number value{};
    const char* const end = text.data() + text.size();
    // NOLINTNEXTLINE(bugprone-suspicious-stringview-data-usage): [data, end) is bounded
    const auto [ptr, error] = std::from_chars(text.data(), end, value);
    if (text.empty() || error != std::errc() || ptr != end) {
        return std::nullopt;
    }
    return value;
}

// Parses a decimal PID directory name ("4242"); anything else ("self", "net") is not a PID.
[[nodiscard]] std::optional<int> parse_pid(std::string_view name);

// Parses the target of a socket fd link, "socket:[12345]", into the inode number.
[[nodiscard]] std::optional<std::uint64_t> parse_socket_link(std::string_view target);

} // namespace pw::process
