#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "history/record.h"

namespace pw::history {

// The `{}` on members without another default: GCC 12 warns (-Wmissing-field-initializers)
// about a designated initializer that leaves them out; clang-tidy calls them redundant.

// The file's name in the data directory: its own file, apart from the settings database, so
// that its write rate, its size and a corrupt history never touch settings and profiles.
inline constexpr std::string_view kHistoryFileName = "history.sqlite";

enum class OpenMode : std::uint8_t {
    ReadWrite, // creates the file and migrates the schema: the writer's connection
    ReadOnly,  // for readers (the API) on their own thread; the file must exist and be current
};

// When open() proves the file sound (PRAGMA quick_check reads every page: about 2 s for a
// million rows, 330 MB, on the benchmark machine).
enum class IntegrityCheck : std::uint8_t {
    AtOpen,   // open() fails on a corrupt file
    Deferred, // for the daemon's start, which must not wait: the first write_batch() or
              // prune() runs the check on the thread that writes (the HistoryWriter's, whose
              // first round prunes). If it fails, that and every later write or prune fails with
              // the check's error and the file is never written; reads still work.
};

// Where a page of results ends: pass it back as `after` for the next (older) page. Keyset
// pagination, so that page 500 costs what page 1 costs.
struct PageCursor {
    std::int64_t time_ms = 0;
    std::int64_t id = 0;

    friend bool operator==(const PageCursor&, const PageCursor&) = default;
};

// Filters of a connection query; every set filter must match. Results are newest first
// (by start, then ID).
struct ConnectionQuery {
    std::int64_t from_ms = std::numeric_limits<std::int64_t>::min(); // start >= from
    std::int64_t to_ms = std::numeric_limits<std::int64_t>::max();   // start < to
    std::optional<std::string> profile_id{}; // NOLINT(readability-redundant-member-init): GCC 12
    // Exact: the domain as the connection recorded it.
    std::optional<std::string> domain{}; // NOLINT(readability-redundant-member-init): GCC 12
    std::optional<Verdict> verdict{};    // NOLINT(readability-redundant-member-init): GCC 12
    // A case-insensitive (ASCII) substring of the domain, executable, remote address, profile ID
    // or reason. Scans the rows that the other filters leave: combine it with a time range.
    std::optional<std::string> text{}; // NOLINT(readability-redundant-member-init): GCC 12
    std::size_t limit = 100;           // page size, at most kMaxPageSize
    std::optional<PageCursor> after{}; // NOLINT(readability-redundant-member-init): GCC 12
};

// Filters of a DNS query search; the same rules as ConnectionQuery, by the query's time.
struct DnsQuery {
    std::int64_t from_ms = std::numeric_limits<std::int64_t>::min();
    std::int64_t to_ms = std::numeric_limits<std::int64_t>::max();
    std::optional<std::string> profile_id{}; // NOLINT(readability-redundant-member-init): GCC 12
    std::optional<std::string> domain{};     // NOLINT(readability-redundant-member-init): GCC 12
    std::optional<bool> blocked{};           // NOLINT(readability-redundant-member-init): GCC 12
    std::optional<std::string> text{};       // NOLINT(readability-redundant-member-init): GCC 12
    std::size_t limit = 100;
    std::optional<PageCursor> after{}; // NOLINT(readability-redundant-member-init): GCC 12
};

template <typename Row>
struct Page {
    std::vector<Row> rows;
    // nullopt on the last page.
    std::optional<PageCursor> next{}; // NOLINT(readability-redundant-member-init): GCC 12
};

// One line of an aggregate: an application (profile ID) or a domain with its counts over the
// time range. `blocked` counts the connections with verdict Block or Drop.
struct Count {
    std::string key;
    std::int64_t connections = 0;
    std::int64_t blocked = 0;
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;

    friend bool operator==(const Count&, const Count&) = default;
};

enum class GroupBy : std::uint8_t { Application, Domain };

// What write_batch() did beyond the inserts.
struct BatchOutcome {
    std::size_t unmatched_ends = 0; // ends whose connection is not in the history (never
                                    // written: history was off, or its record was dropped)
};

// What prune() removed.
struct PruneOutcome {
    std::int64_t connections_removed = 0;
    std::int64_t dns_queries_removed = 0;
    bool complete = true; // false: the row budget ran out; call prune() again
};

// The connection and DNS history: one SQLite file (WAL, synchronous=NORMAL). A commit is in
// the WAL when write_batch() returns, so a kill -9 of the daemon loses nothing committed; a
// power cut may lose the last commits but never corrupts the file (WAL + NORMAL, SQLite's
// documented guarantee).
//
// Threads: one HistoryStore is one SQLite connection and is used by one thread at a time (the
// HistoryWriter's thread for the ReadWrite store; each reader opens its own ReadOnly store).
// WAL lets readers run while the writer commits. Values are always bound as parameters.
class HistoryStore {
public:
    static constexpr std::size_t kMaxPageSize = 10'000;

    // Opens `file` (normally <data-dir>/history.sqlite). ReadWrite creates it (0600) and its
    // missing directories (0700) and migrates the schema. Fails, naming the file and changing
    // nothing, when it is not a database, belongs to another program, has a newer schema than
    // this build knows, or (IntegrityCheck::AtOpen) is corrupt.
    [[nodiscard]] static Result<std::unique_ptr<HistoryStore>> open(
        const std::filesystem::path& file, OpenMode mode = OpenMode::ReadWrite,
        IntegrityCheck check = IntegrityCheck::AtOpen);

    HistoryStore(const HistoryStore&) = delete;
    HistoryStore& operator=(const HistoryStore&) = delete;
    HistoryStore(HistoryStore&&) = delete;
    HistoryStore& operator=(HistoryStore&&) = delete;
    ~HistoryStore();

    [[nodiscard]] const std::filesystem::path& file() const { return file_; }

    // The first connection ID that the daemon may hand out in this run: above every ID this
    // file has ever stored, also those pruned since (the high-water mark is kept in the file's
    // meta table, written in the same transaction as the rows). Never 0. Seed the daemon's
    // counter with it before the first connection is recorded.
    [[nodiscard]] Result<std::uint64_t> next_id();

    // Writes one batch in one transaction; on failure nothing of it is written.
    [[nodiscard]] Result<BatchOutcome> write_batch(const Batch& batch);

    [[nodiscard]] Result<Page<ConnectionRecord>> connections(const ConnectionQuery& query);
    [[nodiscard]] Result<Page<DnsQueryRecord>> dns_queries(const DnsQuery& query);
    [[nodiscard]] Result<std::optional<ConnectionRecord>> connection(std::uint64_t id);

    // Aggregates over the connections that started in [from_ms, to_ms), most first.
    // top(): by number of connections. top_blocked(): by number of blocked connections, only
    // keys with at least one. Domain aggregates leave out connections without a domain.
    [[nodiscard]] Result<std::vector<Count>> top(GroupBy group, std::int64_t from_ms,
                                                 std::int64_t to_ms, std::size_t limit);
    [[nodiscard]] Result<std::vector<Count>> top_blocked(GroupBy group, std::int64_t from_ms,
                                                         std::int64_t to_ms, std::size_t limit);

    // Removes connections that started, and DNS queries made, before `older_than_ms`; then, if
    // the used pages exceed `max_bytes`, the oldest rows until they fit (with 10% headroom, so
    // that the next prune does not run again at once); then gives the freed pages back to the
    // file system (incremental vacuum) and truncates the WAL. Works in transactions of a few
    // thousand rows, so that readers wait little, and removes at most `max_rows` rows per call,
    // so that the writer can commit its next batch between calls (a first start with a large
    // backlog would otherwise hold the batches up for as long as the whole prune takes).
    [[nodiscard]] Result<PruneOutcome> prune(
        std::int64_t older_than_ms, std::uint64_t max_bytes,
        std::int64_t max_rows = std::numeric_limits<std::int64_t>::max());

    // The bytes of the pages in use (page_count - freelist_count) * page_size.
    [[nodiscard]] Result<std::uint64_t> used_bytes();

private:
    class Connection; // the SQLite handle and its statements (history_store.cc)

    // For IntegrityCheck::Deferred: runs the check once, and keeps a failure for good.
    [[nodiscard]] Status ensure_integrity();
    // The two halves of prune(); each adds what it removed to `outcome`.
    [[nodiscard]] Status prune_by_age(std::int64_t older_than_ms, std::int64_t max_rows,
                                      PruneOutcome& outcome);
    [[nodiscard]] Status prune_by_size(std::uint64_t max_bytes, std::int64_t max_rows,
                                       PruneOutcome& outcome);

    HistoryStore(std::filesystem::path file, std::unique_ptr<Connection> connection);

    const std::filesystem::path file_;
    const std::unique_ptr<Connection> connection_;
    bool integrity_checked_ = true;
    std::optional<Error> integrity_error_;
};

} // namespace pw::history
