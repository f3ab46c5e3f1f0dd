#include "history/history_store.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "history/history_test_support.h"

namespace pw::history {
namespace {

namespace fs = std::filesystem;
using testing::connection_record;
using testing::dns_record;
using ::testing::HasSubstr;
using testing::RawDatabase;
using testing::read_bytes;
using testing::TempDir;
using testing::write_bytes;

constexpr std::int64_t kDay = 24LL * 60 * 60 * 1000;
constexpr std::int64_t kT0 = 1'780'000'000'000; // a wall-clock time in 2026, in ms

class HistoryStoreTest : public ::testing::Test {
protected:
    std::unique_ptr<HistoryStore> open_store() {
        auto store = HistoryStore::open(file_);
        EXPECT_TRUE(store.has_value()) << store.error().message();
        return store ? std::move(*store) : nullptr;
    }

    void write(HistoryStore& store, const Batch& batch) {
        auto outcome = store.write_batch(batch);
        ASSERT_TRUE(outcome.has_value()) << outcome.error().message();
    }

    std::vector<std::uint64_t> ids(HistoryStore& store, const ConnectionQuery& query) {
        auto page = store.connections(query);
        EXPECT_TRUE(page.has_value()) << page.error().message();
        std::vector<std::uint64_t> result;
        if (page) {
            for (const auto& row : page->rows) {
                result.push_back(row.id);
            }
        }
        return result;
    }

    // A history of 2,000 rows whose middle page (of the table or an index) is garbage.
    std::string corrupt_file() {
        {
            auto store = open_store();
            EXPECT_TRUE(store);
            Batch batch;
            for (std::uint64_t id = 1; id <= 2000; ++id) {
                batch.connections.push_back(connection_record(id, "app", "example.com", kT0));
            }
            write(*store, batch);
        } // closing the last connection checkpoints the WAL into the file
        std::string bytes = read_bytes(file_);
        EXPECT_GT(bytes.size(), 4U * 4096);
        std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(bytes.size() / 2),
                  bytes.begin() + static_cast<std::ptrdiff_t>(bytes.size() / 2 + 4096), '\xA5');
        write_bytes(file_, bytes);
        return bytes;
    }

    TempDir dir_;
    fs::path file_ = dir_.path() / "data" / "history.sqlite";
};

// --- Writes ----------------------------------------------------------------------------------

TEST_F(HistoryStoreTest, ConnectionsAndDnsQueriesReadBackAsWritten) {
    auto store = open_store();
    ASSERT_TRUE(store);
    ConnectionRecord inbound = connection_record(2, "sshd", "", kT0 + 5, Verdict::Block);
    inbound.direction = Direction::Inbound;
    inbound.protocol = 17;
    inbound.local_address = "2001:db8::1";
    const Batch batch{.connections = {connection_record(1, "curl", "example.com", kT0), inbound},
                      .ends = {},
                      .dns_queries = {dns_record(kT0 + 1, "firefox", "example.org", true)}};
    write(*store, batch);

    auto one = store->connection(1);
    ASSERT_TRUE(one.has_value()) << one.error().message();
    ASSERT_TRUE(one->has_value());
    EXPECT_EQ(**one, batch.connections[0]);
    auto two = store->connection(2);
    ASSERT_TRUE(two.has_value() && two->has_value());
    EXPECT_EQ(**two, inbound);
    auto missing = store->connection(3);
    ASSERT_TRUE(missing.has_value());
    EXPECT_FALSE(missing->has_value());

    auto queries = store->dns_queries({});
    ASSERT_TRUE(queries.has_value()) << queries.error().message();
    ASSERT_EQ(queries->rows.size(), 1U);
    DnsQueryRecord expected = batch.dns_queries[0];
    expected.id = queries->rows[0].id; // given by the store
    EXPECT_EQ(queries->rows[0], expected);
}

TEST_F(HistoryStoreTest, EndFillsEndTimeAndCountsAndSurvivesALaterRecordOfTheSameId) {
    auto store = open_store();
    ASSERT_TRUE(store);
    ConnectionRecord record = connection_record(7, "curl", "example.com", kT0, Verdict::Pending);
    write(*store, {.connections = {record}, .ends = {}, .dns_queries = {}});
    const ConnectionEnd end{.id = 7,
                            .end_ms = kT0 + 900,
                            .bytes_in = 5000,
                            .bytes_out = 300,
                            .packets_in = 9,
                            .packets_out = 4};
    auto outcome =
        store->write_batch({.connections = {}, .ends = {end, {.id = 99}}, .dns_queries = {}});
    ASSERT_TRUE(outcome.has_value()) << outcome.error().message();
    EXPECT_EQ(outcome->unmatched_ends, 1U); // 99 was never written

    // The decision arrives after the end (a prompt answered late): it replaces the verdict and
    // keeps the end.
    record.verdict = Verdict::Accept;
    record.reason = "prompt answered: allow";
    write(*store, {.connections = {record}, .ends = {}, .dns_queries = {}});

    auto stored = store->connection(7);
    ASSERT_TRUE(stored.has_value() && stored->has_value());
    EXPECT_EQ((*stored)->verdict, Verdict::Accept);
    EXPECT_EQ((*stored)->reason, "prompt answered: allow");
    EXPECT_EQ((*stored)->end_ms, kT0 + 900);
    EXPECT_EQ((*stored)->bytes_in, 5000U);
    EXPECT_EQ((*stored)->bytes_out, 300U);
    EXPECT_EQ((*stored)->packets_in, 9U);
    EXPECT_EQ((*stored)->packets_out, 4U);
}

TEST_F(HistoryStoreTest, EndInTheSameBatchAsItsConnectionFindsIt) {
    auto store = open_store();
    ASSERT_TRUE(store);
    auto outcome = store->write_batch({.connections = {connection_record(1, "a", "x.com", kT0)},
                                       .ends = {{.id = 1, .end_ms = kT0 + 1, .bytes_in = 1}},
                                       .dns_queries = {}});
    ASSERT_TRUE(outcome.has_value());
    EXPECT_EQ(outcome->unmatched_ends, 0U);
    auto stored = store->connection(1);
    ASSERT_TRUE(stored.has_value() && stored->has_value());
    EXPECT_EQ((*stored)->end_ms, kT0 + 1);
}

// --- Queries ---------------------------------------------------------------------------------

class HistoryQueryTest : public HistoryStoreTest {
protected:
    void SetUp() override {
        store_ = open_store();
        ASSERT_TRUE(store_);
        ConnectionRecord blocked =
            connection_record(4, "curl", "ads.example.net", kT0 + 3000, Verdict::Block);
        blocked.reason = "filter list AdGuard";
        ConnectionRecord other_exe = connection_record(5, "firefox", "Mozilla.org", kT0 + 4000);
        other_exe.executable = "/usr/lib/firefox/firefox";
        write(
            *store_,
            {.connections = {connection_record(1, "curl", "example.com", kT0),
                             connection_record(2, "curl", "example.com", kT0 + 1000),
                             connection_record(3, "wget", "example.com", kT0 + 2000, Verdict::Drop),
                             blocked, other_exe},
             .ends = {},
             .dns_queries = {}});
    }

    std::unique_ptr<HistoryStore> store_;
};

TEST_F(HistoryQueryTest, NoFilterGivesEverythingNewestFirst) {
    EXPECT_EQ(ids(*store_, {}), (std::vector<std::uint64_t>{5, 4, 3, 2, 1}));
}

TEST_F(HistoryQueryTest, TimeRangeIncludesFromAndExcludesTo) {
    EXPECT_EQ(ids(*store_, {.from_ms = kT0 + 1000, .to_ms = kT0 + 3000}),
              (std::vector<std::uint64_t>{3, 2}));
}

TEST_F(HistoryQueryTest, ApplicationFilterMatchesTheProfileId) {
    EXPECT_EQ(ids(*store_, {.profile_id = "curl"}), (std::vector<std::uint64_t>{4, 2, 1}));
    EXPECT_EQ(ids(*store_, {.from_ms = kT0 + 500, .to_ms = kT0 + 3500, .profile_id = "curl"}),
              (std::vector<std::uint64_t>{4, 2}));
    EXPECT_TRUE(ids(*store_, {.profile_id = "nobody"}).empty());
}

TEST_F(HistoryQueryTest, DomainFilterIsExact) {
    EXPECT_EQ(ids(*store_, {.domain = "example.com"}), (std::vector<std::uint64_t>{3, 2, 1}));
    EXPECT_TRUE(ids(*store_, {.domain = "example"}).empty());
}

TEST_F(HistoryQueryTest, VerdictFilter) {
    EXPECT_EQ(ids(*store_, {.verdict = Verdict::Drop}), (std::vector<std::uint64_t>{3}));
    EXPECT_EQ(ids(*store_, {.verdict = Verdict::Accept}), (std::vector<std::uint64_t>{5, 2, 1}));
}

TEST_F(HistoryQueryTest, TextSearchIsACaseInsensitiveSubstringOfSeveralColumns) {
    EXPECT_EQ(ids(*store_, {.text = "MOZILLA"}), (std::vector<std::uint64_t>{5}));     // domain
    EXPECT_EQ(ids(*store_, {.text = "lib/firefox"}), (std::vector<std::uint64_t>{5})); // exe
    EXPECT_EQ(ids(*store_, {.text = "adguard"}), (std::vector<std::uint64_t>{4}));     // reason
    EXPECT_EQ(ids(*store_, {.text = "wge"}), (std::vector<std::uint64_t>{3}));         // profile
    EXPECT_EQ(ids(*store_, {.text = "198.51.100"}).size(), 5U); // remote address
    // Characters that LIKE would treat as wildcards are plain text here.
    EXPECT_TRUE(ids(*store_, {.text = "%"}).empty());
    EXPECT_TRUE(ids(*store_, {.text = "_"}).empty());
}

TEST_F(HistoryQueryTest, FiltersCombine) {
    EXPECT_EQ(ids(*store_, {.profile_id = "curl", .domain = "example.com", .text = "curl"}),
              (std::vector<std::uint64_t>{2, 1}));
    EXPECT_TRUE(ids(*store_, {.profile_id = "curl", .verdict = Verdict::Drop}).empty());
}

TEST_F(HistoryStoreTest, PagesCoverEveryRowOnceInOrderAlsoWithEqualStartTimes) {
    auto store = open_store();
    ASSERT_TRUE(store);
    Batch batch;
    for (std::uint64_t id = 1; id <= 25; ++id) {
        // Pairs of equal start times: the ID breaks the tie.
        batch.connections.push_back(connection_record(id, id % 2 == 0 ? "even" : "odd",
                                                      "example.com",
                                                      kT0 + static_cast<std::int64_t>(id / 2)));
    }
    write(*store, batch);

    std::vector<std::uint64_t> seen;
    ConnectionQuery query{.limit = 4};
    int pages = 0;
    for (;;) {
        auto page = store->connections(query);
        ASSERT_TRUE(page.has_value()) << page.error().message();
        ASSERT_LE(page->rows.size(), 4U);
        for (const auto& row : page->rows) {
            seen.push_back(row.id);
        }
        ++pages;
        if (!page->next) {
            break;
        }
        query.after = page->next;
    }
    EXPECT_EQ(pages, 7); // 6 full pages and 1 of one row
    std::vector<std::uint64_t> expected;
    for (std::uint64_t id = 25; id >= 1; --id) {
        expected.push_back(id);
    }
    EXPECT_EQ(seen, expected);

    // A page that ends exactly at the last row has no cursor.
    auto all = store->connections({.limit = 25});
    ASSERT_TRUE(all.has_value());
    EXPECT_EQ(all->rows.size(), 25U);
    EXPECT_FALSE(all->next.has_value());
}

TEST_F(HistoryStoreTest, DnsQueriesFilterAndPage) {
    auto store = open_store();
    ASSERT_TRUE(store);
    write(*store, {.connections = {},
                   .ends = {},
                   .dns_queries = {dns_record(kT0, "firefox", "example.org"),
                                   dns_record(kT0 + 1, "firefox", "ads.example.net", true),
                                   dns_record(kT0 + 2, "curl", "example.org"),
                                   dns_record(kT0 + 3, "curl", "tracker.example", true)}});
    const auto domains = [&](const DnsQuery& query) {
        auto page = store->dns_queries(query);
        EXPECT_TRUE(page.has_value()) << page.error().message();
        std::vector<std::string> result;
        for (const auto& row : page->rows) {
            result.push_back(row.domain);
        }
        return result;
    };
    using Names = std::vector<std::string>;
    EXPECT_EQ(domains({}),
              (Names{"tracker.example", "example.org", "ads.example.net", "example.org"}));
    EXPECT_EQ(domains({.from_ms = kT0 + 1, .to_ms = kT0 + 3}),
              (Names{"example.org", "ads.example.net"}));
    EXPECT_EQ(domains({.profile_id = "curl"}), (Names{"tracker.example", "example.org"}));
    EXPECT_EQ(domains({.domain = "example.org"}), (Names{"example.org", "example.org"}));
    EXPECT_EQ(domains({.blocked = true}), (Names{"tracker.example", "ads.example.net"}));
    EXPECT_EQ(domains({.blocked = false}), (Names{"example.org", "example.org"}));
    EXPECT_EQ(domains({.text = "TRACK"}), (Names{"tracker.example"}));

    auto first = store->dns_queries({.limit = 3});
    ASSERT_TRUE(first.has_value() && first->next.has_value());
    auto second = store->dns_queries({.limit = 3, .after = first->next});
    ASSERT_TRUE(second.has_value());
    ASSERT_EQ(second->rows.size(), 1U);
    EXPECT_EQ(second->rows[0].time_ms, kT0);
    EXPECT_FALSE(second->next.has_value());
}

// --- Aggregates ------------------------------------------------------------------------------

TEST_F(HistoryStoreTest, AggregatesCountByApplicationAndDomainOverTheRange) {
    auto store = open_store();
    ASSERT_TRUE(store);
    Batch batch;
    std::uint64_t id = 0;
    const auto add = [&](const std::string& app, const std::string& domain, Verdict verdict,
                         std::int64_t at) {
        batch.connections.push_back(connection_record(++id, app, domain, at, verdict));
    };
    for (int i = 0; i < 3; ++i) {
        add("firefox", "mozilla.org", Verdict::Accept, kT0 + i);
    }
    add("firefox", "ads.example", Verdict::Block, kT0 + 10);
    add("firefox", "ads.example", Verdict::Drop, kT0 + 11);
    add("curl", "example.com", Verdict::Accept, kT0 + 20);
    add("curl", "ads.example", Verdict::Block, kT0 + 21);
    add("ping", "", Verdict::Block, kT0 + 30);             // no domain
    add("old", "old.example", Verdict::Block, kT0 - kDay); // outside the range
    batch.ends.push_back({.id = 1, .end_ms = kT0 + 100, .bytes_in = 1000, .bytes_out = 10});
    batch.ends.push_back({.id = 2, .end_ms = kT0 + 100, .bytes_in = 500, .bytes_out = 5});
    write(*store, batch);

    auto apps = store->top(GroupBy::Application, kT0, kT0 + kDay, 10);
    ASSERT_TRUE(apps.has_value()) << apps.error().message();
    EXPECT_EQ(
        *apps,
        (std::vector<Count>{
            {.key = "firefox", .connections = 5, .blocked = 2, .bytes_in = 1500, .bytes_out = 15},
            {.key = "curl", .connections = 2, .blocked = 1},
            {.key = "ping", .connections = 1, .blocked = 1},
        }));

    auto domains = store->top(GroupBy::Domain, kT0, kT0 + kDay, 2);
    ASSERT_TRUE(domains.has_value()) << domains.error().message();
    ASSERT_EQ(domains->size(), 2U); // the limit
    EXPECT_EQ((*domains)[0].key, "ads.example");
    EXPECT_EQ((*domains)[0].connections, 3);
    EXPECT_EQ((*domains)[1].key, "mozilla.org");

    auto blocked_domains = store->top_blocked(GroupBy::Domain, kT0, kT0 + kDay, 10);
    ASSERT_TRUE(blocked_domains.has_value()) << blocked_domains.error().message();
    ASSERT_EQ(blocked_domains->size(), 1U); // only domains with a blocked connection; no ""
    EXPECT_EQ((*blocked_domains)[0].key, "ads.example");
    EXPECT_EQ((*blocked_domains)[0].blocked, 3);

    auto blocked_apps = store->top_blocked(GroupBy::Application, kT0, kT0 + kDay, 10);
    ASSERT_TRUE(blocked_apps.has_value());
    std::vector<std::string> keys;
    for (const auto& count : *blocked_apps) {
        keys.push_back(count.key);
    }
    // Most blocked first, then by name.
    EXPECT_EQ(keys, (std::vector<std::string>{"firefox", "curl", "ping"}));

    auto earlier = store->top_blocked(GroupBy::Application, kT0 - kDay, kT0, 10);
    ASSERT_TRUE(earlier.has_value());
    ASSERT_EQ(earlier->size(), 1U);
    EXPECT_EQ((*earlier)[0].key, "old");
}

// --- Pruning ---------------------------------------------------------------------------------

TEST_F(HistoryStoreTest, PruneByAgeRemovesOlderRowsOfBothTables) {
    auto store = open_store();
    ASSERT_TRUE(store);
    Batch batch;
    for (std::uint64_t id = 1; id <= 12'000; ++id) { // more than one prune chunk
        batch.connections.push_back(
            connection_record(id, "app", "example.com", kT0 + static_cast<std::int64_t>(id)));
    }
    batch.dns_queries = {dns_record(kT0, "app", "old.example"),
                         dns_record(kT0 + 20'000, "app", "new.example")};
    write(*store, batch);

    auto outcome = store->prune(kT0 + 11'001, std::uint64_t{1} << 40);
    ASSERT_TRUE(outcome.has_value()) << outcome.error().message();
    EXPECT_EQ(outcome->connections_removed, 11'000);
    EXPECT_EQ(outcome->dns_queries_removed, 1);
    auto rest = store->connections({.limit = 10'000});
    ASSERT_TRUE(rest.has_value());
    ASSERT_EQ(rest->rows.size(), 1000U);
    EXPECT_EQ(rest->rows.back().id, 11'001U);
    auto queries = store->dns_queries({});
    ASSERT_TRUE(queries.has_value());
    ASSERT_EQ(queries->rows.size(), 1U);
    EXPECT_EQ(queries->rows[0].domain, "new.example");
}

TEST_F(HistoryStoreTest, PruneStopsAtItsRowBudgetAndTheNextCallContinues) {
    auto store = open_store();
    ASSERT_TRUE(store);
    Batch batch;
    for (std::uint64_t id = 1; id <= 12'000; ++id) {
        batch.connections.push_back(
            connection_record(id, "app", "example.com", kT0 + static_cast<std::int64_t>(id)));
    }
    write(*store, batch);
    std::vector<std::int64_t> removed;
    for (;;) {
        auto outcome = store->prune(kT0 + kDay, std::uint64_t{1} << 40, 5000);
        ASSERT_TRUE(outcome.has_value()) << outcome.error().message();
        removed.push_back(outcome->connections_removed);
        if (outcome->complete) {
            break;
        }
        ASSERT_LT(removed.size(), 5U);
    }
    EXPECT_EQ(removed, (std::vector<std::int64_t>{5000, 5000, 2000}));
}

TEST_F(HistoryStoreTest, PruneBySizeKeepsTheNewestRowsUnderTheCapAndShrinksTheFile) {
    auto store = open_store();
    ASSERT_TRUE(store);
    Batch batch;
    for (std::uint64_t id = 1; id <= 20'000; ++id) {
        ConnectionRecord record = connection_record(id, "app" + std::to_string(id % 50),
                                                    "d" + std::to_string(id % 500) + ".example",
                                                    kT0 + static_cast<std::int64_t>(id));
        record.reason = std::string(200, 'r'); // about 5 MB in all
        batch.connections.push_back(std::move(record));
    }
    write(*store, batch);
    auto before = store->used_bytes();
    ASSERT_TRUE(before.has_value());
    ASSERT_GT(*before, 4'000'000U);
    const std::uint64_t cap = *before / 2;

    auto outcome = store->prune(0, cap); // nothing is too old
    ASSERT_TRUE(outcome.has_value()) << outcome.error().message();
    EXPECT_GT(outcome->connections_removed, 0);
    auto after = store->used_bytes();
    ASSERT_TRUE(after.has_value());
    EXPECT_LE(*after, cap);
    // The oldest went: what is left is a run of the newest IDs.
    auto rest = store->connections({.limit = HistoryStore::kMaxPageSize});
    ASSERT_TRUE(rest.has_value());
    ASSERT_FALSE(rest->rows.empty());
    EXPECT_EQ(rest->rows.front().id, 20'000U);
    EXPECT_EQ(rest->rows.back().id, 20'000U - rest->rows.size() + 1);
    // Incremental vacuum gave the pages back: the file is about as large as what it holds.
    EXPECT_LE(fs::file_size(file_), cap + cap / 10);

    // Under the cap, prune does nothing.
    auto again = store->prune(0, cap);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->connections_removed, 0);
}

// --- Connection IDs --------------------------------------------------------------------------

TEST_F(HistoryStoreTest, NextIdIsAboveEveryIdEverWrittenAcrossReopenAndPrune) {
    {
        auto store = open_store();
        ASSERT_TRUE(store);
        auto first = store->next_id();
        ASSERT_TRUE(first.has_value());
        EXPECT_EQ(*first, 1U);
        write(*store, {.connections = {connection_record(5, "a", "", kT0),
                                       connection_record(9, "a", "", kT0)},
                       .ends = {},
                       .dns_queries = {}});
        auto next = store->next_id();
        ASSERT_TRUE(next.has_value());
        EXPECT_EQ(*next, 10U);
    }
    {
        auto store = open_store();
        ASSERT_TRUE(store);
        auto next = store->next_id();
        ASSERT_TRUE(next.has_value());
        EXPECT_EQ(*next, 10U);
        // Everything pruned: the ID still does not go back.
        ASSERT_TRUE(store->prune(kT0 + 1, std::uint64_t{1} << 40).has_value());
        ASSERT_TRUE(ids(*store, {}).empty());
    }
    auto store = open_store();
    ASSERT_TRUE(store);
    auto next = store->next_id();
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(*next, 10U);
}

// --- Refused files ---------------------------------------------------------------------------

TEST_F(HistoryStoreTest, ReadOnlyStoreSeesCommittedRowsWhileTheWriterIsOpen) {
    auto writer = open_store();
    ASSERT_TRUE(writer);
    auto reader = HistoryStore::open(file_, OpenMode::ReadOnly);
    ASSERT_TRUE(reader.has_value()) << reader.error().message();
    write(*writer,
          {.connections = {connection_record(1, "a", "", kT0)}, .ends = {}, .dns_queries = {}});
    EXPECT_EQ(ids(**reader, {}), (std::vector<std::uint64_t>{1}));
    EXPECT_FALSE((*reader)
                     ->write_batch({.connections = {connection_record(2, "a", "", kT0)},
                                    .ends = {},
                                    .dns_queries = {}})
                     .has_value());
}

TEST_F(HistoryStoreTest, ReadOnlyOpenOfAMissingFileFailsAndCreatesNothing) {
    auto store = HistoryStore::open(file_, OpenMode::ReadOnly);
    ASSERT_FALSE(store.has_value());
    EXPECT_THAT(store.error().message(), HasSubstr(file_.string()));
    EXPECT_FALSE(fs::exists(file_));
}

TEST_F(HistoryStoreTest, FileThatIsNotADatabaseIsRefusedAndKept) {
    fs::create_directories(file_.parent_path());
    const std::string garbage(8192, 'x');
    write_bytes(file_, garbage);
    auto store = HistoryStore::open(file_);
    ASSERT_FALSE(store.has_value());
    EXPECT_THAT(store.error().message(), HasSubstr(file_.string()));
    EXPECT_THAT(store.error().message(), HasSubstr("not a database"));
    EXPECT_EQ(read_bytes(file_), garbage);
    EXPECT_FALSE(fs::exists(file_.string() + "-wal"));
}

TEST_F(HistoryStoreTest, CorruptDatabaseIsRefusedAndKept) {
    const std::string bytes = corrupt_file();
    auto store = HistoryStore::open(file_);
    ASSERT_FALSE(store.has_value());
    EXPECT_THAT(store.error().message(), HasSubstr(file_.string()));
    EXPECT_THAT(store.error().message(), HasSubstr("corrupt"));
    EXPECT_EQ(read_bytes(file_), bytes);
}

TEST_F(HistoryStoreTest, DeferredCheckOpensACorruptFileButNeverWritesIt) {
    const std::string bytes = corrupt_file();
    auto store = HistoryStore::open(file_, OpenMode::ReadWrite, IntegrityCheck::Deferred);
    ASSERT_TRUE(store.has_value()) << store.error().message();
    const Batch batch{
        .connections = {connection_record(9000, "a", "", kT0)}, .ends = {}, .dns_queries = {}};
    for (int attempt = 0; attempt < 2; ++attempt) { // the failure is kept, not checked again
        auto written = (*store)->write_batch(batch);
        ASSERT_FALSE(written.has_value());
        EXPECT_THAT(written.error().message(), HasSubstr(file_.string()));
        EXPECT_THAT(written.error().message(), HasSubstr("corrupt"));
    }
    auto pruned = (*store)->prune(kT0 + kDay, 1);
    ASSERT_FALSE(pruned.has_value());
    EXPECT_THAT(pruned.error().message(), HasSubstr("corrupt"));
    store->reset();
    EXPECT_EQ(read_bytes(file_), bytes);
}

TEST_F(HistoryStoreTest, NewFileAndDirectoriesAreTheOwnersOnly) {
    {
        auto store = open_store();
        ASSERT_TRUE(store);
    }
    EXPECT_EQ(fs::status(file_).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write);
    EXPECT_EQ(fs::status(file_.parent_path()).permissions() & fs::perms::all, fs::perms::owner_all);
}

TEST_F(HistoryStoreTest, NewerSchemaIsRefusedAndKept) {
    {
        auto store = open_store();
        ASSERT_TRUE(store);
    }
    {
        RawDatabase raw(file_);
        raw.exec("PRAGMA user_version = 99");
    }
    const std::string bytes = read_bytes(file_);
    auto store = HistoryStore::open(file_);
    ASSERT_FALSE(store.has_value());
    EXPECT_THAT(store.error().message(), HasSubstr(file_.string()));
    EXPECT_THAT(store.error().message(), HasSubstr("newer"));
    EXPECT_EQ(read_bytes(file_), bytes);
}

TEST_F(HistoryStoreTest, AnotherProgramsDatabaseIsRefusedAndKept) {
    fs::create_directories(file_.parent_path());
    {
        RawDatabase raw(file_);
        raw.exec("CREATE TABLE notes (text TEXT)");
    }
    const std::string bytes = read_bytes(file_);
    auto store = HistoryStore::open(file_);
    ASSERT_FALSE(store.has_value());
    EXPECT_THAT(store.error().message(), HasSubstr("not a portwarden history"));
    EXPECT_EQ(read_bytes(file_), bytes);
}

TEST_F(HistoryStoreTest, DirectoryInPlaceOfTheFileIsRefused) {
    fs::create_directories(file_);
    auto store = HistoryStore::open(file_);
    ASSERT_FALSE(store.has_value());
    EXPECT_THAT(store.error().message(), HasSubstr("not a regular file"));
}

TEST_F(HistoryStoreTest, NewFileIsWalWithIncrementalVacuum) {
    {
        auto store = open_store();
        ASSERT_TRUE(store);
    }
    RawDatabase raw(file_);
    EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");
    EXPECT_EQ(raw.text("PRAGMA auto_vacuum"), "2"); // incremental
    EXPECT_EQ(raw.text("PRAGMA user_version"), "1");
    EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
}

} // namespace
} // namespace pw::history
