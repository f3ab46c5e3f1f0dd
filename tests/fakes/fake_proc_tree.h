#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace pw::process::testing {

// What a fake process looks like in /proc. Defaults give an ordinary /usr/bin/curl.
struct FakeProcess {
    int pid = 0;
    std::string comm = "curl";
    int parent_pid = 1;
    std::uint64_t start_time = 1000;
    std::uint32_t flags = 0;
    std::uint32_t uid = 1000;
    std::string exe = "/usr/bin/curl";
    std::vector<std::string> command_line = {"curl", "https://example.org"};
    std::vector<std::string> environ = {"HOME=/home/user"};
    std::string cwd = "/home/user";
    // The text of <pid>/cgroup; empty: no such file. "{}" for GCC's -Wmissing-field-initializers.
    std::string cgroup{}; // NOLINT(readability-redundant-member-init): see above
};

// A fake /proc in its own temporary directory, removed at the end of the test (CONVENTIONS
// §5.5). Symlinks hold the same targets as the kernel's ("socket:[777]", "/usr/bin/curl").
class FakeProcTree {
public:
    FakeProcTree() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "pw-fake-proc-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        root_ = pattern;
    }
    ~FakeProcTree() {
        std::error_code ignored;
        std::filesystem::remove_all(root_, ignored);
    }
    FakeProcTree(const FakeProcTree&) = delete;
    FakeProcTree& operator=(const FakeProcTree&) = delete;
    FakeProcTree(FakeProcTree&&) = delete;
    FakeProcTree& operator=(FakeProcTree&&) = delete;

    [[nodiscard]] const std::filesystem::path& root() const { return root_; }
    [[nodiscard]] std::filesystem::path dir(int pid) const { return root_ / std::to_string(pid); }

    void add(const FakeProcess& process) const {
        const auto directory = dir(process.pid);
        std::filesystem::create_directories(directory / "fd");
        write_stat(process);
        write(directory / "status", "Name:\t" + process.comm + "\nUid:\t" +
                                        std::to_string(process.uid) + "\t" +
                                        std::to_string(process.uid) + "\t0\t0\n");
        if (!process.exe.empty()) {
            std::filesystem::create_symlink(process.exe, directory / "exe");
        }
        write(directory / "cmdline", joined(process.command_line));
        write(directory / "environ", joined(process.environ));
        std::filesystem::create_symlink(process.cwd, directory / "cwd");
        if (!process.cgroup.empty()) {
            write(directory / "cgroup", process.cgroup);
        }
        add_fd(process.pid, 0, "/dev/null");
    }

    // Only <pid>/fd: all that InodePidIndex reads, and much quicker to make than add().
    void add_fd_directory(int pid) const { std::filesystem::create_directories(dir(pid) / "fd"); }

    // Rewrites stat only, as when a PID is reused or comm changes.
    void write_stat(const FakeProcess& process) const {
        std::string stat = std::to_string(process.pid) + " (" + process.comm + ") S " +
                           std::to_string(process.parent_pid);
        for (int field = 5; field <= 30; ++field) {
            std::string value = "0";
            if (field == 9) {
                value = std::to_string(process.flags);
            } else if (field == 22) {
                value = std::to_string(process.start_time);
            }
            stat += " " + value;
        }
        write(dir(process.pid) / "stat", stat + "\n");
    }

    void add_fd(int pid, int fd, const std::string& target) const {
        std::filesystem::create_symlink(target, dir(pid) / "fd" / std::to_string(fd));
    }
    void add_socket(int pid, int fd, std::uint64_t inode) const {
        add_fd(pid, fd, "socket:[" + std::to_string(inode) + "]");
    }
    void close_fd(int pid, int fd) const {
        std::filesystem::remove(dir(pid) / "fd" / std::to_string(fd));
    }
    void remove(int pid) const { std::filesystem::remove_all(dir(pid)); }

    static void write(const std::filesystem::path& path, const std::string& content) {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << content;
    }

private:
    static std::string joined(const std::vector<std::string>& parts) {
        std::string text;
        for (const auto& part : parts) {
            text += part;
            text.push_back('\0');
        }
        return text;
    }

    std::filesystem::path root_;
};

} // namespace pw::process::testing
