#pragma once

// RAII for SQLite's handles and one execution of a prepared statement, shared by the stores that
// keep a SQLite file (profile/database.cc, history/history_store.cc). Header-only: the libraries
// that include it link SQLite themselves, so that pw_common does not.

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace pw::sqlite {

struct SqliteCloser {
    void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using SqliteHandle = std::unique_ptr<sqlite3, SqliteCloser>;

struct StatementFinalizer {
    void operator()(sqlite3_stmt* statement) const noexcept { sqlite3_finalize(statement); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

// One execution of a prepared statement: binds, steps, and resets it (and its bindings) on
// scope exit, so that the next use starts clean even after an error. Texts are bound
// SQLITE_STATIC: they must outlive the use. Binding a name that the SQL does not contain is a
// no-op, so that queries built from optional filters bind every value unconditionally.
class StatementUse {
public:
    explicit StatementUse(sqlite3_stmt* statement) : statement_(statement) {}
    StatementUse(const StatementUse&) = delete;
    StatementUse& operator=(const StatementUse&) = delete;
    StatementUse(StatementUse&&) = delete;
    StatementUse& operator=(StatementUse&&) = delete;
    ~StatementUse() {
        sqlite3_reset(statement_);
        sqlite3_clear_bindings(statement_);
    }

    StatementUse& bind(int index, std::string_view text) {
        keep_first(sqlite3_bind_text64(statement_, index, text.data(), text.size(), SQLITE_STATIC,
                                       SQLITE_UTF8));
        return *this;
    }
    StatementUse& bind(int index, std::int64_t number) {
        keep_first(sqlite3_bind_int64(statement_, index, number));
        return *this;
    }
    StatementUse& bind(int index, std::uint64_t number) {
        return bind(index, static_cast<std::int64_t>(number));
    }
    template <typename T>
    StatementUse& bind(const char* name, const T& value) {
        if (const int index = sqlite3_bind_parameter_index(statement_, name); index > 0) {
            bind(index, value);
        }
        return *this;
    }
    // SQLITE_ROW, SQLITE_DONE or an error code (also a failed bind).
    int step() { return bind_result_ != SQLITE_OK ? bind_result_ : sqlite3_step(statement_); }

    [[nodiscard]] std::int64_t integer(int column) const {
        return sqlite3_column_int64(statement_, column);
    }
    [[nodiscard]] bool is_null(int column) const {
        return sqlite3_column_type(statement_, column) == SQLITE_NULL;
    }
    [[nodiscard]] std::string text(int column) const {
        const unsigned char* bytes = sqlite3_column_text(statement_, column);
        if (bytes == nullptr) {
            return {};
        }
        return {reinterpret_cast<const char*>(bytes),
                static_cast<std::size_t>(sqlite3_column_bytes(statement_, column))};
    }

private:
    void keep_first(int result) {
        if (bind_result_ == SQLITE_OK) {
            bind_result_ = result;
        }
    }

    sqlite3_stmt* statement_;
    int bind_result_ = SQLITE_OK;
};

} // namespace pw::sqlite
