#pragma once

#include <sqlite3.h>
#include <stdlib.h> // NOLINT(modernize-deprecated-headers): mkdtemp is POSIX

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "history/record.h"

namespace pw::history::testing {

namespace fs = std::filesystem;

// A directory of its own per test, removed afterwards.
class TempDir {
public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "pw-history-XXXXXX").string();
        if (::mkdtemp(pattern.data()) != nullptr) {
            path_ = pattern;
        }
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    TempDir(TempDir&&) = delete;
    TempDir& operator=(TempDir&&) = delete;
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    [[nodiscard]] const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

// A second, independent SQLite connection to look at the file the way another process would.
class RawDatabase {
public:
    explicit RawDatabase(const fs::path& file) {
        sqlite3* raw = nullptr;
        const int result = sqlite3_open_v2(file.c_str(), &raw,
                                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
        db_.reset(raw);
        EXPECT_EQ(result, SQLITE_OK) << file;
    }

    void exec(const std::string& sql) {
        char* message = nullptr;
        const int result = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &message);
        EXPECT_EQ(result, SQLITE_OK) << sql << ": " << (message != nullptr ? message : "");
        sqlite3_free(message);
    }

    // The first column of the first row as text ("" when there is no row).
    std::string text(const std::string& sql) {
        sqlite3_stmt* raw = nullptr;
        EXPECT_EQ(sqlite3_prepare_v2(db_.get(), sql.c_str(), -1, &raw, nullptr), SQLITE_OK)
            << sql << ": " << sqlite3_errmsg(db_.get());
        const std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> statement(
            raw, &sqlite3_finalize);
        if (sqlite3_step(raw) != SQLITE_ROW) {
            return {};
        }
        const unsigned char* value = sqlite3_column_text(raw, 0);
        return value == nullptr ? std::string{} : reinterpret_cast<const char*>(value);
    }

private:
    struct Closer {
        void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
    };
    std::unique_ptr<sqlite3, Closer> db_;
};

inline std::string read_bytes(const fs::path& file) {
    std::ifstream stream(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const fs::path& file, std::string_view bytes) {
    std::ofstream stream(file, std::ios::binary | std::ios::trunc);
    stream.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A connection of application `profile` to `domain`, started at `start_ms`.
inline ConnectionRecord connection_record(std::uint64_t id, std::string profile, std::string domain,
                                          std::int64_t start_ms,
                                          Verdict verdict = Verdict::Accept) {
    return ConnectionRecord{
        .id = id,
        .profile_id = std::move(profile),
        .executable = "/usr/bin/curl",
        .pid = 4242,
        .uid = 1000,
        .user = "alice",
        .local_address = "192.0.2.1",
        .local_port = 40000,
        .remote_address = "198.51.100.7",
        .remote_port = 443,
        .protocol = 6,
        .direction = Direction::Outbound,
        .domain = std::move(domain),
        .verdict = verdict,
        .reason = "default action: permit (global)",
        .start_ms = start_ms,
    };
}

inline DnsQueryRecord dns_record(std::int64_t time_ms, std::string profile, std::string domain,
                                 bool blocked = false) {
    return DnsQueryRecord{
        .id = 0,
        .time_ms = time_ms,
        .profile_id = std::move(profile),
        .executable = "/usr/bin/firefox",
        .pid = 77,
        .domain = std::move(domain),
        .type = 1,
        .rcode = "NOERROR",
        .source = blocked ? "blocked" : "upstream",
        .blocked = blocked,
        .reason = blocked ? "filter list ads" : "",
        .answers = blocked ? "0.0.0.17" : "192.0.2.80",
    };
}

} // namespace pw::history::testing
