#include "profile/database.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <future>
#include <ranges>
#include <string>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

#include <fmt/format.h>
#include <fmt/std.h>

#include "common/assert.h"
#include "common/sqlite.h"

namespace pw::profile {

namespace fs = std::filesystem;
using firewall::RuleListKind;

namespace {

// --- Schema ----------------------------------------------------------------------------------

// "PWDB": marks the file as portwarden's, so that another program's database with a
// user_version of its own is refused instead of being "migrated".
constexpr std::int64_t kApplicationId = 0x50574442;

// Version 1 (issue 9). STRICT tables: a value of the wrong type is refused, not converted.
// Rule stats and timed rules carry no foreign key: their profile_id '' means "global", which
// is no row of profiles; delete_profile deletes them in the same transaction instead.
constexpr std::array<std::string_view, 6> kSchemaV1 = {
    "CREATE TABLE settings ("
    " key TEXT PRIMARY KEY NOT NULL CHECK (key <> ''),"
    " value TEXT NOT NULL CHECK (json_valid(value)),"
    " updated INTEGER NOT NULL"
    ") STRICT",
    "CREATE TABLE profiles ("
    " id TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),"
    " name TEXT NOT NULL,"
    " source TEXT NOT NULL CHECK (source IN ('auto', 'user', 'special')),"
    " fingerprints TEXT NOT NULL"
    "  CHECK (json_valid(fingerprints) AND json_type(fingerprints) = 'array'),"
    " settings TEXT NOT NULL CHECK (json_valid(settings) AND json_type(settings) = 'object'),"
    " created INTEGER NOT NULL,"
    " first_seen INTEGER NOT NULL,"
    " last_seen INTEGER NOT NULL"
    ") STRICT",
    "CREATE TABLE rule_stats ("
    " profile_id TEXT NOT NULL,"
    " list TEXT NOT NULL CHECK (list IN ('endpoints', 'serviceEndpoints')),"
    " rule TEXT NOT NULL,"
    " matches INTEGER NOT NULL CHECK (matches >= 0),"
    " last_match INTEGER NOT NULL,"
    " PRIMARY KEY (profile_id, list, rule)"
    ") STRICT",
    "CREATE TABLE timed_rules ("
    " id INTEGER PRIMARY KEY,"
    " profile_id TEXT NOT NULL,"
    " list TEXT NOT NULL CHECK (list IN ('endpoints', 'serviceEndpoints')),"
    " rule TEXT NOT NULL,"
    " expires INTEGER NOT NULL"
    ") STRICT",
    "CREATE INDEX timed_rules_by_profile ON timed_rules (profile_id)",
    "PRAGMA application_id = 1347896386", // kApplicationId; pragmas take no parameters
};
static_assert(kApplicationId == 1347896386);

constexpr std::array<Migration, 1> kMigrations = {Migration{kSchemaV1}};

constexpr int kBusyTimeoutMs = 5000;
// The page cache of the one connection, in KiB (SQLite's default is 2,000). Everything is read
// once at start and written in small transactions afterwards, so a large cache buys nothing and
// would stay resident for the daemon's life: with 1,000 profiles the start's integrity check and
// load alone filled the default cache (issue 9's memory target).
constexpr int kPageCacheKib = 128;

// --- Handles ---------------------------------------------------------------------------------

using sqlite::SqliteHandle;
using sqlite::Statement;
using sqlite::StatementUse;

std::string_view source_text(StoredProfile::Source source) {
    switch (source) {
        case StoredProfile::Source::Auto:
            return "auto";
        case StoredProfile::Source::User:
            return "user";
        case StoredProfile::Source::Special:
            return "special";
    }
    return "auto";
}

std::optional<StoredProfile::Source> parse_source(std::string_view text) {
    for (auto source : {StoredProfile::Source::Auto, StoredProfile::Source::User,
                        StoredProfile::Source::Special}) {
        if (text == source_text(source)) {
            return source;
        }
    }
    return std::nullopt;
}

std::string_view list_text(RuleListKind list) {
    return list == RuleListKind::ServiceEndpoints ? "serviceEndpoints" : "endpoints";
}

std::optional<RuleListKind> parse_list(std::string_view text) {
    for (auto list : {RuleListKind::Endpoints, RuleListKind::ServiceEndpoints}) {
        if (text == list_text(list)) {
            return list;
        }
    }
    return std::nullopt;
}

// What a write is about, for error messages: "profile 'curl-id'".
struct Describe {
    std::string operator()(const SetSetting& write) const {
        return fmt::format("setting '{}'", write.key);
    }
    std::string operator()(const PutProfile& write) const {
        return fmt::format("profile '{}'", write.profile.id);
    }
    std::string operator()(const DeleteProfile& write) const {
        return fmt::format("deletion of profile '{}'", write.id);
    }
    std::string operator()(const AddRuleStats& write) const {
        return fmt::format("{} rule counts", write.deltas.size());
    }
    std::string operator()(const PutTimedRule& write) const {
        return fmt::format("timed rule {}", write.rule.id);
    }
    std::string operator()(const DeleteTimedRule& write) const {
        return fmt::format("deletion of timed rule {}", write.id);
    }
    std::string operator()(const TouchProfiles& write) const {
        return fmt::format("last-seen times of {} profiles", write.seen.size());
    }
};

std::string describe(const std::vector<Write>& batch) {
    if (batch.size() == 1) {
        return std::visit(Describe{}, batch.front());
    }
    return fmt::format("a batch of {} writes", batch.size());
}

// --- The file's location ---------------------------------------------------------------------

std::string_view type_name(fs::file_type type) {
    switch (type) {
        case fs::file_type::directory:
            return "a directory";
        case fs::file_type::fifo:
            return "a FIFO";
        case fs::file_type::socket:
            return "a socket";
        case fs::file_type::block:
            return "a block device";
        case fs::file_type::character:
            return "a character device";
        default:
            return "not a regular file";
    }
}

// Creates the missing directories above `file`, each with mode 0700 (the database holds the
// user's rules: nobody else needs to list it). Existing directories are left as they are.
Status create_parent_directories(const fs::path& file) {
    std::vector<fs::path> missing;
    for (fs::path dir = file.parent_path(); !dir.empty() && !fs::exists(dir);
         dir = dir.parent_path()) {
        missing.push_back(dir);
        if (dir == dir.parent_path()) {
            break;
        }
    }
    for (const fs::path& dir : std::views::reverse(missing)) { // from the top down
        if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
            return fail_errno(fmt::format("{}: cannot create directory {}", file, dir), errno);
        }
    }
    return {};
}

// The file must be a regular file (SQLite would block forever reading a FIFO) or not exist.
Status check_location(const fs::path& file) {
    std::error_code error;
    const fs::file_status status = fs::status(file, error);
    if (status.type() == fs::file_type::not_found) {
        return create_parent_directories(file);
    }
    if (error) {
        return fail(fmt::format("{}: cannot read the database file", file), error);
    }
    if (status.type() != fs::file_type::regular) {
        return fail(fmt::format("{}: cannot open the database: it is {}, not a regular file", file,
                                type_name(status.type())));
    }
    return {};
}

} // namespace

std::span<const Migration> schema_migrations() {
    return kMigrations;
}

// --- The connection (worker thread only, after open) -----------------------------------------

class Database::Connection {
public:
    [[nodiscard]] static Result<std::unique_ptr<Connection>> open(
        const fs::path& file, std::span<const Migration> migrations);

    [[nodiscard]] Status apply(const std::vector<Write>& batch);
    [[nodiscard]] Result<StoredState> load();

private:
    struct Statements {
        Statement begin;
        Statement commit;
        Statement set_setting;
        Statement delete_setting;
        Statement put_profile;
        Statement delete_rule_stats_of;
        Statement delete_timed_rules_of;
        Statement delete_profile;
        Statement add_rule_stat;
        Statement put_timed_rule;
        Statement delete_timed_rule;
        Statement touch_profile;
    };

    Connection(std::string file, SqliteHandle db) : file_(std::move(file)), db_(std::move(db)) {}

    // "FILE: what: SQLite's message"
    [[nodiscard]] std::unexpected<Error> failure(std::string_view what) const;
    [[nodiscard]] Status exec(std::string_view sql, std::string_view what);
    [[nodiscard]] Result<Statement> prepare(std::string_view sql);
    [[nodiscard]] Result<std::int64_t> pragma_integer(std::string_view name);
    [[nodiscard]] Status check_identity(std::int64_t version, std::size_t known);
    [[nodiscard]] Status check_integrity();
    [[nodiscard]] Status configure();
    [[nodiscard]] Status migrate(std::span<const Migration> migrations);
    [[nodiscard]] Status prepare_statements();
    // Runs a statement that returns no rows.
    [[nodiscard]] Status done(StatementUse& use, std::string_view what);
    void roll_back();

    [[nodiscard]] Status apply_one(const SetSetting& write);
    [[nodiscard]] Status apply_one(const PutProfile& write);
    [[nodiscard]] Status apply_one(const DeleteProfile& write);
    [[nodiscard]] Status apply_one(const AddRuleStats& write);
    [[nodiscard]] Status apply_one(const PutTimedRule& write);
    [[nodiscard]] Status apply_one(const DeleteTimedRule& write);
    [[nodiscard]] Status apply_one(const TouchProfiles& write);

    [[nodiscard]] Status load_settings(std::vector<StoredSetting>& out);
    [[nodiscard]] Status load_profiles(std::vector<StoredProfile>& out);
    [[nodiscard]] Status load_rule_stats(std::vector<StoredRuleStat>& out);
    [[nodiscard]] Status load_timed_rules(std::vector<StoredTimedRule>& out);

    std::string file_;
    SqliteHandle db_;
    Statements statements_;
};

std::unexpected<Error> Database::Connection::failure(std::string_view what) const {
    // No errno: sqlite3_system_errno() reports whatever errno was when SQLite looked, often
    // after its own clean-up calls, so it would name the wrong cause as often as the right one.
    return fail(fmt::format("{}: {}: {}", file_, what, sqlite3_errmsg(db_.get())));
}

Status Database::Connection::exec(std::string_view sql, std::string_view what) {
    const std::string text(sql); // sqlite3_exec wants a NUL-terminated string
    if (sqlite3_exec(db_.get(), text.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
        return failure(what);
    }
    return {};
}

Result<Statement> Database::Connection::prepare(std::string_view sql) {
    sqlite3_stmt* raw = nullptr;
    const int result = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                                          SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    Statement statement(raw);
    if (result != SQLITE_OK) {
        return failure(fmt::format("cannot prepare \"{}\"", sql));
    }
    return statement;
}

Result<std::int64_t> Database::Connection::pragma_integer(std::string_view name) {
    auto statement = prepare(fmt::format("PRAGMA {}", name));
    if (!statement) {
        return fail(
            fmt::format("{}: cannot read the database: {}", file_, sqlite3_errmsg(db_.get())));
    }
    StatementUse use(statement->get());
    if (use.step() != SQLITE_ROW) {
        return fail(
            fmt::format("{}: cannot read the database: {}", file_, sqlite3_errmsg(db_.get())));
    }
    return use.integer(0);
}

Status Database::Connection::check_identity(std::int64_t version, std::size_t known) {
    if (version < 0 || static_cast<std::uint64_t>(version) > known) {
        return fail(fmt::format(
            "{}: database schema version {} is newer than this portwarden understands ({}): "
            "downgrade is not supported; keep the file and upgrade portwarden, or move the file "
            "away to start empty",
            file_, version, known));
    }
    if (version > 0) {
        auto application = pragma_integer("application_id");
        if (!application) {
            return std::unexpected(application.error());
        }
        if (*application != kApplicationId) {
            return fail(fmt::format(
                "{}: not a portwarden database (application_id {}, schema version {}); move it "
                "away to start empty",
                file_, *application, version));
        }
        return {};
    }
    // Version 0 is a new file, or another program's database that never set a version.
    auto objects = prepare("SELECT count(*) FROM sqlite_schema");
    if (!objects) {
        return std::unexpected(objects.error());
    }
    StatementUse use(objects->get());
    if (use.step() != SQLITE_ROW) {
        return failure("cannot read the database");
    }
    if (use.integer(0) != 0) {
        return fail(fmt::format(
            "{}: not a portwarden database (it has tables but no schema version); move it away "
            "to start empty",
            file_));
    }
    return {};
}

// integrity_check rather than quick_check: it also proves that each index agrees with its
// table (a PRIMARY KEY index that lost an entry would let put_profile insert a second row for
// one ID). Both read every page, and both verify the CHECK constraints, so every JSON column
// is valid JSON after open(). Measured on 10,000 profiles with 60 rules each (47 MB): about
// 2 s either way from a cold page cache (reading the file dominates); warm, about 0.3 s
// against 0.25 s.
Status Database::Connection::check_integrity() {
    auto statement = prepare("PRAGMA integrity_check(5)");
    if (!statement) {
        return fail(fmt::format("{}: the database is corrupt or unreadable: {}", file_,
                                sqlite3_errmsg(db_.get())));
    }
    StatementUse use(statement->get());
    std::vector<std::string> problems;
    int result = SQLITE_ROW;
    while ((result = use.step()) == SQLITE_ROW) {
        std::string line = use.text(0);
        if (line != "ok") {
            problems.push_back(std::move(line));
        }
    }
    if (result != SQLITE_DONE) {
        return fail(fmt::format("{}: the database is corrupt or unreadable: {}", file_,
                                sqlite3_errmsg(db_.get())));
    }
    if (!problems.empty()) {
        return fail(fmt::format("{}: the database is corrupt (integrity_check: {})", file_,
                                fmt::join(problems, "; ")));
    }
    return {};
}

Status Database::Connection::configure() {
    auto mode = prepare("PRAGMA journal_mode = WAL");
    if (!mode) {
        return std::unexpected(mode.error());
    }
    StatementUse use(mode->get());
    if (use.step() != SQLITE_ROW) {
        return failure("cannot switch to WAL mode");
    }
    if (const std::string current = use.text(0); current != "wal") {
        return fail(fmt::format("{}: cannot switch to WAL mode (the journal mode stays {})", file_,
                                current));
    }
    // FULL: in WAL mode every commit syncs the log, so that an acknowledged write survives a
    // power cut too, not only a crash of this process.
    if (auto status = exec("PRAGMA synchronous = FULL", "cannot set synchronous"); !status) {
        return status;
    }
    return exec("PRAGMA foreign_keys = ON", "cannot enable foreign keys");
}

Status Database::Connection::migrate(std::span<const Migration> migrations) {
    for (std::size_t index = 0; index < migrations.size(); ++index) {
        const auto version = static_cast<std::int64_t>(index + 1);
        if (auto begun = exec("BEGIN IMMEDIATE", "cannot start the schema migration"); !begun) {
            return begun;
        }
        // Read again inside the write lock: another process may have migrated meanwhile.
        auto current = pragma_integer("user_version");
        if (!current) {
            roll_back();
            return std::unexpected(current.error());
        }
        if (*current >= version) {
            roll_back();
            continue;
        }
        const std::string what = fmt::format("migration to schema version {} failed", version);
        for (const std::string_view statement : migrations[index].statements) {
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

Status Database::Connection::prepare_statements() {
    const std::array<std::pair<Statement*, std::string_view>, 12> all = {{
        {&statements_.begin, "BEGIN IMMEDIATE"},
        {&statements_.commit, "COMMIT"},
        {&statements_.set_setting,
         "INSERT INTO settings (key, value, updated) VALUES (?1, ?2, ?3)"
         " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated"},
        {&statements_.delete_setting, "DELETE FROM settings WHERE key = ?1"},
        {&statements_.put_profile,
         "INSERT OR REPLACE INTO profiles"
         " (id, name, source, fingerprints, settings, created, first_seen, last_seen)"
         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"},
        {&statements_.delete_rule_stats_of, "DELETE FROM rule_stats WHERE profile_id = ?1"},
        {&statements_.delete_timed_rules_of, "DELETE FROM timed_rules WHERE profile_id = ?1"},
        {&statements_.delete_profile, "DELETE FROM profiles WHERE id = ?1"},
        // Counts that arrive after their profile was deleted are dropped, not kept as orphans.
        {&statements_.add_rule_stat,
         "INSERT INTO rule_stats (profile_id, list, rule, matches, last_match)"
         " SELECT ?1, ?2, ?3, ?4, ?5"
         " WHERE ?1 = '' OR EXISTS (SELECT 1 FROM profiles WHERE id = ?1)"
         " ON CONFLICT (profile_id, list, rule) DO UPDATE"
         " SET matches = matches + excluded.matches,"
         " last_match = max(last_match, excluded.last_match)"},
        {&statements_.put_timed_rule,
         "INSERT OR REPLACE INTO timed_rules (id, profile_id, list, rule, expires)"
         " SELECT ?1, ?2, ?3, ?4, ?5"
         " WHERE ?2 = '' OR EXISTS (SELECT 1 FROM profiles WHERE id = ?2)"},
        {&statements_.delete_timed_rule, "DELETE FROM timed_rules WHERE id = ?1"},
        {&statements_.touch_profile,
         "UPDATE profiles SET last_seen = max(last_seen, ?2) WHERE id = ?1"},
    }};
    for (const auto& [statement, sql] : all) {
        auto prepared = prepare(sql);
        if (!prepared) {
            return std::unexpected(prepared.error());
        }
        *statement = std::move(*prepared);
    }
    return {};
}

Result<std::unique_ptr<Database::Connection>> Database::Connection::open(
    const fs::path& file, std::span<const Migration> migrations) {
    if (auto location = check_location(file); !location) {
        return std::unexpected(location.error());
    }
    sqlite3* raw = nullptr;
    const int result = sqlite3_open_v2(
        file.c_str(), &raw,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
        nullptr);
    SqliteHandle db(raw); // closed on every path, also when the open failed
    if (result != SQLITE_OK) {
        const int os_error = sqlite3_system_errno(db.get());
        return fail(fmt::format("{}: cannot open the database: {}", file,
                                db ? sqlite3_errmsg(db.get()) : sqlite3_errstr(result)),
                    std::error_code(os_error, std::system_category()));
    }
    sqlite3_busy_timeout(db.get(), kBusyTimeoutMs);
    // Before the first read, so that no read fills a larger cache. A negative size is in KiB.
    sqlite3_exec(db.get(), fmt::format("PRAGMA cache_size = -{}", kPageCacheKib).c_str(), nullptr,
                 nullptr, nullptr);
    std::unique_ptr<Connection> connection(new Connection(file.string(), std::move(db)));

    // Everything up to configure() only reads, so that a file we refuse keeps its bytes.
    auto version = connection->pragma_integer("user_version");
    if (!version) {
        return std::unexpected(version.error());
    }
    if (auto status = connection->check_identity(*version, migrations.size()); !status) {
        return std::unexpected(status.error());
    }
    if (auto status = connection->check_integrity(); !status) {
        return std::unexpected(status.error());
    }
    if (auto status = connection->configure(); !status) {
        return std::unexpected(status.error());
    }
    if (auto status = connection->migrate(migrations); !status) {
        return std::unexpected(status.error());
    }
    if (auto status = connection->prepare_statements(); !status) {
        return std::unexpected(status.error());
    }
    return connection;
}

// --- Writes ----------------------------------------------------------------------------------

Status Database::Connection::done(StatementUse& use, std::string_view what) {
    if (use.step() != SQLITE_DONE) {
        return failure(what);
    }
    return {};
}

void Database::Connection::roll_back() {
    // After some errors (disk full, I/O) SQLite has already rolled the transaction back.
    if (sqlite3_get_autocommit(db_.get()) == 0) {
        sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
}

Status Database::Connection::apply(const std::vector<Write>& batch) {
    {
        StatementUse begin(statements_.begin.get());
        if (auto status = done(begin, "cannot start the transaction of " + describe(batch));
            !status) {
            return status;
        }
    }
    for (const Write& write : batch) {
        auto status = std::visit([this](const auto& one) { return apply_one(one); }, write);
        if (!status) {
            roll_back();
            return status;
        }
    }
    StatementUse commit(statements_.commit.get());
    if (auto status = done(commit, "cannot commit " + describe(batch)); !status) {
        roll_back();
        return status;
    }
    return {};
}

Status Database::Connection::apply_one(const SetSetting& write) {
    const std::string what = fmt::format("cannot store setting '{}'", write.key);
    if (!write.value_json) {
        StatementUse use(statements_.delete_setting.get());
        use.bind(1, write.key);
        return done(use, what);
    }
    StatementUse use(statements_.set_setting.get());
    use.bind(1, write.key).bind(2, *write.value_json).bind(3, write.updated_ms);
    return done(use, what);
}

Status Database::Connection::apply_one(const PutProfile& write) {
    const StoredProfile& profile = write.profile;
    StatementUse use(statements_.put_profile.get());
    use.bind(1, profile.id)
        .bind(2, profile.name)
        .bind(3, source_text(profile.source))
        .bind(4, profile.fingerprints_json)
        .bind(5, profile.settings_json)
        .bind(6, profile.created_ms)
        .bind(7, profile.first_seen_ms)
        .bind(8, profile.last_seen_ms);
    return done(use, fmt::format("cannot store profile '{}'", profile.id));
}

Status Database::Connection::apply_one(const DeleteProfile& write) {
    const std::string what = fmt::format("cannot delete profile '{}'", write.id);
    if (write.id.empty()) {
        // '' names the global rule stats and timed rules, which belong to no profile.
        return fail(fmt::format("{}: {}: a profile ID is never empty", file_, what));
    }
    for (sqlite3_stmt* statement :
         {statements_.delete_rule_stats_of.get(), statements_.delete_timed_rules_of.get(),
          statements_.delete_profile.get()}) {
        StatementUse use(statement);
        use.bind(1, write.id);
        if (auto status = done(use, what); !status) {
            return status;
        }
    }
    return {};
}

Status Database::Connection::apply_one(const AddRuleStats& write) {
    for (const StoredRuleStat& delta : write.deltas) {
        StatementUse use(statements_.add_rule_stat.get());
        use.bind(1, delta.profile_id)
            .bind(2, list_text(delta.list))
            .bind(3, delta.rule)
            .bind(4, delta.matches)
            .bind(5, delta.last_match_ms);
        if (auto status = done(use, fmt::format("cannot count rule '{}' of profile '{}'",
                                                delta.rule, delta.profile_id));
            !status) {
            return status;
        }
    }
    return {};
}

Status Database::Connection::apply_one(const PutTimedRule& write) {
    const StoredTimedRule& rule = write.rule;
    const std::string what =
        fmt::format("cannot store timed rule {} of profile '{}'", rule.id, rule.profile_id);
    StatementUse use(statements_.put_timed_rule.get());
    use.bind(1, rule.id)
        .bind(2, rule.profile_id)
        .bind(3, list_text(rule.list))
        .bind(4, rule.rule)
        .bind(5, rule.expires_ms);
    if (auto status = done(use, what); !status) {
        return status;
    }
    if (sqlite3_changes(db_.get()) == 0) {
        return fail(fmt::format("{}: {}: no such profile", file_, what));
    }
    return {};
}

Status Database::Connection::apply_one(const DeleteTimedRule& write) {
    StatementUse use(statements_.delete_timed_rule.get());
    use.bind(1, write.id);
    return done(use, fmt::format("cannot delete timed rule {}", write.id));
}

Status Database::Connection::apply_one(const TouchProfiles& write) {
    for (const ProfileSeen& seen : write.seen) {
        StatementUse use(statements_.touch_profile.get());
        use.bind(1, seen.id).bind(2, seen.last_seen_ms);
        if (auto status = done(use, fmt::format("cannot update profile '{}'", seen.id)); !status) {
            return status;
        }
    }
    return {};
}

// --- Reads -----------------------------------------------------------------------------------

namespace {

// Runs `sql` and hands each row to `row`, which fails for a row it cannot read.
template <typename Row>
Status read_rows(sqlite3* db, const std::string& file, std::string_view sql, Row&& row) {
    sqlite3_stmt* raw = nullptr;
    const int prepared =
        sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
    const Statement statement(raw);
    if (prepared != SQLITE_OK) {
        return fail(fmt::format("{}: cannot read: {}", file, sqlite3_errmsg(db)));
    }
    StatementUse use(statement.get());
    int result = SQLITE_ROW;
    while ((result = use.step()) == SQLITE_ROW) {
        if (auto status = row(use); !status) {
            return status;
        }
    }
    if (result != SQLITE_DONE) {
        return fail(fmt::format("{}: cannot read: {}", file, sqlite3_errmsg(db)));
    }
    return {};
}

} // namespace

Status Database::Connection::load_settings(std::vector<StoredSetting>& out) {
    return read_rows(
        db_.get(), file_, "SELECT key, value, updated FROM settings ORDER BY key",
        [&](const StatementUse& use) -> Status {
            out.push_back(StoredSetting{
                .key = use.text(0), .value_json = use.text(1), .updated_ms = use.integer(2)});
            return {};
        });
}

Status Database::Connection::load_profiles(std::vector<StoredProfile>& out) {
    return read_rows(
        db_.get(), file_,
        "SELECT id, name, source, fingerprints, settings, created, first_seen, last_seen"
        " FROM profiles", // sorted below: SQLite would sort whole rows, JSON and all
        [&](const StatementUse& use) -> Status {
            auto source = parse_source(use.text(2));
            if (!source) {
                return fail(fmt::format("{}: profile '{}' has an unknown source '{}'", file_,
                                        use.text(0), use.text(2)));
            }
            out.push_back(StoredProfile{.id = use.text(0),
                                        .name = use.text(1),
                                        .source = *source,
                                        .fingerprints_json = use.text(3),
                                        .settings_json = use.text(4),
                                        .created_ms = use.integer(5),
                                        .first_seen_ms = use.integer(6),
                                        .last_seen_ms = use.integer(7)});
            return {};
        });
}

Status Database::Connection::load_rule_stats(std::vector<StoredRuleStat>& out) {
    return read_rows(db_.get(), file_,
                     "SELECT profile_id, list, rule, matches, last_match FROM rule_stats"
                     " ORDER BY profile_id, list, rule",
                     [&](const StatementUse& use) -> Status {
                         auto list = parse_list(use.text(1));
                         if (!list) {
                             return fail(fmt::format("{}: a rule stat has an unknown list '{}'",
                                                     file_, use.text(1)));
                         }
                         out.push_back(StoredRuleStat{.profile_id = use.text(0),
                                                      .list = *list,
                                                      .rule = use.text(2),
                                                      .matches = use.integer(3),
                                                      .last_match_ms = use.integer(4)});
                         return {};
                     });
}

Status Database::Connection::load_timed_rules(std::vector<StoredTimedRule>& out) {
    return read_rows(db_.get(), file_,
                     "SELECT id, profile_id, list, rule, expires FROM timed_rules ORDER BY id",
                     [&](const StatementUse& use) -> Status {
                         auto list = parse_list(use.text(2));
                         if (!list) {
                             return fail(fmt::format("{}: timed rule {} has an unknown list '{}'",
                                                     file_, use.integer(0), use.text(2)));
                         }
                         out.push_back(StoredTimedRule{.id = use.integer(0),
                                                       .profile_id = use.text(1),
                                                       .list = *list,
                                                       .rule = use.text(3),
                                                       .expires_ms = use.integer(4)});
                         return {};
                     });
}

Result<StoredState> Database::Connection::load() {
    // One read transaction: a consistent snapshot even if another process writes meanwhile.
    if (auto status = exec("BEGIN", "cannot read"); !status) {
        return std::unexpected(status.error());
    }
    StoredState state;
    Status status = load_settings(state.settings);
    if (status) {
        status = load_profiles(state.profiles);
    }
    if (status) {
        std::ranges::sort(state.profiles, {}, [](const StoredProfile& profile) {
            return std::tie(profile.created_ms, profile.id);
        });
        status = load_rule_stats(state.rule_stats);
    }
    if (status) {
        status = load_timed_rules(state.timed_rules);
    }
    roll_back(); // ends the read transaction; nothing was written
    if (!status) {
        return std::unexpected(status.error());
    }
    return state;
}

// --- Database --------------------------------------------------------------------------------

Result<std::unique_ptr<Database>> Database::open(const fs::path& file, Poster post) {
    return open(file, std::move(post), kMigrations);
}

Result<std::unique_ptr<Database>> Database::open(const fs::path& file, Poster post,
                                                 std::span<const Migration> migrations) {
    // NOLINTNEXTLINE(modernize-use-std-print): PW_ASSERT's fprintf (no <print> in GCC 12)
    PW_ASSERT(post); // completions must reach the owner's loop: there is no default
    auto connection = Connection::open(file, migrations);
    if (!connection) {
        return std::unexpected(connection.error());
    }
    return std::unique_ptr<Database>(new Database(file, std::move(*connection), std::move(post)));
}

Database::Database(fs::path file, std::unique_ptr<Connection> connection, Poster post)
    : file_(std::move(file)),
      connection_(std::move(connection)),
      post_(std::move(post)),
      worker_([this] { run_worker(); }) {}

Database::~Database() {
    {
        const std::scoped_lock lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    worker_.join(); // the worker empties the queue before it stops
}

void Database::enqueue(Job job) {
    {
        const std::scoped_lock lock(mutex_);
        jobs_.push_back(std::move(job));
    }
    wake_.notify_one();
}

void Database::run_worker() {
    for (;;) {
        Job job;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
            if (jobs_.empty()) {
                return; // stopping, and nothing left to write
            }
            job = std::move(jobs_.front());
            jobs_.pop_front();
        }
        job();
    }
}

void Database::write(std::vector<Write> batch, Completion done) {
    enqueue([this, batch = std::move(batch), done = std::move(done)]() mutable {
        Status status = connection_->apply(batch);
        if (done) {
            post_([done = std::move(done), status = std::move(status)] { done(status); });
        }
    });
}

Result<StoredState> Database::load() {
    // NOLINTNEXTLINE(modernize-use-std-print): PW_ASSERT's fprintf (no <print> in GCC 12)
    PW_ASSERT(std::this_thread::get_id() != worker_.get_id());
    std::promise<Result<StoredState>> loaded;
    auto future = loaded.get_future();
    enqueue([this, &loaded] { loaded.set_value(connection_->load()); });
    return future.get();
}

void Database::flush() {
    // NOLINTNEXTLINE(modernize-use-std-print): PW_ASSERT's fprintf (no <print> in GCC 12)
    PW_ASSERT(std::this_thread::get_id() != worker_.get_id());
    std::promise<void> flushed;
    auto future = flushed.get_future();
    enqueue([&flushed] { flushed.set_value(); });
    future.get();
}

namespace {
template <typename W>
std::vector<Write> one(W write) {
    std::vector<Write> batch;
    batch.emplace_back(std::move(write));
    return batch;
}
} // namespace

void Database::set_setting(std::string key, std::optional<std::string> value_json,
                           std::int64_t updated_ms, Completion done) {
    write(
        one(SetSetting{
            .key = std::move(key), .value_json = std::move(value_json), .updated_ms = updated_ms}),
        std::move(done));
}

void Database::put_profile(StoredProfile profile, Completion done) {
    write(one(PutProfile{.profile = std::move(profile)}), std::move(done));
}

void Database::delete_profile(std::string id, Completion done) {
    write(one(DeleteProfile{.id = std::move(id)}), std::move(done));
}

void Database::add_rule_stats(std::vector<StoredRuleStat> deltas, Completion done) {
    write(one(AddRuleStats{.deltas = std::move(deltas)}), std::move(done));
}

void Database::put_timed_rule(StoredTimedRule rule, Completion done) {
    write(one(PutTimedRule{.rule = std::move(rule)}), std::move(done));
}

void Database::delete_timed_rule(std::int64_t id, Completion done) {
    write(one(DeleteTimedRule{.id = id}), std::move(done));
}

void Database::touch_profiles(std::vector<ProfileSeen> seen, Completion done) {
    write(one(TouchProfiles{.seen = std::move(seen)}), std::move(done));
}

} // namespace pw::profile
