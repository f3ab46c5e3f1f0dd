// The connection history with a million rows (issue 11, item 4): fills a temporary
// history.sqlite once with 1,000,000 connections of 30 days (200 applications, 5,000 domains,
// both skewed as real traffic is: a few applications and domains make most connections) and
// 300,000 DNS queries, then measures
//   - a query by application and time range (the target: under 100 ms), as a first
//     page of 100 rows and as every row of the range,
//   - the top-domains and top-blocked aggregates over one day, a text search over one day,
//   - batch insert throughput (rows/s) into a second file.
// Each query runs as single-query repetitions, so p50 and p99 are of single queries.
// Not a test: `build/release/bench/pw_history_bench [--benchmark_filter=...]`
// (bench/README.md, "History"). Set PW_HISTORY_BENCH_DIR to keep the file between runs.

#include <stdlib.h> // NOLINT(modernize-deprecated-headers): mkdtemp is POSIX

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "history/history_store.h"

namespace {

using namespace pw::history; // NOLINT(google-build-using-namespace): a benchmark of this room
namespace fs = std::filesystem;
using BenchClock = std::chrono::steady_clock;

constexpr std::int64_t kRows = 1'000'000;
constexpr std::int64_t kDnsRows = 300'000;
constexpr int kApplications = 200;
constexpr int kDomains = 5000;
constexpr std::int64_t kDay = 24LL * 60 * 60 * 1000;
constexpr std::int64_t kDays = 30;
constexpr std::int64_t kT0 = 1'780'000'000'000; // the first row's start, unix ms
constexpr std::size_t kFillBatch = 10'000;

// Skewed picks: u^3 puts most of the mass on the low indexes.
int skewed(std::mt19937_64& random, int count) {
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(random);
    return std::min(count - 1, static_cast<int>(std::pow(u, 3.0) * count));
}

std::string application(int index) {
    return fmt::format("app{}", index);
}
std::string domain(int index) {
    return fmt::format("host{}.example{}.com", index, index % 97);
}

ConnectionRecord make_connection(std::uint64_t id, std::int64_t start_ms, std::mt19937_64& random) {
    const int app = skewed(random, kApplications);
    const int dom = skewed(random, kDomains);
    const bool blocked = random() % 10 == 0;
    return ConnectionRecord{
        .id = id,
        .profile_id = application(app),
        .executable = fmt::format("/usr/bin/{}", application(app)),
        .pid = 1000 + app,
        .uid = 1000,
        .user = "alice",
        .local_address = "192.168.1.20",
        .local_port = static_cast<std::uint16_t>(32768 + id % 28000),
        .remote_address = fmt::format("198.51.{}.{}", dom % 256, dom / 256),
        .remote_port = 443,
        .protocol = 6,
        .direction = Direction::Outbound,
        .domain = random() % 20 == 0 ? "" : domain(dom),
        .verdict = blocked ? Verdict::Block : Verdict::Accept,
        .reason =
            blocked ? fmt::format("rule '- {}' (app, profile '{}')", domain(dom), application(app))
                    : "default action: permit (global)",
        .start_ms = start_ms,
        .end_ms = {},
        .bytes_in = 0,
        .bytes_out = 0,
        .packets_in = 0,
        .packets_out = 0,
    };
}

// One batch of `count` connections starting at `first_id`, ends for most of them, and DNS
// queries in proportion.
Batch make_batch(std::uint64_t first_id, std::size_t count, std::int64_t first_ms,
                 std::int64_t step_ms, std::mt19937_64& random) {
    Batch batch;
    for (std::size_t i = 0; i < count; ++i) {
        const std::int64_t start = first_ms + static_cast<std::int64_t>(i) * step_ms;
        batch.connections.push_back(make_connection(first_id + i, start, random));
        if (random() % 10 != 0) {
            batch.ends.push_back(
                ConnectionEnd{.id = first_id + i,
                              .end_ms = start + static_cast<std::int64_t>(random() % 60'000),
                              .bytes_in = random() % 1'000'000,
                              .bytes_out = random() % 50'000,
                              .packets_in = random() % 1000,
                              .packets_out = random() % 500});
        }
        if (i % (kRows / kDnsRows) == 0) {
            const int dom = skewed(random, kDomains);
            const bool blocked = random() % 10 == 0;
            batch.dns_queries.push_back(DnsQueryRecord{
                .id = 0,
                .time_ms = start,
                .profile_id = application(skewed(random, kApplications)),
                .executable = "/usr/bin/app",
                .pid = 1000,
                .domain = domain(dom),
                .type = 1,
                .rcode = "NOERROR",
                .source = blocked ? "blocked" : "upstream",
                .blocked = blocked,
                .reason = blocked ? "filter list ads" : "",
                .answers = fmt::format("198.51.{}.{}", dom % 256, dom / 256),
            });
        }
    }
    return batch;
}

struct Fixture {
    fs::path directory;
    bool remove = true;
    std::unique_ptr<HistoryStore> store;
};

Fixture& fixture() {
    static Fixture instance;
    return instance;
}

void fail(const std::string& message) {
    fmt::print(stderr, "{}\n", message);
    std::exit(1); // NOLINT(concurrency-mt-unsafe): at start
}

// Fills the file once (or reuses PW_HISTORY_BENCH_DIR's), then reopens it as the daemon would.
void prepare() {
    Fixture& f = fixture();
    // NOLINTNEXTLINE(concurrency-mt-unsafe): read once at start, before any thread
    if (const char* kept = std::getenv("PW_HISTORY_BENCH_DIR"); kept != nullptr) {
        f.directory = kept;
        f.remove = false;
        fs::create_directories(f.directory);
    } else {
        std::string pattern = (fs::temp_directory_path() / "pw-history-bench-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            fail("cannot create a temporary directory");
        }
        f.directory = pattern;
    }
    const fs::path file = f.directory / kHistoryFileName;
    {
        auto store = HistoryStore::open(file);
        if (!store) {
            fail(store.error().message());
        }
        auto next = (*store)->next_id();
        if (next && *next == 1) {
            std::mt19937_64 random(17);
            const std::int64_t step = kDays * kDay / kRows;
            const auto begin = BenchClock::now();
            for (std::int64_t first = 0; first < kRows; first += kFillBatch) {
                const Batch batch = make_batch(static_cast<std::uint64_t>(first) + 1, kFillBatch,
                                               kT0 + first * step, step, random);
                if (auto written = (*store)->write_batch(batch); !written) {
                    fail(written.error().message());
                }
            }
            const double seconds = std::chrono::duration<double>(BenchClock::now() - begin).count();
            fmt::print("fill: {} connections (+ends, +{} DNS queries) in {:.1f} s: {:.0f} rows/s\n",
                       kRows, kDnsRows, seconds, static_cast<double>(kRows) / seconds);
        }
    }
    // The daemon's start (Deferred) and a start that proves the file first (AtOpen).
    for (const auto check : {IntegrityCheck::Deferred, IntegrityCheck::AtOpen}) {
        const auto begin = BenchClock::now();
        auto store = HistoryStore::open(file, OpenMode::ReadWrite, check);
        if (!store) {
            fail(store.error().message());
        }
        fmt::print("open ({}) of {:.0f} MB: {:.0f} ms\n",
                   check == IntegrityCheck::AtOpen ? "quick_check" : "check deferred",
                   static_cast<double>(fs::file_size(file)) / 1e6,
                   std::chrono::duration<double, std::milli>(BenchClock::now() - begin).count());
    }
    auto store = HistoryStore::open(file, OpenMode::ReadOnly);
    if (!store) {
        fail(store.error().message());
    }
    f.store = std::move(*store);
}

double percentile(std::vector<double> values, double share) {
    std::ranges::sort(values);
    const auto index = static_cast<std::size_t>(share * static_cast<double>(values.size() - 1));
    return values[index];
}

// Single-query repetitions with p50 and p99 of them.
void single_queries(benchmark::internal::Benchmark* bench) {
    bench->Iterations(1)
        ->Repetitions(300)
        ->ReportAggregatesOnly(true)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond)
        ->ComputeStatistics("p50", [](const std::vector<double>& v) { return percentile(v, 0.50); })
        ->ComputeStatistics("p99",
                            [](const std::vector<double>& v) { return percentile(v, 0.99); });
}

std::mt19937_64& query_random() {
    static std::mt19937_64 random(4242);
    return random;
}

// A random application (uniformly: the rare ones too) and a window of `days` in the 30 days.
ConnectionQuery app_window(std::int64_t days, std::size_t limit) {
    auto& random = query_random();
    const auto app = static_cast<int>(random() % kApplications);
    const auto start = kT0 + static_cast<std::int64_t>(
                                 random() % static_cast<std::uint64_t>((kDays - days) * kDay + 1));
    return ConnectionQuery{.from_ms = start,
                           .to_ms = start + days * kDay,
                           .profile_id = application(app),
                           .limit = limit};
}

std::int64_t random_day() {
    return kT0 +
           static_cast<std::int64_t>(query_random()() % static_cast<std::uint64_t>(kDays - 1)) *
               kDay;
}

void run_query(benchmark::State& state, const ConnectionQuery& query) {
    std::size_t rows = 0;
    for (auto _ : state) { // NOLINT(clang-analyzer-deadcode.DeadStores): the gbench idiom
        auto page = fixture().store->connections(query);
        if (!page) {
            state.SkipWithError(page.error().message().c_str());
            return;
        }
        rows = page->rows.size();
        benchmark::DoNotOptimize(page);
    }
    state.counters["rows"] = static_cast<double>(rows);
}

// The benchmark: an application's connections in a time range, first page.
void app_and_week_first_page(benchmark::State& state) {
    run_query(state, app_window(7, 100));
}
BENCHMARK(app_and_week_first_page)->Apply(single_queries);

// Every row of an application in a week (up to the largest page).
void app_and_week_all_rows(benchmark::State& state) {
    run_query(state, app_window(7, HistoryStore::kMaxPageSize));
}
BENCHMARK(app_and_week_all_rows)->Apply(single_queries);

// Every row of an application in the whole 30 days (the busiest ones hit the page limit).
void app_and_month_all_rows(benchmark::State& state) {
    run_query(state, app_window(kDays, HistoryStore::kMaxPageSize));
}
BENCHMARK(app_and_month_all_rows)->Apply(single_queries);

void run_aggregate(benchmark::State& state, bool blocked) {
    const std::int64_t day = random_day();
    for (auto _ : state) { // NOLINT(clang-analyzer-deadcode.DeadStores): the gbench idiom
        auto counts = blocked ? fixture().store->top_blocked(GroupBy::Domain, day, day + kDay, 20)
                              : fixture().store->top(GroupBy::Domain, day, day + kDay, 20);
        if (!counts) {
            state.SkipWithError(counts.error().message().c_str());
            return;
        }
        benchmark::DoNotOptimize(counts);
    }
}

void top_domains_of_a_day(benchmark::State& state) {
    run_aggregate(state, false);
}
BENCHMARK(top_domains_of_a_day)->Apply(single_queries);

void top_blocked_domains_of_a_day(benchmark::State& state) {
    run_aggregate(state, true);
}
BENCHMARK(top_blocked_domains_of_a_day)->Apply(single_queries);

void text_search_in_a_day(benchmark::State& state) {
    const std::int64_t day = random_day();
    run_query(state, ConnectionQuery{.from_ms = day,
                                     .to_ms = day + kDay,
                                     .text = fmt::format("example{}", query_random()() % 97),
                                     .limit = 100});
}
BENCHMARK(text_search_in_a_day)->Apply(single_queries);

// Throughput of the writer's transactions: batches of state.range(0) connections (with ends
// and DNS queries, as make_batch() mixes them) into a second file that grows meanwhile.
void insert_batch(benchmark::State& state) {
    const fs::path file = fixture().directory / "insert.sqlite";
    fs::remove(file);
    auto store = HistoryStore::open(file);
    if (!store) {
        state.SkipWithError(store.error().message().c_str());
        return;
    }
    std::mt19937_64 random(99);
    const auto size = static_cast<std::size_t>(state.range(0));
    std::uint64_t next = 1;
    for (auto _ : state) { // NOLINT(clang-analyzer-deadcode.DeadStores): the gbench idiom
        state.PauseTiming();
        const Batch batch =
            make_batch(next, size, kT0 + static_cast<std::int64_t>(next) * 2000, 2000, random);
        next += size;
        state.ResumeTiming();
        if (auto written = (*store)->write_batch(batch); !written) {
            state.SkipWithError(written.error().message().c_str());
            return;
        }
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
    store->reset();
    fs::remove(file);
    fs::remove(file.string() + "-wal");
    fs::remove(file.string() + "-shm");
}
BENCHMARK(insert_batch)
    ->Arg(100)
    ->Arg(1000)
    ->Arg(10'000)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

} // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    prepare();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    Fixture& f = fixture();
    f.store.reset();
    if (f.remove) {
        std::error_code ignored;
        fs::remove_all(f.directory, ignored);
    }
    return 0;
}
