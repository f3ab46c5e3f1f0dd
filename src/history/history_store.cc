#include "history/history_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/std.h>

#include "common/sqlite.h"

namespace pw::history {

namespace fs = std::filesystem;

namespace {

// --- Schema ----------------------------------------------------------------------------------

// "PWHI": marks the file as portwarden's history, so that another program's database (or our
// settings database, "PWDB", put here by mistake) is refused instead of being "migrated".
constexpr std::int64_t kApplicationId = 0x50574849;
static_assert(kApplicationId == 1347897417);

// Version 1 (issue 11). STRICT tables: a value of the wrong type is refused, not converted.
// connections.id is the daemon's connection ID (not AUTOINCREMENT: the daemon numbers them, so
// that it can name a connection before its row is written). The indexes serve the queries:
// (started) the time range alone and the aggregates, (profile_id, started) an application's
// history, (domain, started) a domain's; the rowid that SQLite appends to each index entry
// gives the (time, id) order of the pages for free.
constexpr std::array<std::string_view, 10> kSchemaV1 = {
    "CREATE TABLE connections ("
    " id INTEGER PRIMARY KEY,"
    " profile_id TEXT NOT NULL,"
    " executable TEXT NOT NULL,"
    " pid INTEGER NOT NULL,"
    " uid INTEGER NOT NULL,"
    " user TEXT NOT NULL,"
    " local_address TEXT NOT NULL,"
    " local_port INTEGER NOT NULL,"
    " remote_address TEXT NOT NULL,"
    " remote_port INTEGER NOT NULL,"
    " protocol INTEGER NOT NULL,"
    " direction TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),"
    " domain TEXT NOT NULL,"
    " verdict TEXT NOT NULL CHECK (verdict IN ('accept', 'block', 'drop', 'reroute', 'pending')),"
    " reason TEXT NOT NULL,"
    " started INTEGER NOT NULL,"
    " ended INTEGER,"
    " bytes_in INTEGER NOT NULL DEFAULT 0,"
    " bytes_out INTEGER NOT NULL DEFAULT 0,"
    " packets_in INTEGER NOT NULL DEFAULT 0,"
    " packets_out INTEGER NOT NULL DEFAULT 0"
    ") STRICT",
    "CREATE INDEX connections_by_start ON connections (started)",
    "CREATE INDEX connections_by_profile ON connections (profile_id, started)",
    "CREATE INDEX connections_by_domain ON connections (domain, started)",
    "CREATE TABLE dns_queries ("
    " id INTEGER PRIMARY KEY,"
    " time INTEGER NOT NULL,"
    " profile_id TEXT NOT NULL,"
    " executable TEXT NOT NULL,"
    " pid INTEGER NOT NULL,"
    " domain TEXT NOT NULL,"
    " type INTEGER NOT NULL,"
    " rcode TEXT NOT NULL,"
    " source TEXT NOT NULL,"
    " blocked INTEGER NOT NULL CHECK (blocked IN (0, 1)),"
    " reason TEXT NOT NULL,"
    " answers TEXT NOT NULL"
    ") STRICT",
    "CREATE INDEX dns_queries_by_time ON dns_queries (time)",
    "CREATE INDEX dns_queries_by_profile ON dns_queries (profile_id, time)",
    "CREATE INDEX dns_queries_by_domain ON dns_queries (domain, time)",
    // next_connection_id: above every connection ID ever written, also pruned ones.
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) STRICT",
    "PRAGMA application_id = 1347897417", // kApplicationId; pragmas take no parameters
};
constexpr std::array<std::span<const std::string_view>, 1> kMigrations = {kSchemaV1};
constexpr auto kSchemaVersion = static_cast<std::int64_t>(kMigrations.size());

constexpr int kBusyTimeoutMs = 5000;
// The WAL is truncated to this after a checkpoint, so that a burst does not leave a large file.
constexpr std::int64_t kJournalSizeLimit = 64LL * 1024 * 1024;
// Reads go through a memory map of the file instead of a read() per page: a query by
// application touches a few thousand scattered rows, and in the benchmark (1 million rows,
// 330 MB) the map made it several times faster. The mapped pages are the kernel's page cache,
// shared and reclaimable, not the daemon's heap. Files above this size are mapped in part.
constexpr std::int64_t kMmapSize = 1024LL * 1024 * 1024;
// The page cache of each connection, in KiB: the interior pages of the table and its indexes,
// and the writer's dirty pages until commit.
constexpr int kPageCacheKib = 8 * 1024;
// Rows per prune transaction: a few milliseconds each, so that readers and the writer's next
// batch wait little.
constexpr std::int64_t kPruneChunk = 5000;
// The size cap prunes down to 90% of the cap, and gives up after this many rounds (indexes
// whose pages are emptied only in part shrink less than the rows removed).
constexpr double kSizeHeadroom = 0.9;
constexpr int kMaxSizeRounds = 20;

// --- Handles ---------------------------------------------------------------------------------

using sqlite::SqliteHandle;
using sqlite::Statement;
using sqlite::StatementUse;

std::string_view direction_text(Direction direction) {
    return direction == Direction::Inbound ? "inbound" : "outbound";
}

std::string_view verdict_text(Verdict verdict) {
    switch (verdict) {
        case Verdict::Accept:
            return "accept";
        case Verdict::Block:
            return "block";
        case Verdict::Drop:
            return "drop";
        case Verdict::Reroute:
            return "reroute";
        case Verdict::Pending:
            return "pending";
    }
    return "pending";
}

// The CHECK constraint admits only the texts of verdict_text(), so anything else is a bug.
Verdict parse_verdict(std::string_view text) {
    for (auto verdict :
         {Verdict::Accept, Verdict::Block, Verdict::Drop, Verdict::Reroute, Verdict::Pending}) {
        if (verdict_text(verdict) == text) {
            return verdict;
        }
    }
    return Verdict::Pending;
}

std::string ascii_lower(std::string_view text) {
    std::string lower(text);
    std::ranges::transform(lower, lower.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return lower;
}

// History names what users did: the directories we create are the owner's only (0700), and so
// is the file (0600; SQLite gives its -wal and -shm files the database file's mode).
Status create_private_directories(const fs::path& directory) {
    if (directory.empty() || fs::exists(directory)) {
        return {};
    }
    if (auto parent = create_private_directories(directory.parent_path()); !parent) {
        return parent;
    }
    if (::mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST) {
        return fail_errno(fmt::format("{}: cannot create the directory", directory), errno);
    }
    return {};
}

Status create_private_file(const fs::path& file) {
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) {
        return fail_errno(fmt::format("{}: cannot create the history", file), errno);
    }
    if (fd >= 0) {
        ::close(fd); // SQLite opens it again: an empty file is a new database
    }
    return {};
}

// Refuses what is not a regular file before SQLite sees it (a directory, a FIFO that would
// block the open); creates the directories of a new file.
Status check_location(const fs::path& file, OpenMode mode) {
    std::error_code error;
    const fs::file_status status = fs::status(file, error);
    if (status.type() == fs::file_type::not_found) {
        if (mode == OpenMode::ReadOnly) {
            return fail(fmt::format("{}: cannot open the history: it does not exist", file));
        }
        if (auto created = create_private_directories(file.parent_path()); !created) {
            return created;
        }
        return create_private_file(file);
    }
    if (error) {
        return fail(fmt::format("{}: cannot read the history file", file), error);
    }
    if (status.type() != fs::file_type::regular) {
        return fail(fmt::format("{}: cannot open the history: not a regular file", file));
    }
    return {};
}

// Writes the WHERE conditions of the filters that are set, with named parameters that
// bind_filters() binds. Only our constant texts go into the SQL.
void append_condition(std::string& sql, std::string_view condition) {
    sql += sql.ends_with("WHERE ") ? "" : " AND ";
    sql += condition;
}

} // namespace

// --- The connection --------------------------------------------------------------------------

class HistoryStore::Connection {
public:
    [[nodiscard]] static Result<std::unique_ptr<Connection>> open(const fs::path& file,
                                                                  OpenMode mode,
                                                                  IntegrityCheck check);

    Connection(std::string file, SqliteHandle db) : file_(std::move(file)), db_(std::move(db)) {}

private:
    friend class HistoryStore; // the store's methods are this class's other half

    [[nodiscard]] std::unexpected<Error> failure(std::string_view what) const {
        return fail(fmt::format("{}: {}: {}", file_, what, sqlite3_errmsg(db_.get())));
    }
    [[nodiscard]] Status exec(std::string_view sql, std::string_view what) const;
    [[nodiscard]] Result<Statement> prepare(std::string_view sql, unsigned flags = 0);
    [[nodiscard]] Result<std::int64_t> single_integer(std::string_view sql);
    [[nodiscard]] Status check_identity(std::int64_t version, OpenMode mode);
    [[nodiscard]] Status check_integrity();
    [[nodiscard]] Status configure(std::int64_t version);
    [[nodiscard]] Status migrate();
    [[nodiscard]] Status prepare_statements();
    [[nodiscard]] Status done(StatementUse& use, std::string_view what) const {
        return use.step() == SQLITE_DONE ? Status{} : failure(what);
    }
    void roll_back() const {
        // After some errors (disk full, I/O) SQLite has already rolled the transaction back.
        if (sqlite3_get_autocommit(db_.get()) == 0) {
            sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
        }
    }
    [[nodiscard]] Status write_rows(const Batch& batch, BatchOutcome& outcome);
    // Deletes, one transaction per chunk, the rows that `selection` (a SELECT of ids, with
    // ":limit") names, until it names none or `at_most` are gone. Returns how many went.
    [[nodiscard]] Result<std::int64_t> delete_chunked(std::string_view table,
                                                      std::string_view selection,
                                                      std::int64_t cutoff, std::int64_t at_most);
    [[nodiscard]] Result<std::vector<Count>> aggregate(std::string_view sql, std::int64_t from_ms,
                                                       std::int64_t to_ms, std::size_t limit);

    std::string file_;
    SqliteHandle db_;
    Statement upsert_connection_;
    Statement end_connection_;
    Statement insert_dns_query_;
    Statement raise_next_id_;
    Statement select_connection_;
};

Status HistoryStore::Connection::exec(std::string_view sql, std::string_view what) const {
    const std::string text(sql); // sqlite3_exec wants a NUL-terminated string
    if (sqlite3_exec(db_.get(), text.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
        return failure(what);
    }
    return {};
}

Result<Statement> HistoryStore::Connection::prepare(std::string_view sql, unsigned flags) {
    sqlite3_stmt* raw = nullptr;
    const int result = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                                          flags, &raw, nullptr);
    Statement statement(raw);
    if (result != SQLITE_OK) {
        return failure(fmt::format("cannot prepare \"{}\"", sql));
    }
    return statement;
}

Result<std::int64_t> HistoryStore::Connection::single_integer(std::string_view sql) {
    auto statement = prepare(sql);
    if (!statement) {
        return fail(
            fmt::format("{}: cannot read the history: {}", file_, sqlite3_errmsg(db_.get())));
    }
    StatementUse use(statement->get());
    if (use.step() != SQLITE_ROW) {
        return fail(
            fmt::format("{}: cannot read the history: {}", file_, sqlite3_errmsg(db_.get())));
    }
    return use.integer(0);
}

Status HistoryStore::Connection::check_identity(std::int64_t version, OpenMode mode) {
    if (version < 0 || version > kSchemaVersion) {
        return fail(fmt::format(
            "{}: history schema version {} is newer than this portwarden understands ({}): "
            "downgrade is not supported; keep the file and upgrade portwarden, or move the file "
            "away to start an empty history",
            file_, version, kSchemaVersion));
    }
    if (version > 0) {
        auto application = single_integer("PRAGMA application_id");
        if (!application) {
            return std::unexpected(application.error());
        }
        if (*application != kApplicationId) {
            return fail(fmt::format(
                "{}: not a portwarden history database (application_id {}, schema version {}); "
                "move it away to start an empty history",
                file_, *application, version));
        }
        if (mode == OpenMode::ReadOnly && version != kSchemaVersion) {
            return fail(fmt::format(
                "{}: history schema version {} is older than this portwarden's ({}): the daemon "
                "migrates it when it opens the file",
                file_, version, kSchemaVersion));
        }
        return {};
    }
    // Version 0 is a new file, or another program's database that never set a version.
    auto objects = single_integer("SELECT count(*) FROM sqlite_schema");
    if (!objects) {
        return std::unexpected(objects.error());
    }
    if (*objects != 0) {
        return fail(fmt::format(
            "{}: not a portwarden history database (it has tables but no schema version); move "
            "it away to start an empty history",
            file_));
    }
    if (mode == OpenMode::ReadOnly) {
        return fail(
            fmt::format("{}: the history is empty: the daemon has not created it yet", file_));
    }
    return {};
}

// quick_check rather than the settings database's integrity_check: it reads every page too,
// but does not prove each index against its table, which on a million rows costs several times
// more at every start. A history index that lost an entry makes a query miss a row; it cannot
// make a write store a wrong one (connection IDs are the rowid, not an index).
Status HistoryStore::Connection::check_integrity() {
    auto statement = prepare("PRAGMA quick_check(5)");
    if (!statement) {
        return fail(fmt::format("{}: the history is corrupt or unreadable: {}", file_,
                                sqlite3_errmsg(db_.get())));
    }
    StatementUse use(statement->get());
    std::vector<std::string> problems;
    int result = SQLITE_ROW;
    while ((result = use.step()) == SQLITE_ROW) {
        if (std::string line = use.text(0); line != "ok") {
            problems.push_back(std::move(line));
        }
    }
    if (result != SQLITE_DONE) {
        return fail(fmt::format("{}: the history is corrupt or unreadable: {}", file_,
                                sqlite3_errmsg(db_.get())));
    }
    if (!problems.empty()) {
        return fail(
            fmt::format("{}: the history is corrupt (quick_check: {}); move it away to "
                        "start an empty history",
                        file_, fmt::join(problems, "; ")));
    }
    return {};
}

Status HistoryStore::Connection::configure(std::int64_t version) {
    // Only a new file can take incremental auto-vacuum (it must be set before the first table):
    // prune() then gives freed pages back to the file system without a full VACUUM.
    if (version == 0) {
        if (auto status = exec("PRAGMA auto_vacuum = INCREMENTAL", "cannot set auto_vacuum");
            !status) {
            return status;
        }
    }
    auto mode = prepare("PRAGMA journal_mode = WAL");
    if (!mode) {
        return std::unexpected(mode.error());
    }
    {
        StatementUse use(mode->get());
        if (use.step() != SQLITE_ROW) {
            return failure("cannot switch to WAL mode");
        }
        if (const std::string current = use.text(0); current != "wal") {
            return fail(fmt::format("{}: cannot switch to WAL mode (the journal mode stays {})",
                                    file_, current));
        }
    }
    // NORMAL: in WAL mode a commit is in the log (the OS's page cache) when it returns, so a
    // kill -9 loses nothing committed; only a power cut can lose the last commits, and it never
    // corrupts the file. FULL would fsync every batch, for history a cost without a reason.
    if (auto status = exec("PRAGMA synchronous = NORMAL", "cannot set synchronous"); !status) {
        return status;
    }
    return exec(fmt::format("PRAGMA journal_size_limit = {}", kJournalSizeLimit),
                "cannot set journal_size_limit");
}

Status HistoryStore::Connection::migrate() {
    for (std::size_t index = 0; index < kMigrations.size(); ++index) {
        const auto version = static_cast<std::int64_t>(index + 1);
        if (auto begun = exec("BEGIN IMMEDIATE", "cannot start the schema migration"); !begun) {
            return begun;
        }
        // Read again inside the write lock: another process may have migrated meanwhile.
        auto current = single_integer("PRAGMA user_version");
        if (!current) {
            roll_back();
            return std::unexpected(current.error());
        }
        if (*current >= version) {
            roll_back();
            continue;
        }
        const std::string what =
            fmt::format("migration to history schema version {} failed", version);
        for (const std::string_view statement : kMigrations[index]) {
            if (auto status = exec(statement, what); !status) {
                roll_back();
                return status;
            }
        }
        // A number of ours, not a value from outside: pragmas take no bound parameters.
        if (auto status = exec(fmt::format("PRAGMA user_version = {}", version), what); !status) {
            roll_back();
            return status;
        }
        if (auto status = exec("COMMIT", what); !status) {
            roll_back();
            return status;
        }
    }
    return {};
}

// The columns of a ConnectionRecord, in the order that read_connection() reads them.
constexpr std::string_view kConnectionColumns =
    "id, profile_id, executable, pid, uid, user, local_address, local_port, remote_address,"
    " remote_port, protocol, direction, domain, verdict, reason, started, ended, bytes_in,"
    " bytes_out, packets_in, packets_out";

constexpr std::string_view kDnsColumns =
    "id, time, profile_id, executable, pid, domain, type, rcode, source, blocked, reason, answers";

Status HistoryStore::Connection::prepare_statements() {
    const std::array<std::pair<Statement*, std::string>, 5> all = {{
        // A second record of one ID (new, then decided) replaces what it knows; the end and
        // the counts, which only ConnectionEnd writes, stay.
        {&upsert_connection_,
         "INSERT INTO connections (id, profile_id, executable, pid, uid, user, local_address,"
         " local_port, remote_address, remote_port, protocol, direction, domain, verdict,"
         " reason, started)"
         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
         " ON CONFLICT (id) DO UPDATE SET profile_id = excluded.profile_id,"
         " executable = excluded.executable, pid = excluded.pid, uid = excluded.uid,"
         " user = excluded.user, local_address = excluded.local_address,"
         " local_port = excluded.local_port, remote_address = excluded.remote_address,"
         " remote_port = excluded.remote_port, protocol = excluded.protocol,"
         " direction = excluded.direction, domain = excluded.domain,"
         " verdict = excluded.verdict, reason = excluded.reason, started = excluded.started"},
        {&end_connection_,
         "UPDATE connections SET ended = ?2, bytes_in = ?3, bytes_out = ?4, packets_in = ?5,"
         " packets_out = ?6 WHERE id = ?1"},
        {&insert_dns_query_,
         "INSERT INTO dns_queries (time, profile_id, executable, pid, domain, type, rcode,"
         " source, blocked, reason, answers)"
         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"},
        {&raise_next_id_,
         "INSERT INTO meta (key, value) VALUES ('next_connection_id', ?1)"
         " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)"},
        {&select_connection_,
         fmt::format("SELECT {} FROM connections WHERE id = ?1", kConnectionColumns)},
    }};
    for (const auto& [statement, sql] : all) {
        auto prepared = prepare(sql, SQLITE_PREPARE_PERSISTENT);
        if (!prepared) {
            return std::unexpected(prepared.error());
        }
        *statement = std::move(*prepared);
    }
    return {};
}

Result<std::unique_ptr<HistoryStore::Connection>> HistoryStore::Connection::open(
    const fs::path& file, OpenMode mode, IntegrityCheck check) {
    if (auto location = check_location(file, mode); !location) {
        return std::unexpected(location.error());
    }
    const int flags = (mode == OpenMode::ReadOnly ? SQLITE_OPEN_READONLY
                                                  : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                      SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    sqlite3* raw = nullptr;
    const int result = sqlite3_open_v2(file.c_str(), &raw, flags, nullptr);
    SqliteHandle db(raw); // closed on every path, also when the open failed
    if (result != SQLITE_OK) {
        return fail(fmt::format("{}: cannot open the history: {}", file,
                                db ? sqlite3_errmsg(db.get()) : sqlite3_errstr(result)));
    }
    sqlite3_busy_timeout(db.get(), kBusyTimeoutMs);
    // Settings of this connection only (nothing is written to the file), so that they apply
    // to read-only connections too. A failure leaves SQLite's defaults: slower, not wrong.
    sqlite3_exec(
        db.get(),
        fmt::format("PRAGMA mmap_size = {}; PRAGMA cache_size = -{}", kMmapSize, kPageCacheKib)
            .c_str(),
        nullptr, nullptr, nullptr);
    auto connection = std::make_unique<Connection>(file.string(), std::move(db));

    // Everything up to configure() only reads, so that a file we refuse keeps its bytes.
    auto version = connection->single_integer("PRAGMA user_version");
    if (!version) {
        return std::unexpected(version.error());
    }
    if (auto status = connection->check_identity(*version, mode); !status) {
        return std::unexpected(status.error());
    }
    if (*version > 0 && check == IntegrityCheck::AtOpen) {
        if (auto status = connection->check_integrity(); !status) {
            return std::unexpected(status.error());
        }
    }
    if (mode == OpenMode::ReadWrite) {
        if (auto status = connection->configure(*version); !status) {
            return std::unexpected(status.error());
        }
        if (auto status = connection->migrate(); !status) {
            return std::unexpected(status.error());
        }
        if (auto status = connection->prepare_statements(); !status) {
            return std::unexpected(status.error());
        }
    } else if (auto status = connection->prepare_statements(); !status) {
        return std::unexpected(status.error());
    }
    return connection;
}

// --- Writes ----------------------------------------------------------------------------------

Status HistoryStore::Connection::write_rows(const Batch& batch, BatchOutcome& outcome) {
    std::uint64_t highest_id = 0;
    for (const ConnectionRecord& record : batch.connections) {
        StatementUse use(upsert_connection_.get());
        use.bind(1, record.id)
            .bind(2, record.profile_id)
            .bind(3, record.executable)
            .bind(4, record.pid)
            .bind(5, static_cast<std::int64_t>(record.uid))
            .bind(6, record.user)
            .bind(7, record.local_address)
            .bind(8, static_cast<std::int64_t>(record.local_port))
            .bind(9, record.remote_address)
            .bind(10, static_cast<std::int64_t>(record.remote_port))
            .bind(11, static_cast<std::int64_t>(record.protocol))
            .bind(12, direction_text(record.direction))
            .bind(13, record.domain)
            .bind(14, verdict_text(record.verdict))
            .bind(15, record.reason)
            .bind(16, record.start_ms);
        if (auto status = done(use, fmt::format("cannot write connection {}", record.id));
            !status) {
            return status;
        }
        highest_id = std::max(highest_id, record.id);
    }
    for (const ConnectionEnd& end : batch.ends) {
        StatementUse use(end_connection_.get());
        use.bind(1, end.id)
            .bind(2, end.end_ms)
            .bind(3, end.bytes_in)
            .bind(4, end.bytes_out)
            .bind(5, end.packets_in)
            .bind(6, end.packets_out);
        if (auto status = done(use, fmt::format("cannot end connection {}", end.id)); !status) {
            return status;
        }
        if (sqlite3_changes64(db_.get()) == 0) {
            ++outcome.unmatched_ends;
        }
    }
    for (const DnsQueryRecord& query : batch.dns_queries) {
        StatementUse use(insert_dns_query_.get());
        use.bind(1, query.time_ms)
            .bind(2, query.profile_id)
            .bind(3, query.executable)
            .bind(4, query.pid)
            .bind(5, query.domain)
            .bind(6, static_cast<std::int64_t>(query.type))
            .bind(7, query.rcode)
            .bind(8, query.source)
            .bind(9, std::int64_t{query.blocked ? 1 : 0})
            .bind(10, query.reason)
            .bind(11, query.answers);
        if (auto status = done(use, fmt::format("cannot write the DNS query of {}", query.domain));
            !status) {
            return status;
        }
    }
    if (highest_id > 0) {
        StatementUse use(raise_next_id_.get());
        use.bind(1, highest_id + 1);
        return done(use, "cannot write the next connection ID");
    }
    return {};
}

// --- Reads -----------------------------------------------------------------------------------

namespace {

ConnectionRecord read_connection(const StatementUse& row) {
    ConnectionRecord record;
    record.id = static_cast<std::uint64_t>(row.integer(0));
    record.profile_id = row.text(1);
    record.executable = row.text(2);
    record.pid = row.integer(3);
    record.uid = static_cast<std::uint32_t>(row.integer(4));
    record.user = row.text(5);
    record.local_address = row.text(6);
    record.local_port = static_cast<std::uint16_t>(row.integer(7));
    record.remote_address = row.text(8);
    record.remote_port = static_cast<std::uint16_t>(row.integer(9));
    record.protocol = static_cast<std::uint8_t>(row.integer(10));
    record.direction = row.text(11) == "inbound" ? Direction::Inbound : Direction::Outbound;
    record.domain = row.text(12);
    record.verdict = parse_verdict(row.text(13));
    record.reason = row.text(14);
    record.start_ms = row.integer(15);
    if (!row.is_null(16)) {
        record.end_ms = row.integer(16);
    }
    record.bytes_in = static_cast<std::uint64_t>(row.integer(17));
    record.bytes_out = static_cast<std::uint64_t>(row.integer(18));
    record.packets_in = static_cast<std::uint64_t>(row.integer(19));
    record.packets_out = static_cast<std::uint64_t>(row.integer(20));
    return record;
}

DnsQueryRecord read_dns_query(const StatementUse& row) {
    DnsQueryRecord record;
    record.id = row.integer(0);
    record.time_ms = row.integer(1);
    record.profile_id = row.text(2);
    record.executable = row.text(3);
    record.pid = row.integer(4);
    record.domain = row.text(5);
    record.type = static_cast<std::uint16_t>(row.integer(6));
    record.rcode = row.text(7);
    record.source = row.text(8);
    record.blocked = row.integer(9) != 0;
    record.reason = row.text(10);
    record.answers = row.text(11);
    return record;
}

// The SQL of a page: the filters that are set, the keyset condition, newest first. The
// planner picks the (profile_id, time) or (domain, time) index when that filter is set, else
// the time index; each gives the (time DESC, id DESC) order without a sort.
std::string page_sql(std::string_view columns, std::string_view table, std::string_view time,
                     bool has_profile, bool has_domain, bool has_extra, std::string_view extra,
                     bool has_text, std::string_view text_columns, bool has_cursor) {
    std::string sql =
        fmt::format("SELECT {} FROM {} WHERE {} >= :from AND {} < :to", columns, table, time, time);
    if (has_profile) {
        append_condition(sql, "profile_id = :profile");
    }
    if (has_domain) {
        append_condition(sql, "domain = :domain");
    }
    if (has_extra) {
        append_condition(sql, extra);
    }
    if (has_text) {
        append_condition(sql, text_columns);
    }
    if (has_cursor) {
        append_condition(sql, fmt::format("({}, id) < (:cursor_time, :cursor_id)", time));
    }
    sql += fmt::format(" ORDER BY {} DESC, id DESC LIMIT :limit", time);
    return sql;
}

} // namespace

// --- HistoryStore ----------------------------------------------------------------------------

Result<std::unique_ptr<HistoryStore>> HistoryStore::open(const fs::path& file, OpenMode mode,
                                                         IntegrityCheck check) {
    // A new file has nothing to check: the deferred check is for what an earlier run left.
    const bool existed = fs::exists(file);
    auto connection = Connection::open(file, mode, check);
    if (!connection) {
        return std::unexpected(connection.error());
    }
    std::unique_ptr<HistoryStore> store(new HistoryStore(file, std::move(*connection)));
    store->integrity_checked_ = check == IntegrityCheck::AtOpen || !existed;
    return store;
}

Status HistoryStore::ensure_integrity() {
    if (!integrity_checked_) {
        integrity_checked_ = true;
        if (auto status = connection_->check_integrity(); !status) {
            integrity_error_ = status.error();
        }
    }
    if (integrity_error_) {
        return std::unexpected(*integrity_error_);
    }
    return {};
}

HistoryStore::HistoryStore(fs::path file, std::unique_ptr<Connection> connection)
    : file_(std::move(file)), connection_(std::move(connection)) {}

HistoryStore::~HistoryStore() = default;

Result<std::uint64_t> HistoryStore::next_id() {
    auto next = connection_->single_integer(
        "SELECT max(coalesce((SELECT max(id) FROM connections), 0) + 1,"
        " coalesce((SELECT value FROM meta WHERE key = 'next_connection_id'), 1))");
    if (!next) {
        return std::unexpected(next.error());
    }
    return static_cast<std::uint64_t>(*next);
}

Result<BatchOutcome> HistoryStore::write_batch(const Batch& batch) {
    BatchOutcome outcome;
    if (batch.empty()) {
        return outcome;
    }
    if (auto sound = ensure_integrity(); !sound) {
        return std::unexpected(sound.error());
    }
    if (auto begun = connection_->exec("BEGIN IMMEDIATE", "cannot start a history transaction");
        !begun) {
        return std::unexpected(begun.error());
    }
    if (auto status = connection_->write_rows(batch, outcome); !status) {
        connection_->roll_back();
        return std::unexpected(status.error());
    }
    if (auto status = connection_->exec("COMMIT", "cannot commit a history batch"); !status) {
        connection_->roll_back();
        return std::unexpected(status.error());
    }
    return outcome;
}

Result<std::optional<ConnectionRecord>> HistoryStore::connection(std::uint64_t id) {
    StatementUse use(connection_->select_connection_.get());
    use.bind(1, id);
    const int result = use.step();
    if (result == SQLITE_DONE) {
        return std::nullopt;
    }
    if (result != SQLITE_ROW) {
        return connection_->failure(fmt::format("cannot read connection {}", id));
    }
    return read_connection(use);
}

namespace {

// The end of the time range, lowered to just past a page cursor: the index range then starts
// at the cursor, where the row-value condition alone would be checked on every newer entry.
std::int64_t upper_bound(std::int64_t to_ms, const std::optional<PageCursor>& after) {
    if (!after || after->time_ms == std::numeric_limits<std::int64_t>::max()) {
        return to_ms;
    }
    return std::min(to_ms, after->time_ms + 1);
}

// Texts are bound SQLITE_STATIC: bind views of the query's own strings, never of a temporary.
void bind_optional_texts(StatementUse& use, const std::optional<std::string>& profile_id,
                         const std::optional<std::string>& domain) {
    if (profile_id) {
        use.bind(":profile", std::string_view(*profile_id));
    }
    if (domain) {
        use.bind(":domain", std::string_view(*domain));
    }
}

} // namespace

Result<Page<ConnectionRecord>> HistoryStore::connections(const ConnectionQuery& query) {
    constexpr std::string_view kText =
        "(instr(lower(domain), :text) OR instr(lower(executable), :text)"
        " OR instr(lower(remote_address), :text) OR instr(lower(profile_id), :text)"
        " OR instr(lower(reason), :text))";
    const std::string sql =
        page_sql(kConnectionColumns, "connections", "started", query.profile_id.has_value(),
                 query.domain.has_value(), query.verdict.has_value(), "verdict = :verdict",
                 query.text.has_value(), kText, query.after.has_value());
    auto statement = connection_->prepare(sql);
    if (!statement) {
        return std::unexpected(statement.error());
    }
    const std::size_t limit = std::clamp<std::size_t>(query.limit, 1, kMaxPageSize);
    const std::string text = ascii_lower(query.text.value_or(""));
    const std::string_view verdict = verdict_text(query.verdict.value_or(Verdict::Pending));
    StatementUse use(statement->get());
    bind_optional_texts(use, query.profile_id, query.domain);
    use.bind(":from", query.from_ms)
        .bind(":to", upper_bound(query.to_ms, query.after))
        .bind(":verdict", verdict)
        .bind(":text", std::string_view(text))
        .bind(":cursor_time", query.after ? query.after->time_ms : 0)
        .bind(":cursor_id", query.after ? query.after->id : 0)
        .bind(":limit", static_cast<std::int64_t>(limit + 1));
    Page<ConnectionRecord> page;
    int result = SQLITE_ROW;
    while ((result = use.step()) == SQLITE_ROW && page.rows.size() < limit) {
        page.rows.push_back(read_connection(use));
    }
    if (result != SQLITE_ROW && result != SQLITE_DONE) {
        return connection_->failure("cannot query the connection history");
    }
    if (result == SQLITE_ROW) { // one more row than the page: there is a next page
        const ConnectionRecord& last = page.rows.back();
        page.next = PageCursor{.time_ms = last.start_ms, .id = static_cast<std::int64_t>(last.id)};
    }
    return page;
}

Result<Page<DnsQueryRecord>> HistoryStore::dns_queries(const DnsQuery& query) {
    constexpr std::string_view kText =
        "(instr(lower(domain), :text) OR instr(lower(executable), :text)"
        " OR instr(lower(profile_id), :text) OR instr(lower(answers), :text)"
        " OR instr(lower(reason), :text))";
    const std::string sql =
        page_sql(kDnsColumns, "dns_queries", "time", query.profile_id.has_value(),
                 query.domain.has_value(), query.blocked.has_value(), "blocked = :blocked",
                 query.text.has_value(), kText, query.after.has_value());
    auto statement = connection_->prepare(sql);
    if (!statement) {
        return std::unexpected(statement.error());
    }
    const std::size_t limit = std::clamp<std::size_t>(query.limit, 1, kMaxPageSize);
    const std::string text = ascii_lower(query.text.value_or(""));
    StatementUse use(statement->get());
    bind_optional_texts(use, query.profile_id, query.domain);
    use.bind(":from", query.from_ms)
        .bind(":to", upper_bound(query.to_ms, query.after))
        .bind(":blocked", std::int64_t{query.blocked.value_or(false) ? 1 : 0})
        .bind(":text", std::string_view(text))
        .bind(":cursor_time", query.after ? query.after->time_ms : 0)
        .bind(":cursor_id", query.after ? query.after->id : 0)
        .bind(":limit", static_cast<std::int64_t>(limit + 1));
    Page<DnsQueryRecord> page;
    int result = SQLITE_ROW;
    while ((result = use.step()) == SQLITE_ROW && page.rows.size() < limit) {
        page.rows.push_back(read_dns_query(use));
    }
    if (result != SQLITE_ROW && result != SQLITE_DONE) {
        return connection_->failure("cannot query the DNS history");
    }
    if (result == SQLITE_ROW) {
        const DnsQueryRecord& last = page.rows.back();
        page.next = PageCursor{.time_ms = last.time_ms, .id = last.id};
    }
    return page;
}

Result<std::vector<Count>> HistoryStore::Connection::aggregate(std::string_view sql,
                                                               std::int64_t from_ms,
                                                               std::int64_t to_ms,
                                                               std::size_t limit) {
    auto statement = prepare(sql);
    if (!statement) {
        return std::unexpected(statement.error());
    }
    StatementUse use(statement->get());
    use.bind(":from", from_ms)
        .bind(":to", to_ms)
        .bind(":limit", static_cast<std::int64_t>(std::clamp<std::size_t>(limit, 1, kMaxPageSize)));
    std::vector<Count> counts;
    int result = SQLITE_ROW;
    while ((result = use.step()) == SQLITE_ROW) {
        counts.push_back(Count{.key = use.text(0),
                               .connections = use.integer(1),
                               .blocked = use.integer(2),
                               .bytes_in = static_cast<std::uint64_t>(use.integer(3)),
                               .bytes_out = static_cast<std::uint64_t>(use.integer(4))});
    }
    if (result != SQLITE_DONE) {
        return failure("cannot aggregate the connection history");
    }
    return counts;
}

namespace {

// The aggregate over a time range. INDEXED BY the time index: grouping by domain, the planner
// without statistics prefers to walk the (domain, started) index for its order, which reads
// every row of 30 days to count one day's.
std::string aggregate_sql(GroupBy group, std::string_view having, std::string_view order) {
    const std::string_view key = group == GroupBy::Application ? "profile_id" : "domain";
    return fmt::format(
        "SELECT {0}, count(*), sum(verdict IN ('block', 'drop')), sum(bytes_in), sum(bytes_out)"
        " FROM connections INDEXED BY connections_by_start"
        " WHERE started >= :from AND started < :to{1}"
        " GROUP BY {0}{2} ORDER BY {3} DESC, {0} LIMIT :limit",
        key, group == GroupBy::Domain ? " AND domain <> ''" : "", having, order);
}

} // namespace

Result<std::vector<Count>> HistoryStore::top(GroupBy group, std::int64_t from_ms,
                                             std::int64_t to_ms, std::size_t limit) {
    return connection_->aggregate(aggregate_sql(group, "", "2"), from_ms, to_ms, limit);
}

Result<std::vector<Count>> HistoryStore::top_blocked(GroupBy group, std::int64_t from_ms,
                                                     std::int64_t to_ms, std::size_t limit) {
    return connection_->aggregate(
        aggregate_sql(group, " HAVING sum(verdict IN ('block', 'drop')) > 0", "3"), from_ms, to_ms,
        limit);
}

// --- Pruning ---------------------------------------------------------------------------------

namespace {

std::int64_t removed(const PruneOutcome& outcome) {
    return outcome.connections_removed + outcome.dns_queries_removed;
}

} // namespace

Result<std::int64_t> HistoryStore::Connection::delete_chunked(std::string_view table,
                                                              std::string_view selection,
                                                              std::int64_t cutoff,
                                                              std::int64_t at_most) {
    auto statement =
        prepare(fmt::format("DELETE FROM {} WHERE id IN ({} LIMIT :limit)", table, selection));
    if (!statement) {
        return std::unexpected(statement.error());
    }
    std::int64_t removed = 0;
    while (removed < at_most) {
        StatementUse use(statement->get());
        use.bind(":cutoff", cutoff).bind(":limit", std::min(kPruneChunk, at_most - removed));
        // Each chunk commits on its own (autocommit): a reader or the next batch waits for one
        // chunk at most.
        if (auto status = done(use, fmt::format("cannot prune {}", table)); !status) {
            return std::unexpected(status.error());
        }
        const std::int64_t changed = sqlite3_changes64(db_.get());
        if (changed == 0) {
            break;
        }
        removed += changed;
    }
    return removed;
}

Result<std::uint64_t> HistoryStore::used_bytes() {
    auto used = connection_->single_integer(
        "SELECT (page_count - freelist_count) * page_size"
        " FROM pragma_page_count, pragma_freelist_count, pragma_page_size");
    if (!used) {
        return std::unexpected(used.error());
    }
    return static_cast<std::uint64_t>(*used);
}

Result<PruneOutcome> HistoryStore::prune(std::int64_t older_than_ms, std::uint64_t max_bytes,
                                         std::int64_t max_rows) {
    if (auto sound = ensure_integrity(); !sound) {
        return std::unexpected(sound.error());
    }
    PruneOutcome outcome;
    // First by age, then by size, within one budget of rows.
    if (auto status = prune_by_age(older_than_ms, max_rows, outcome); !status) {
        return std::unexpected(status.error());
    }
    if (auto status = prune_by_size(max_bytes, max_rows, outcome); !status) {
        return std::unexpected(status.error());
    }
    outcome.complete = removed(outcome) < max_rows;

    // Then give the freed pages back and shrink the WAL. A checkpoint that a reader holds back
    // is not an error: the next prune truncates it.
    if (removed(outcome) > 0) {
        if (auto status = connection_->exec("PRAGMA incremental_vacuum", "cannot vacuum");
            !status) {
            return std::unexpected(status.error());
        }
        sqlite3_wal_checkpoint_v2(connection_->db_.get(), nullptr, SQLITE_CHECKPOINT_TRUNCATE,
                                  nullptr, nullptr);
    }
    return outcome;
}

Status HistoryStore::prune_by_age(std::int64_t older_than_ms, std::int64_t max_rows,
                                  PruneOutcome& outcome) {
    auto connections = connection_->delete_chunked(
        "connections", "SELECT id FROM connections WHERE started < :cutoff", older_than_ms,
        max_rows - removed(outcome));
    if (!connections) {
        return std::unexpected(connections.error());
    }
    outcome.connections_removed += *connections;
    auto queries = connection_->delete_chunked("dns_queries",
                                               "SELECT id FROM dns_queries WHERE time < :cutoff",
                                               older_than_ms, max_rows - removed(outcome));
    if (!queries) {
        return std::unexpected(queries.error());
    }
    outcome.dns_queries_removed += *queries;
    return {};
}

// The oldest rows of both tables, in proportion to how far over the cap the used pages are,
// until they fit with headroom.
Status HistoryStore::prune_by_size(std::uint64_t max_bytes, std::int64_t max_rows,
                                   PruneOutcome& outcome) {
    const auto target = static_cast<double>(max_bytes) * kSizeHeadroom;
    for (int round = 0; round < kMaxSizeRounds && removed(outcome) < max_rows; ++round) {
        auto used = used_bytes();
        if (!used) {
            return std::unexpected(used.error());
        }
        const auto used_now = static_cast<double>(*used);
        if ((round == 0 && *used <= max_bytes) || used_now <= target) {
            return {};
        }
        auto connection_rows = connection_->single_integer("SELECT count(*) FROM connections");
        auto query_rows = connection_->single_integer("SELECT count(*) FROM dns_queries");
        if (!connection_rows || !query_rows) {
            return std::unexpected(!connection_rows ? connection_rows.error() : query_rows.error());
        }
        if (*connection_rows == 0 && *query_rows == 0) {
            return {}; // nothing left to remove: the cap is below an empty history
        }
        const double share = (used_now - target) / used_now;
        const auto share_of = [&](std::int64_t rows) {
            const auto wanted =
                static_cast<std::int64_t>(std::ceil(static_cast<double>(rows) * share));
            return std::min(wanted, max_rows - removed(outcome));
        };
        auto connections = connection_->delete_chunked(
            "connections", "SELECT id FROM connections ORDER BY started", 0,
            share_of(*connection_rows));
        if (!connections) {
            return std::unexpected(connections.error());
        }
        outcome.connections_removed += *connections;
        auto queries = connection_->delete_chunked(
            "dns_queries", "SELECT id FROM dns_queries ORDER BY time", 0, share_of(*query_rows));
        if (!queries) {
            return std::unexpected(queries.error());
        }
        outcome.dns_queries_removed += *queries;
    }
    return {};
}

} // namespace pw::history
