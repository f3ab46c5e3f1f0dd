#include "profile/database.h"

#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fakes/test_loop.h"

namespace pw::profile {
namespace {

namespace fs = std::filesystem;
using firewall::RuleListKind;
using ::testing::HasSubstr;

// --- Helpers ---------------------------------------------------------------------------------

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
    std::string text(const std::string& sql, const std::string& parameter = "") {
        sqlite3_stmt* raw = nullptr;
        EXPECT_EQ(sqlite3_prepare_v2(db_.get(), sql.c_str(), -1, &raw, nullptr), SQLITE_OK)
            << sql << ": " << sqlite3_errmsg(db_.get());
        const std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> statement(
            raw, &sqlite3_finalize);
        if (!parameter.empty()) {
            sqlite3_bind_text(raw, 1, parameter.c_str(), -1, SQLITE_TRANSIENT);
        }
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

std::string read_bytes(const fs::path& file) {
    std::ifstream stream(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& file, std::string_view bytes) {
    std::ofstream stream(file, std::ios::binary | std::ios::trunc);
    stream.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

using pw::testing::TestLoop;

StoredRuleStat stat(std::string profile_id, std::string rule, std::int64_t matches,
                    std::int64_t last_match_ms, RuleListKind list = RuleListKind::Endpoints) {
    return StoredRuleStat{.profile_id = std::move(profile_id),
                          .list = list,
                          .rule = std::move(rule),
                          .matches = matches,
                          .last_match_ms = last_match_ms};
}

StoredTimedRule timed(std::int64_t id, std::string profile_id, std::string rule,
                      std::int64_t expires_ms, RuleListKind list = RuleListKind::Endpoints) {
    return StoredTimedRule{.id = id,
                           .profile_id = std::move(profile_id),
                           .list = list,
                           .rule = std::move(rule),
                           .expires_ms = expires_ms};
}

// The permission bits of a path, or -1 when it cannot be read.
int mode_of(const fs::path& path) {
    struct stat info{};
    return ::stat(path.c_str(), &info) == 0 ? static_cast<int>(info.st_mode & 0777) : -1;
}

// Runs each completion at once, on the worker thread: the earliest moment possible.
void run_inline(const std::function<void()>& call) {
    call();
}

StoredProfile profile(std::string id, std::string name) {
    return StoredProfile{.id = std::move(id),
                         .name = std::move(name),
                         .source = StoredProfile::Source::Auto,
                         .fingerprints_json = R"([{"type":"path","value":"/usr/bin/curl"}])",
                         .settings_json = R"({"filter/defaultAction":"block"})",
                         .created_ms = 1000,
                         .first_seen_ms = 1100,
                         .last_seen_ms = 1200};
}

class DatabaseTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (fs::temp_directory_path() / "pw-database-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        directory_ = pattern;
        file_ = directory_ / "portwarden.db";
    }
    void TearDown() override {
        std::error_code ignored;
        fs::remove_all(directory_, ignored);
    }

    std::unique_ptr<Database> open_ok(std::span<const Migration> migrations = schema_migrations()) {
        auto database = Database::open(file_, loop_.poster(), migrations);
        EXPECT_TRUE(database.has_value()) << database.error().message();
        return database ? std::move(*database) : nullptr;
    }

    std::string open_error(std::span<const Migration> migrations = schema_migrations()) {
        auto database = Database::open(file_, loop_.poster(), migrations);
        EXPECT_FALSE(database.has_value()) << "opened " << file_;
        return database ? std::string{} : database.error().message();
    }

    // Writes one batch and returns its outcome, as the owner's loop sees it.
    Status write(Database& database, std::vector<Write> batch) {
        Status outcome = fail("no completion");
        database.write(std::move(batch), [&](Status status) { outcome = std::move(status); });
        database.flush();
        loop_.run();
        return outcome;
    }

    StoredState load(Database& database) {
        auto state = database.load();
        EXPECT_TRUE(state.has_value()) << state.error().message();
        return state.value_or(StoredState{});
    }

    fs::path directory_;
    fs::path file_;
    TestLoop loop_;
};

// --- Opening ---------------------------------------------------------------------------------

TEST_F(DatabaseTest, OpenCreatesTheFileAndPrivateDirectoriesWithTheNewestSchema) {
    file_ = directory_ / "var" / "lib" / "portwarden" / "portwarden.db";
    ASSERT_NE(open_ok(), nullptr);
    for (const fs::path& created : {directory_ / "var", directory_ / "var" / "lib",
                                    directory_ / "var" / "lib" / "portwarden"}) {
        EXPECT_EQ(mode_of(created), 0700) << created;
    }
    RawDatabase raw(file_);
    EXPECT_EQ(raw.text("PRAGMA user_version"), std::to_string(schema_migrations().size()));
    EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");
    EXPECT_EQ(raw.text("PRAGMA application_id"), "1347896386");
}

TEST_F(DatabaseTest, OpenLeavesTheModeOfAnExistingDirectoryAlone) {
    ASSERT_EQ(::chmod(directory_.c_str(), 0755), 0);
    ASSERT_NE(open_ok(), nullptr);
    EXPECT_EQ(mode_of(directory_), 0755);
}

TEST_F(DatabaseTest, NewDatabaseIsEmpty) {
    auto database = open_ok();
    ASSERT_NE(database, nullptr);
    const StoredState state = load(*database);
    EXPECT_TRUE(state.settings.empty());
    EXPECT_TRUE(state.profiles.empty());
    EXPECT_TRUE(state.rule_stats.empty());
    EXPECT_TRUE(state.timed_rules.empty());
}

TEST_F(DatabaseTest, AnEmptyExistingFileIsANewDatabase) {
    write_bytes(file_, "");
    auto database = open_ok();
    ASSERT_NE(database, nullptr);
    EXPECT_TRUE(load(*database).profiles.empty());
}

// --- Refused files: a clear error naming the file, and the file's bytes unchanged ------------

class RefusedFileTest : public DatabaseTest {
protected:
    // A real database with one profile, closed, as a start for damage.
    std::string make_real_database() {
        {
            auto database = open_ok();
            EXPECT_NE(database, nullptr);
            std::vector<Write> batch;
            batch.reserve(200);
            for (int index = 0; index < 200; ++index) {
                batch.emplace_back(PutProfile{profile("id-" + std::to_string(index), "app")});
            }
            EXPECT_TRUE(write(*database, std::move(batch)));
        }
        return read_bytes(file_);
    }

    // open() fails with a message that names the file and contains `reason`; the file is as it was.
    void expect_refused(std::string_view reason) {
        const std::string before = read_bytes(file_);
        const std::string error = open_error();
        EXPECT_THAT(error, HasSubstr(file_.string()));
        EXPECT_THAT(error, HasSubstr(reason));
        EXPECT_TRUE(read_bytes(file_) == before) << "the refused file was changed";
    }
};

TEST_F(RefusedFileTest, GarbageIsNotADatabase) {
    std::string garbage(10000, '\0');
    for (std::size_t index = 0; index < garbage.size(); ++index) {
        garbage[index] = static_cast<char>((index * 7919 + 13) % 251);
    }
    write_bytes(file_, garbage);
    expect_refused("file is not a database");
}

TEST_F(RefusedFileTest, TruncatedDatabaseIsCorrupt) {
    const std::string whole = make_real_database();
    ASSERT_GT(whole.size(), 8192U);
    write_bytes(file_, std::string_view(whole).substr(0, whole.size() / 2));
    expect_refused("malformed");
}

TEST_F(RefusedFileTest, DatabaseCutAfterItsFirstPageIsCorrupt) {
    const std::string whole = make_real_database();
    write_bytes(file_, std::string_view(whole).substr(0, 4096));
    expect_refused("malformed");
}

TEST_F(RefusedFileTest, DatabaseCutInsideItsHeaderIsRefused) {
    const std::string whole = make_real_database();
    write_bytes(file_, std::string_view(whole).substr(0, 50));
    expect_refused("malformed");
}

TEST_F(RefusedFileTest, DamagedPageIsFoundByTheCheck) {
    std::string bytes = make_real_database();
    // Page 3 onwards belong to the profiles table: overwrite the middle of one b-tree page.
    ASSERT_GT(bytes.size(), 5 * 4096U);
    for (std::size_t offset = 4 * 4096 + 8; offset < 4 * 4096 + 200; ++offset) {
        bytes[offset] = '\xff';
    }
    write_bytes(file_, bytes);
    const std::string before = read_bytes(file_);
    const std::string error = open_error();
    EXPECT_THAT(error, HasSubstr(file_.string()));
    EXPECT_THAT(error, HasSubstr("corrupt"));
    EXPECT_TRUE(read_bytes(file_) == before) << "the refused file was changed";
}

TEST_F(RefusedFileTest, DirectoryInPlaceOfTheFileIsRefused) {
    fs::create_directory(file_);
    const std::string error = open_error();
    EXPECT_THAT(error, HasSubstr(file_.string()));
    EXPECT_THAT(error, HasSubstr("it is a directory, not a regular file"));
    EXPECT_TRUE(fs::is_directory(file_));
    EXPECT_TRUE(fs::is_empty(file_));
}

// A FIFO would make SQLite wait forever for bytes: refused before SQLite sees it.
TEST_F(RefusedFileTest, FifoInPlaceOfTheFileIsRefused) {
    ASSERT_EQ(::mkfifo(file_.c_str(), 0600), 0);
    const std::string error = open_error();
    EXPECT_THAT(error, HasSubstr(file_.string()));
    EXPECT_THAT(error, HasSubstr("it is a FIFO"));
    EXPECT_TRUE(fs::is_fifo(file_));
}

TEST_F(RefusedFileTest, NewerSchemaIsRefusedWithAdvice) {
    make_real_database();
    RawDatabase(file_).exec("PRAGMA user_version = 7");
    const std::string before = read_bytes(file_);
    EXPECT_EQ(open_error(),
              file_.string() +
                  ": database schema version 7 is newer than this portwarden understands (1): "
                  "downgrade is not supported; keep the file and upgrade portwarden, or move the "
                  "file away to start empty");
    EXPECT_TRUE(read_bytes(file_) == before) << "the refused file was changed";
    EXPECT_EQ(RawDatabase(file_).text("PRAGMA user_version"), "7");
}

TEST_F(RefusedFileTest, AnotherProgramsDatabaseIsRefused) {
    RawDatabase(file_).exec("CREATE TABLE mail (id INTEGER PRIMARY KEY, body TEXT)");
    expect_refused("not a portwarden database (it has tables but no schema version)");
}

TEST_F(RefusedFileTest, AnotherProgramsVersionedDatabaseIsRefused) {
    RawDatabase raw(file_);
    raw.exec("CREATE TABLE mail (id INTEGER PRIMARY KEY, body TEXT); PRAGMA user_version = 1");
    expect_refused("not a portwarden database (application_id 0, schema version 1)");
}

// --- Migrations ------------------------------------------------------------------------------

// A schema history of two versions: the real v1 and a test-only v2.
constexpr std::array<std::string_view, 2> kTestV2 = {
    "CREATE TABLE notes (profile_id TEXT PRIMARY KEY, note TEXT NOT NULL) STRICT",
    "INSERT INTO notes SELECT id, 'migrated ' || name FROM profiles",
};
constexpr std::array<std::string_view, 2> kBrokenV2 = {
    "CREATE TABLE notes (profile_id TEXT PRIMARY KEY, note TEXT NOT NULL) STRICT",
    "INSERT INTO no_such_table VALUES (1)",
};

TEST_F(DatabaseTest, OpeningAVersion1FileAppliesTheNewerMigrations) {
    const std::array<Migration, 1> v1 = {schema_migrations()[0]};
    {
        auto database = open_ok(v1);
        ASSERT_NE(database, nullptr);
        ASSERT_TRUE(write(*database, {PutProfile{profile("curl-id", "curl")}}));
    }
    EXPECT_EQ(RawDatabase(file_).text("PRAGMA user_version"), "1");

    const std::array<Migration, 2> v2 = {schema_migrations()[0], Migration{kTestV2}};
    {
        auto database = open_ok(v2);
        ASSERT_NE(database, nullptr);
        const StoredState state = load(*database);
        ASSERT_EQ(state.profiles.size(), 1U);
        EXPECT_EQ(state.profiles[0], profile("curl-id", "curl"));
    }
    RawDatabase raw(file_);
    EXPECT_EQ(raw.text("PRAGMA user_version"), "2");
    EXPECT_EQ(raw.text("SELECT note FROM notes WHERE profile_id = ?1", "curl-id"), "migrated curl");
}

TEST_F(DatabaseTest, AFailedMigrationChangesNothing) {
    const std::array<Migration, 1> v1 = {schema_migrations()[0]};
    {
        auto database = open_ok(v1);
        ASSERT_NE(database, nullptr);
        ASSERT_TRUE(write(*database, {PutProfile{profile("curl-id", "curl")}}));
    }
    const std::array<Migration, 2> broken = {schema_migrations()[0], Migration{kBrokenV2}};
    const std::string error = open_error(broken);
    EXPECT_THAT(error, HasSubstr(file_.string() + ": migration to schema version 2 failed"));
    EXPECT_THAT(error, HasSubstr("no such table: no_such_table"));

    RawDatabase raw(file_);
    EXPECT_EQ(raw.text("PRAGMA user_version"), "1");
    EXPECT_EQ(raw.text("SELECT name FROM sqlite_schema WHERE name = 'notes'"), "");
    EXPECT_EQ(raw.text("SELECT name FROM profiles WHERE id = ?1", "curl-id"), "curl");
}

TEST_F(DatabaseTest, AFileMigratedByANewerBuildIsRefusedByTheOlderOne) {
    const std::array<Migration, 2> v2 = {schema_migrations()[0], Migration{kTestV2}};
    ASSERT_NE(open_ok(v2), nullptr);
    const std::array<Migration, 1> v1 = {schema_migrations()[0]};
    EXPECT_THAT(open_error(v1), HasSubstr("database schema version 2 is newer than this "
                                          "portwarden understands (1)"));
}

// --- Writes ----------------------------------------------------------------------------------

TEST_F(DatabaseTest, EveryWriteKindSurvivesReopening) {
    const StoredProfile curl = profile("curl-id", "curl");
    const StoredProfile kernel{.id = "_kernel",
                               .name = "Kernel",
                               .source = StoredProfile::Source::Special,
                               .created_ms = 5};
    {
        auto database = open_ok();
        ASSERT_NE(database, nullptr);
        ASSERT_TRUE(write(*database, {SetSetting{"filter/defaultAction", R"("ask")", 10},
                                      SetSetting{"filter/blockLAN", "true", 11},
                                      SetSetting{"dns/nameservers", R"(["1.1.1.1"])", 12}}));
        ASSERT_TRUE(write(*database, {SetSetting{"filter/blockLAN", std::nullopt, 13}}));
        ASSERT_TRUE(write(*database, {PutProfile{curl}, PutProfile{kernel}}));
        const auto service = RuleListKind::ServiceEndpoints;
        ASSERT_TRUE(write(*database, {AddRuleStats{{stat("curl-id", "+ .example.com", 3, 500),
                                                    stat("", "+ * tcp/22", 1, 7, service)}}}));
        // Added to the count; last_match stays 500, the later of the two.
        ASSERT_TRUE(write(*database, {AddRuleStats{{stat("curl-id", "+ .example.com", 4, 400)}}}));
        ASSERT_TRUE(write(*database, {PutTimedRule{timed(1, "curl-id", "- 10.0.0.1", 9000)},
                                      PutTimedRule{timed(2, "", "+ * udp/53", 9100, service)},
                                      PutTimedRule{timed(3, "curl-id", "+ x.org", 9200)}}));
        ASSERT_TRUE(write(*database, {DeleteTimedRule{3}}));
        ASSERT_TRUE(write(*database, {TouchProfiles{{{"curl-id", 2000},
                                                     {"_kernel", 1}, // later than its 0
                                                     {"unknown", 3000}}}}));
    }
    auto database = open_ok();
    ASSERT_NE(database, nullptr);
    const StoredState state = load(*database);

    EXPECT_EQ(state.settings, (std::vector<StoredSetting>{
                                  {"dns/nameservers", R"(["1.1.1.1"])", 12},
                                  {"filter/defaultAction", R"("ask")", 10},
                              }));
    StoredProfile touched_curl = curl;
    touched_curl.last_seen_ms = 2000;
    StoredProfile touched_kernel = kernel;
    touched_kernel.last_seen_ms = 1; // max(0, 1)
    EXPECT_EQ(state.profiles, (std::vector<StoredProfile>{touched_kernel, touched_curl}));
    EXPECT_EQ(state.rule_stats, (std::vector<StoredRuleStat>{
                                    stat("", "+ * tcp/22", 1, 7, RuleListKind::ServiceEndpoints),
                                    stat("curl-id", "+ .example.com", 7, 500),
                                }));
    EXPECT_EQ(state.timed_rules,
              (std::vector<StoredTimedRule>{
                  timed(1, "curl-id", "- 10.0.0.1", 9000),
                  timed(2, "", "+ * udp/53", 9100, RuleListKind::ServiceEndpoints),
              }));
}

TEST_F(DatabaseTest, TouchNeverMovesLastSeenBack) {
    auto database = open_ok();
    ASSERT_NE(database, nullptr);
    ASSERT_TRUE(write(*database, {PutProfile{profile("curl-id", "curl")}}));
    ASSERT_TRUE(write(*database, {TouchProfiles{{{"curl-id", 5}}}}));
    EXPECT_EQ(load(*database).profiles.at(0).last_seen_ms, 1200);
}

TEST_F(DatabaseTest, DeletingAProfileDeletesItsStatsAndTimedRulesOnly) {
    auto database = open_ok();
    ASSERT_NE(database, nullptr);
    ASSERT_TRUE(write(*database, {PutProfile{profile("a", "a")}, PutProfile{profile("b", "b")}}));
    ASSERT_TRUE(write(
        *database,
        {AddRuleStats{{stat("a", "+ *", 1, 1), stat("b", "+ *", 2, 2), stat("", "+ *", 3, 3)}},
         PutTimedRule{timed(1, "a", "+ *", 10)}, PutTimedRule{timed(2, "b", "+ *", 10)},
         PutTimedRule{timed(3, "", "+ *", 10)}}));
    ASSERT_TRUE(write(*database, {DeleteProfile{"a"}}));
    const StoredState state = load(*database);
    EXPECT_EQ(state.profiles, std::vector<StoredProfile>{profile("b", "b")});
    EXPECT_EQ(state.rule_stats,
              (std::vector<StoredRuleStat>{stat("", "+ *", 3, 3), stat("b", "+ *", 2, 2)}));
    EXPECT_EQ(state.timed_rules,
              (std::vector<StoredTimedRule>{timed(2, "b", "+ *", 10), timed(3, "", "+ *", 10)}));
}

TEST_F(DatabaseTest, StatsThatArriveAfterTheirProfileWasDeletedAreDropped) {
    auto database = open_ok();
    ASSERT_NE(database, nullptr);
    ASSERT_TRUE(write(*database, {AddRuleStats{{stat("gone", "+ *", 1, 1)}}}));
    EXPECT_TRUE(load(*database).rule_stats.empty());
}

TEST_F(DatabaseTest, TimedRuleOfAnUnknownProfileIsRefused) {
    auto database = open_ok();
    ASSERT_NE(database, nullptr);
    const Status status = write(*database, {PutTimedRule{timed(1, "gone", "+ *", 10)}});
    ASSERT_FALSE(status);
    EXPECT_THAT(status.error().message(),
                HasSubstr(file_.string() + ": cannot store timed rule 1 of profile 'gone': no "
                                           "such profile"));
}

TEST_F(DatabaseTest, TheEmptyProfileIdIsRefused) {
    auto database = open_ok();
    ASSERT_NE(database, nullptr);
    const Status deleted = write(*database, {DeleteProfile{""}});
    ASSERT_FALSE(deleted);
    EXPECT_THAT(deleted.error().message(), HasSubstr("a profile ID is never empty"));
    const Status put = write(*database, {PutProfile{profile("", "nameless")}});
    ASSERT_FALSE(put);
    EXPECT_THAT(put.error().message(), HasSubstr("CHECK constraint failed"));
}

TEST_F(DatabaseTest, PutProfileReplacesTheWholeRow) {
    auto database = open_ok();
    ASSERT_NE(database, nullptr);
    ASSERT_TRUE(write(*database, {PutProfile{profile("curl-id", "curl")}}));
    const StoredProfile replacement{.id = "curl-id",
                                    .name = "curl (user)",
                                    .source = StoredProfile::Source::User,
                                    .fingerprints_json = "[]",
                                    .settings_json = "{}",
                                    .created_ms = 1,
                                    .first_seen_ms = 2,
                                    .last_seen_ms = 3};
    ASSERT_TRUE(write(*database, {PutProfile{replacement}}));
    EXPECT_EQ(load(*database).profiles, std::vector<StoredProfile>{replacement});
}

TEST_F(DatabaseTest, RefusedWriteKeepsTheOldRowAndTheDatabaseStaysUsable) {
    auto database = open_ok();
    ASSERT_NE(database, nullptr);
    const StoredProfile curl = profile("curl-id", "curl");
    ASSERT_TRUE(write(*database, {PutProfile{curl}}));

    StoredProfile broken = curl;
    broken.name = "half written";
    broken.settings_json = R"({"filter/defaultAction": )"; // cut off: not JSON
    const Status refused = write(*database, {PutProfile{broken}});
    ASSERT_FALSE(refused);
    EXPECT_THAT(refused.error().message(),
                HasSubstr(file_.string() + ": cannot store profile 'curl-id': CHECK constraint "
                                           "failed"));
    EXPECT_EQ(load(*database).profiles, std::vector<StoredProfile>{curl});

    StoredProfile not_an_object = curl;
    not_an_object.settings_json = "[]";
    EXPECT_FALSE(write(*database, {PutProfile{not_an_object}}));
    EXPECT_FALSE(write(*database, {SetSetting{"filter/blockLAN", "tru", 1}}));

    ASSERT_TRUE(write(*database, {PutProfile{profile("next", "next")}}));
    EXPECT_EQ(load(*database).profiles.size(), 2U);
}

TEST_F(DatabaseTest, ABatchIsOneTransaction) {
    auto database = open_ok();
    ASSERT_NE(database, nullptr);
    StoredProfile broken = profile("b", "b");
    broken.fingerprints_json = "{}"; // an object where an array belongs
    EXPECT_FALSE(write(*database, {PutProfile{profile("a", "a")},
                                   SetSetting{"filter/blockLAN", "true", 1}, PutProfile{broken}}));
    const StoredState state = load(*database);
    EXPECT_TRUE(state.profiles.empty());
    EXPECT_TRUE(state.settings.empty());
}

TEST_F(DatabaseTest, HostileTextIsStoredAsIs) {
    auto database = open_ok();
    ASSERT_NE(database, nullptr);
    using namespace std::string_literals;
    StoredProfile hostile = profile("x'); DROP TABLE profiles; --", "\"; DELETE FROM settings;");
    hostile.name += "\0nul and more"s + "\xe2\x9c\x93 ?1 %s";
    hostile.settings_json = R"({"filter/endpoints":["- ' OR 1=1 --"]})";
    const std::string key = "filter/x'; DROP TABLE settings; --";
    ASSERT_TRUE(write(*database, {PutProfile{hostile}, SetSetting{key, R"("'")", 1}}));
    ASSERT_TRUE(write(*database, {AddRuleStats{{stat(hostile.id, "+ '; --", 1, 1)}}}));
    const StoredState state = load(*database);
    EXPECT_EQ(state.profiles, std::vector<StoredProfile>{hostile});
    ASSERT_EQ(state.settings.size(), 1U);
    EXPECT_EQ(state.settings[0].key, key);
    ASSERT_EQ(state.rule_stats.size(), 1U);
    EXPECT_EQ(state.rule_stats[0].rule, "+ '; --");
}

TEST_F(DatabaseTest, CompletionsArriveInOrderOnTheOwnersLoop) {
    auto database = open_ok();
    ASSERT_NE(database, nullptr);
    std::vector<int> order;
    std::vector<int> expected;
    for (int index = 0; index < 50; ++index) {
        expected.push_back(index);
        database->put_profile(
            profile("id" + std::to_string(index), "app"),
            [&order, index](const Status& status) { order.push_back(status ? index : -1); });
    }
    EXPECT_TRUE(order.empty()); // nothing runs before the owner's loop runs it
    database->flush();
    loop_.run();
    EXPECT_EQ(order, expected);
}

TEST_F(DatabaseTest, CompletionComesAfterTheCommitIsVisibleToOthers) {
    std::vector<std::string> seen;
    auto opened = Database::open(file_, run_inline);
    ASSERT_TRUE(opened) << opened.error().message();
    Database& database = **opened;
    for (int index = 0; index < 5; ++index) {
        const std::string id = "id" + std::to_string(index);
        database.put_profile(profile(id, "app " + id), [this, &seen, id](const Status& status) {
            seen.push_back(
                status ? RawDatabase(file_).text("SELECT name FROM profiles WHERE id = ?1", id)
                       : status.error().message());
        });
    }
    database.flush();
    EXPECT_EQ(seen,
              (std::vector<std::string>{"app id0", "app id1", "app id2", "app id3", "app id4"}));
}

TEST_F(DatabaseTest, LoadSeesEveryWriteQueuedBeforeIt) {
    auto database = open_ok();
    ASSERT_NE(database, nullptr);
    for (int index = 0; index < 20; ++index) {
        database->put_profile(profile("id" + std::to_string(index), "app"));
    }
    EXPECT_EQ(load(*database).profiles.size(), 20U);
}

TEST_F(DatabaseTest, DestructionCommitsWhatIsQueued) {
    {
        auto database = open_ok();
        ASSERT_NE(database, nullptr);
        for (int index = 0; index < 20; ++index) {
            database->put_profile(profile("id" + std::to_string(index), "app"));
        }
    }
    EXPECT_EQ(RawDatabase(file_).text("SELECT count(*) FROM profiles"), "20");
}

// A full disk, made real without root: the kernel refuses to grow files past RLIMIT_FSIZE
// (EFBIG). The write fails with an error, the old row stays, and once there is room again the
// same database carries on.
TEST_F(DatabaseTest, FullDiskIsAnErrorAndTheDatabaseCarriesOn) {
    auto database = open_ok();
    ASSERT_NE(database, nullptr);
    const StoredProfile curl = profile("curl-id", "curl");
    ASSERT_TRUE(write(*database, {PutProfile{curl}}));

    rlimit old_limit{};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
    struct sigaction ignore{};
    struct sigaction old_action{};
    ignore.sa_handler = SIG_IGN; // NOLINT(cppcoreguidelines-pro-type-cstyle-cast): SIG_IGN
    ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &old_action), 0);
    rlimit small = old_limit;
    small.rlim_cur = rlim_t{256} * 1024;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);

    StoredProfile huge = curl;
    huge.name = "huge";
    huge.settings_json =
        R"({"filter/endpoints":[")" + std::string(std::size_t{1024} * 1024, 'x') + R"("]})";
    const Status full = write(*database, {PutProfile{huge}});

    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old_limit), 0);
    ASSERT_EQ(::sigaction(SIGXFSZ, &old_action, nullptr), 0);

    ASSERT_FALSE(full) << "the write of 1 MiB succeeded under a 256 KiB file size limit";
    // SQLite writes the log at the commit, or earlier when the change outgrows its small page
    // cache (it spills): the kernel says no at the one or the other.
    EXPECT_THAT(full.error().message(), HasSubstr(file_.string() + ": cannot "));
    EXPECT_THAT(full.error().message(), HasSubstr(" profile 'curl-id': disk I/O error"));
    EXPECT_EQ(load(*database).profiles, std::vector<StoredProfile>{curl});
    ASSERT_TRUE(write(*database, {PutProfile{huge}}));
    EXPECT_EQ(load(*database).profiles, std::vector<StoredProfile>{huge});
    EXPECT_EQ(RawDatabase(file_).text("PRAGMA quick_check"), "ok");
}

} // namespace
} // namespace pw::profile
