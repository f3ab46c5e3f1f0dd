#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "common/result.h"
#include "firewall/decide.h"

namespace pw::profile {

// --- What the file holds (schema v1; docs in the design of issue 9, "Storage") ---------------
// JSON columns are text here: the caller validates them against the settings schema. The file
// itself only refuses text that is not JSON of the right kind (CHECK constraints), so that a
// bug upstream can never store a row that load() cannot hand back.

// One global setting: `value_json` is the JSON text of its value.
struct StoredSetting {
    std::string key; // "filter/defaultAction"
    std::string value_json;
    std::int64_t updated_ms = 0; // unix time, milliseconds

    friend bool operator==(const StoredSetting&, const StoredSetting&) = default;
};

// One profile, always written and read as a whole row.
struct StoredProfile {
    enum class Source : std::uint8_t { Auto, User, Special }; // 'auto' | 'user' | 'special'

    std::string id; // never empty: the empty ID means "global" in rule stats and timed rules
    std::string name;
    Source source = Source::Auto;
    std::string fingerprints_json = "[]"; // a JSON array
    std::string settings_json = "{}";     // a JSON object of per-application keys
    std::int64_t created_ms = 0;
    std::int64_t first_seen_ms = 0;
    std::int64_t last_seen_ms = 0;

    friend bool operator==(const StoredProfile&, const StoredProfile&) = default;
};

// How often one rule matched. `profile_id` empty = a global rule. In AddRuleStats, `matches` is
// the number of new matches, added to the stored count.
struct StoredRuleStat {
    std::string profile_id;
    firewall::RuleListKind list = firewall::RuleListKind::Endpoints;
    std::string rule; // the rule's text, e.g. "+ .example.com"
    std::int64_t matches = 0;
    std::int64_t last_match_ms = 0;

    friend bool operator==(const StoredRuleStat&, const StoredRuleStat&) = default;
};

// A rule that applies until a wall-clock time (a prompt answered "for 15 minutes"). The caller
// numbers them (e.g. from the highest ID load() returned), so that it can delete them later
// without waiting for the write.
struct StoredTimedRule {
    std::int64_t id = 0;
    std::string profile_id; // empty = global
    firewall::RuleListKind list = firewall::RuleListKind::Endpoints;
    std::string rule;
    std::int64_t expires_ms = 0; // unix time, milliseconds

    friend bool operator==(const StoredTimedRule&, const StoredTimedRule&) = default;
};

// Everything in the file, as load() reads it at start.
struct StoredState {
    std::vector<StoredSetting> settings;      // by key
    std::vector<StoredProfile> profiles;      // by (created, id): the order that breaks ties
    std::vector<StoredRuleStat> rule_stats;   // by (profile_id, list, rule)
    std::vector<StoredTimedRule> timed_rules; // by id
};

// --- Writes ------------------------------------------------------------------------------------
// Each write is one of these; a batch of them is one transaction.

struct SetSetting {
    std::string key;
    std::optional<std::string> value_json; // nullopt deletes the key (back to the default)
    std::int64_t updated_ms = 0;
};
struct PutProfile { // inserts the profile or replaces its whole row
    StoredProfile profile;
};
struct DeleteProfile { // also deletes its rule stats and timed rules
    std::string id;
};
struct AddRuleStats { // adds the counts; stats of a profile that no longer exists are dropped
    std::vector<StoredRuleStat> deltas;
};
struct PutTimedRule { // fails when its profile does not exist
    StoredTimedRule rule;
};
struct DeleteTimedRule {
    std::int64_t id = 0;
};
struct ProfileSeen {
    std::string id;
    std::int64_t last_seen_ms = 0;
};
struct TouchProfiles { // moves last_seen forward (never back); unknown IDs are ignored
    std::vector<ProfileSeen> seen;
};
using Write = std::variant<SetSetting, PutProfile, DeleteProfile, AddRuleStats, PutTimedRule,
                           DeleteTimedRule, TouchProfiles>;

// One step of the schema: the statements that take the file from version N-1 to N, applied in
// one transaction together with `PRAGMA user_version = N`.
struct Migration {
    std::span<const std::string_view> statements;
};

// The schema this build writes: migrations[i] makes version i + 1.
[[nodiscard]] std::span<const Migration> schema_migrations();

// The durable store of settings and profiles: one SQLite file (WAL, synchronous=FULL), so that
// a kill -9 at any moment loses no acknowledged change and never leaves half a row.
//
// Threads: open() and load() are called by the owner (the daemon's event-loop thread, at
// start). Writes are queued by the owner and executed in order, each batch in one transaction,
// on the database's own worker thread, which is the only thread that touches the SQLite
// connection after open(). Each write's completion is handed to the Poster AFTER its commit
// returned; the Poster is called on the worker thread and must move the call to the owner's
// loop (asio::post). Errors of a write (disk full, I/O error, a refused row) arrive as a failed
// Status; the transaction is rolled back, the file keeps its previous state and the next write
// is tried as usual. Values are only ever bound as parameters, never written into SQL text.
// The packet path never calls this class.
class Database {
public:
    using Poster = std::function<void(std::function<void()>)>;
    using Completion = std::function<void(Status)>; // may be empty: nobody waits

    // Opens `file`, or creates it (and its missing directories, mode 0700) when it does not
    // exist, and brings its schema to the newest version. Fails, naming the file, when it is not
    // a regular file, is not a database or is corrupt (PRAGMA integrity_check), belongs to another
    // program, or has a schema newer than this build knows. It never deletes, truncates or
    // replaces an existing file: a failed open() leaves its bytes as they were. An existing
    // empty file is a new database (there is nothing in it to lose). `post` must not be empty.
    [[nodiscard]] static Result<std::unique_ptr<Database>> open(const std::filesystem::path& file,
                                                                Poster post);
    // The same with another schema history, for tests of the migration mechanism.
    [[nodiscard]] static Result<std::unique_ptr<Database>> open(
        const std::filesystem::path& file, Poster post, std::span<const Migration> migrations);

    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;
    Database(Database&&) = delete;
    Database& operator=(Database&&) = delete;
    // Commits everything still queued, hands its completions to the Poster, stops the worker.
    ~Database();

    [[nodiscard]] const std::filesystem::path& file() const { return file_; }

    // Reads everything, after every write queued before the call. Blocks.
    [[nodiscard]] Result<StoredState> load();

    // Queues one transaction. `done` gets the outcome through the Poster after the commit.
    void write(std::vector<Write> batch, Completion done = {});

    void set_setting(std::string key, std::optional<std::string> value_json,
                     std::int64_t updated_ms, Completion done = {});
    void put_profile(StoredProfile profile, Completion done = {});
    void delete_profile(std::string id, Completion done = {});
    void add_rule_stats(std::vector<StoredRuleStat> deltas, Completion done = {});
    void put_timed_rule(StoredTimedRule rule, Completion done = {});
    void delete_timed_rule(std::int64_t id, Completion done = {});
    void touch_profiles(std::vector<ProfileSeen> seen, Completion done = {});

    // Blocks until every write queued before the call is committed (or failed) and its
    // completion handed to the Poster. For shutdown and tests. Never call load() or flush()
    // from a completion that the Poster runs inline on the worker thread: it would wait for
    // itself.
    void flush();

private:
    class Connection; // the SQLite handle and its statements (database.cc)
    using Job = std::move_only_function<void()>;

    Database(std::filesystem::path file, std::unique_ptr<Connection> connection, Poster post);
    void enqueue(Job job);
    void run_worker();

    const std::filesystem::path file_;
    const std::unique_ptr<Connection> connection_; // touched by the worker thread only
    const Poster post_;

    // The queue between the owner and the worker. Not a Guarded<T>: the worker waits on it
    // with a condition variable, which needs the mutex itself.
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Job> jobs_;  // guarded by mutex_
    bool stopping_ = false; // guarded by mutex_

    std::thread worker_; // last: starts after everything above exists
};

} // namespace pw::profile
