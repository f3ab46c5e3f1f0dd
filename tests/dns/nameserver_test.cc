#include "dns/nameserver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include "common/unique_fd.h"
#include "dns/resolver.h"

// The nameserver over real sockets on 127.0.0.1 (no root needed), with a resolver and a policy
// played by the test.

namespace pw::dns {
namespace {

using Bytes = std::vector<std::uint8_t>;

void put16(Bytes& out, std::uint16_t value) {
    out.push_back(static_cast<std::uint8_t>(value >> 8U));
    out.push_back(static_cast<std::uint8_t>(value & 0xFFU));
}

void put_name(Bytes& out, std::string_view name) {
    while (!name.empty()) {
        const auto dot = name.find('.');
        const std::string_view label = name.substr(0, dot);
        out.push_back(static_cast<std::uint8_t>(label.size()));
        out.insert(out.end(), label.begin(), label.end());
        name = dot == std::string_view::npos ? std::string_view{} : name.substr(dot + 1);
    }
    out.push_back(0);
}

// A client's query as dig would send it.
Bytes make_query(std::uint16_t id, std::string_view name, std::uint16_t qtype, bool edns = false) {
    Bytes out;
    put16(out, id);
    put16(out, 0x0100); // RD
    put16(out, 1);
    put16(out, 0);
    put16(out, 0);
    put16(out, edns ? 1 : 0);
    put_name(out, name);
    put16(out, qtype);
    put16(out, kClassIn);
    if (edns) {
        out.push_back(0); // root
        put16(out, type::kOpt);
        put16(out, 4096); // UDP payload size
        put16(out, 0);
        put16(out, 0);
        put16(out, 0); // rdlength
    }
    return out;
}

// An upstream's answer to `name`: `count` A records 192.0.2.1, 192.0.2.2, ... with TTL 300.
Bytes make_upstream_answer(std::uint16_t id, std::string_view name, std::uint16_t count) {
    Bytes out;
    put16(out, id);
    put16(out, 0x8180); // QR RD RA
    put16(out, 1);
    put16(out, count);
    put16(out, 0);
    put16(out, 0);
    put_name(out, name);
    put16(out, type::kA);
    put16(out, kClassIn);
    for (std::uint16_t index = 0; index < count; ++index) {
        put16(out, 0xC00C);
        put16(out, type::kA);
        put16(out, kClassIn);
        put16(out, 0);
        put16(out, 300);
        put16(out, 4);
        out.insert(out.end(), {192, 0, 2, static_cast<std::uint8_t>(1 + index % 250)});
    }
    return out;
}

std::shared_ptr<const Answer> make_answer(std::string_view name, std::uint16_t count) {
    const Question question{.name = std::string(name), .type = type::kA, .qclass = kClassIn};
    auto analyzed = analyze_upstream_response(make_upstream_answer(7, name, count), question, 7);
    EXPECT_TRUE(analyzed.has_value()) << analyzed.error().message();
    auto answer = std::make_shared<Answer>();
    answer->rcode = analyzed->rcode;
    answer->addresses = analyzed->addresses;
    answer->wire = analyzed->cached;
    answer->upstream = "dns://192.0.2.53:53";
    return answer;
}

std::uint16_t id_of(const Bytes& message) {
    return static_cast<std::uint16_t>((message.at(0) << 8U) | message.at(1));
}
Rcode rcode_of(const Bytes& message) {
    return static_cast<Rcode>(message.at(3) & 0x0FU);
}
std::uint16_t answer_count(const Bytes& message) {
    return static_cast<std::uint16_t>((message.at(6) << 8U) | message.at(7));
}
bool truncated(const Bytes& message) {
    return (message.at(2) & 0x02U) != 0;
}
// The rdata of the last record: for our one-answer responses, the address.
Bytes last_rdata(const Bytes& message, std::size_t length) {
    return {message.end() - static_cast<std::ptrdiff_t>(length), message.end()};
}

// Answers from a table the test fills, and keeps resolve() calls for the test to complete.
class ScriptedResolver final : public Resolver {
public:
    std::optional<AnswerCache::Hit> cached(const Question& question) override {
        const auto found = cache.find(question.name);
        if (found == cache.end()) {
            return std::nullopt;
        }
        return AnswerCache::Hit{.answer = found->second, .age_seconds = 100};
    }
    void resolve(const Question& question, Callback done) override {
        asked.push_back(question);
        waiting.push_back(std::move(done));
    }
    void expire_cache() override {}
    [[nodiscard]] const Counters& counters() const override { return counters_; }
    [[nodiscard]] const AnswerCache::Counters& cache_counters() const override {
        return cache_counters_;
    }
    [[nodiscard]] std::size_t cache_size() const override { return cache.size(); }
    void shut_down() override {}

    std::map<std::string, std::shared_ptr<const Answer>> cache;
    std::vector<Question> asked;
    std::vector<Callback> waiting;

private:
    Counters counters_;
    AnswerCache::Counters cache_counters_;
};

// Plans by name and records what the nameserver reported.
class ScriptedHandler final : public QueryHandler {
public:
    QueryPlan plan(const ClientQuery& query) override {
        QueryPlan plan;
        if (query.query.question.name.starts_with("blocked")) {
            plan.action = QueryAction::Block;
            plan.reason = "rule '- blocked.example'";
        }
        return plan;
    }
    void review(const ClientQuery& query, QueryPlan& plan, const Answer& answer) override {
        ++reviews;
        if (std::ranges::find(answer.cname_chain, "x.tracker.example") !=
            answer.cname_chain.end()) {
            plan.action = QueryAction::Block;
        }
        // "filtered..." names lose their first address, as an answer filter would.
        if (query.query.question.name.starts_with("filtered") && !answer.addresses.empty()) {
            plan.removed_addresses.push_back(answer.addresses.front());
        }
    }
    void answered(const ClientQuery& query, const QueryPlan& /*plan*/,
                  const QueryOutcome& outcome) override {
        outcomes.push_back({query.query.question.name, outcome.source, outcome.rcode,
                            query.transport, std::string(outcome.failure)});
    }
    std::optional<std::int64_t> connection_process(const ClientConnection& connection) override {
        connections.push_back(connection);
        const auto found = processes.find(connection.client_address.to_string());
        if (found == processes.end()) {
            return std::nullopt;
        }
        return found->second;
    }
    struct Seen {
        std::string name;
        AnswerSource source;
        Rcode rcode;
        ClientTransport transport;
        std::string failure;
    };
    std::vector<Seen> outcomes;
    int reviews = 0;
    std::map<std::string, std::int64_t> processes; // client address -> the PID it names
    std::vector<ClientConnection> connections;
};

class NameserverTest : public ::testing::Test {
protected:
    void SetUp() override { restart({}); }

    // A nameserver of its own (on a new port) with these TCP limits.
    void restart(const TcpLimits& limits) {
        server_.reset();
        const ListenEndpoint loopback{.address = IpAddress::parse("127.0.0.1").value(), .port = 0};
        auto started = Nameserver::start(io_, std::span(&loopback, 1), resolver_, handler_, limits);
        ASSERT_TRUE(started.has_value()) << started.error().message();
        server_ = std::move(*started);
        port_ = server_->endpoints().at(0).port;
        ASSERT_NE(port_, 0);
    }

    [[nodiscard]] sockaddr_in server_address() const {
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port_);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return address;
    }

    // Runs the event loop until `ready` says so or `patience` passed.
    template <typename Ready>
    void run_until(Ready ready, std::chrono::milliseconds patience = std::chrono::seconds(2)) {
        const auto deadline = std::chrono::steady_clock::now() + patience;
        while (!ready() && std::chrono::steady_clock::now() < deadline) {
            io_.poll();
            io_.restart();
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    }

    UniqueFd udp_client() {
        UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0));
        if (!fd.valid()) {
            ADD_FAILURE() << "socket() failed, errno " << errno;
            return fd;
        }
        const sockaddr_in address = server_address();
        // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockaddr API
        EXPECT_EQ(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)),
                  0);
        return fd;
    }

    // Sends one datagram and returns the answer, or nullopt when none came within `patience`.
    std::optional<Bytes> udp_exchange(
        const Bytes& query, std::chrono::milliseconds patience = std::chrono::seconds(2)) {
        UniqueFd fd = udp_client();
        EXPECT_EQ(::send(fd.get(), query.data(), query.size(), 0),
                  static_cast<ssize_t>(query.size()));
        return udp_receive(fd.get(), patience);
    }

    std::optional<Bytes> udp_receive(int fd,
                                     std::chrono::milliseconds patience = std::chrono::seconds(2)) {
        Bytes answer(65536);
        ssize_t received = -1;
        run_until(
            [&] {
                received = ::recv(fd, answer.data(), answer.size(), 0);
                return received >= 0;
            },
            patience);
        if (received < 0) {
            return std::nullopt;
        }
        answer.resize(static_cast<std::size_t>(received));
        return answer;
    }

    // A connection from `source` (any of 127.0.0.0/8 is ours on loopback: a client per address).
    UniqueFd tcp_client(const char* source = "127.0.0.1") {
        UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
        if (!fd.valid()) {
            ADD_FAILURE() << "socket() failed, errno " << errno;
            return fd;
        }
        sockaddr_in local{};
        local.sin_family = AF_INET;
        EXPECT_EQ(::inet_pton(AF_INET, source, &local.sin_addr), 1) << source;
        // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockaddr API
        EXPECT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&local), sizeof(local)), 0)
            << source << ", errno " << errno;
        const sockaddr_in address = server_address();
        // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockaddr API
        EXPECT_EQ(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)),
                  0);
        timeval timeout{.tv_sec = 0, .tv_usec = 1000};
        ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
        return fd;
    }

    static void tcp_send(int fd, const Bytes& message) {
        Bytes framed;
        put16(framed, static_cast<std::uint16_t>(message.size()));
        framed.insert(framed.end(), message.begin(), message.end());
        EXPECT_EQ(::send(fd, framed.data(), framed.size(), 0), static_cast<ssize_t>(framed.size()));
    }

    // Reads one length-prefixed answer; nullopt when the server closed the connection or sent
    // nothing within two seconds.
    std::optional<Bytes> tcp_receive(int fd) {
        Bytes buffer;
        bool closed = false;
        run_until([&] {
            std::array<std::uint8_t, 4096> chunk{};
            const ssize_t received = ::recv(fd, chunk.data(), chunk.size(), MSG_DONTWAIT);
            if (received == 0) {
                closed = true;
            } else if (received > 0) {
                buffer.insert(buffer.end(), chunk.begin(), chunk.begin() + received);
            }
            return closed || (buffer.size() >= 2 &&
                              buffer.size() >= 2U + ((std::size_t{buffer[0]} << 8U) | buffer[1]));
        });
        if (buffer.size() < 2) {
            return std::nullopt;
        }
        return Bytes(buffer.begin() + 2, buffer.end());
    }

    // Whether the server closed the connection within `patience` (what was sent before is read
    // and dropped).
    bool closed_by_server(int fd, std::chrono::milliseconds patience = std::chrono::seconds(2)) {
        bool closed = false;
        run_until(
            [&] {
                std::array<std::uint8_t, 4096> chunk{};
                const ssize_t received = ::recv(fd, chunk.data(), chunk.size(), MSG_DONTWAIT);
                closed = received == 0 || (received < 0 && errno != EAGAIN);
                return closed;
            },
            patience);
        return closed;
    }

    // Runs the event loop until the server has accepted `count` connections in all.
    void wait_accepted(std::uint64_t count) {
        run_until([&] { return server_->counters().tcp_connections >= count; });
        ASSERT_GE(server_->counters().tcp_connections, count);
    }

    // A query answered at once (by the block rule), on an open connection.
    void expect_answered(int fd, std::uint16_t id) {
        tcp_send(fd, make_query(id, "blocked.example", type::kA));
        const auto answer = tcp_receive(fd);
        ASSERT_TRUE(answer.has_value()) << "query " << id;
        EXPECT_EQ(id_of(*answer), id);
    }

    boost::asio::io_context io_;
    ScriptedResolver resolver_;
    ScriptedHandler handler_;
    std::unique_ptr<Nameserver> server_;
    std::uint16_t port_ = 0;
};

// The answer came, with this ID, rcode and number of answer records.
void expect_answer(const std::optional<Bytes>& answer, std::uint16_t id, Rcode rcode,
                   std::uint16_t answers) {
    ASSERT_TRUE(answer.has_value());
    EXPECT_EQ(id_of(*answer), id);
    EXPECT_EQ(rcode_of(*answer), rcode);
    EXPECT_EQ(answer_count(*answer), answers);
}

TEST_F(NameserverTest, BlockedNamesGetTheBlockAddressesWithTheClientsId) {
    const auto v4 = udp_exchange(make_query(0x1234, "blocked.example", type::kA));
    ASSERT_TRUE(v4.has_value());
    EXPECT_EQ(id_of(*v4), 0x1234);
    EXPECT_EQ(rcode_of(*v4), Rcode::NoError);
    ASSERT_EQ(answer_count(*v4), 1);
    EXPECT_EQ(last_rdata(*v4, 4), (Bytes{0, 0, 0, 17}));

    const auto v6 = udp_exchange(make_query(0x4321, "blocked.example", type::kAaaa));
    ASSERT_TRUE(v6.has_value());
    ASSERT_EQ(answer_count(*v6), 1);
    EXPECT_EQ(last_rdata(*v6, 16), (Bytes{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x17}));

    const auto txt = udp_exchange(make_query(0x5555, "blocked.example", type::kTxt));
    ASSERT_TRUE(txt.has_value());
    EXPECT_EQ(rcode_of(*txt), Rcode::NoError);
    EXPECT_EQ(answer_count(*txt), 0);

    ASSERT_EQ(handler_.outcomes.size(), 3U);
    EXPECT_EQ(handler_.outcomes[0].source, AnswerSource::Policy);
    EXPECT_TRUE(resolver_.asked.empty());
    EXPECT_EQ(server_->counters().policy_answers, 3U);
}

TEST_F(NameserverTest, CacheHitsAnswerAtOnceWithTheClientsIdAndQuestion) {
    resolver_.cache["www.example.com"] = make_answer("www.example.com", 1);
    const auto answer = udp_exchange(make_query(0xBEEF, "WWW.Example.com", type::kA));
    ASSERT_TRUE(answer.has_value());
    EXPECT_EQ(id_of(*answer), 0xBEEF);
    EXPECT_EQ(answer_count(*answer), 1);
    EXPECT_EQ(last_rdata(*answer, 4), (Bytes{192, 0, 2, 1}));
    // The question as the client wrote it (0x20 case randomisation must survive).
    const Bytes query = make_query(0xBEEF, "WWW.Example.com", type::kA);
    EXPECT_TRUE(std::equal(query.begin() + 12, query.end(), answer->begin() + 12));
    ASSERT_EQ(handler_.outcomes.size(), 1U);
    EXPECT_EQ(handler_.outcomes[0].source, AnswerSource::Cache);
    EXPECT_EQ(handler_.outcomes[0].name, "www.example.com");
    EXPECT_TRUE(resolver_.asked.empty());
}

TEST_F(NameserverTest, AnswersThroughCnamesAreReviewedBeforeTheyGoOut) {
    auto cloaked = std::make_shared<Answer>(*make_answer("shop.example", 1));
    cloaked->cname_chain = {"x.tracker.example"};
    resolver_.cache["shop.example"] = cloaked;
    resolver_.cache["www.example.com"] = make_answer("www.example.com", 1);
    const auto blocked = udp_exchange(make_query(1, "shop.example", type::kA));
    ASSERT_TRUE(blocked.has_value());
    ASSERT_EQ(answer_count(*blocked), 1);
    EXPECT_EQ(last_rdata(*blocked, 4), (Bytes{0, 0, 0, 17}));
    EXPECT_EQ(handler_.outcomes.back().source, AnswerSource::Policy);
    // Answers with addresses are reviewed too (for the answer filter).
    const auto plain = udp_exchange(make_query(2, "www.example.com", type::kA));
    ASSERT_TRUE(plain.has_value());
    EXPECT_EQ(last_rdata(*plain, 4), (Bytes{192, 0, 2, 1}));
    EXPECT_EQ(handler_.reviews, 2);
    // Answers with neither are not.
    resolver_.cache["empty.example"] = make_answer("empty.example", 0);
    expect_answer(udp_exchange(make_query(3, "empty.example", type::kA)), 3, Rcode::NoError, 0);
    EXPECT_EQ(handler_.reviews, 2);
}

// The records of an answer after the header and the question of `query`, as (rdata, TTL).
std::vector<std::pair<Bytes, std::uint32_t>> a_records(const Bytes& answer, const Bytes& query) {
    std::vector<std::pair<Bytes, std::uint32_t>> records;
    std::size_t at = query.size(); // header + question: the same bytes in the answer
    for (std::uint16_t index = 0; index < answer_count(answer); ++index) {
        EXPECT_EQ(answer.at(at), 0xC0); // owner: a pointer to the question name
        EXPECT_EQ(answer.at(at + 1), 12);
        const std::uint32_t ttl = (std::uint32_t{answer.at(at + 6)} << 24U) |
                                  (std::uint32_t{answer.at(at + 7)} << 16U) |
                                  (std::uint32_t{answer.at(at + 8)} << 8U) | answer.at(at + 9);
        const std::size_t length = (std::size_t{answer.at(at + 10)} << 8U) | answer.at(at + 11);
        records.emplace_back(Bytes(answer.begin() + static_cast<std::ptrdiff_t>(at + 12),
                                   answer.begin() + static_cast<std::ptrdiff_t>(at + 12 + length)),
                             ttl);
        at += 12 + length;
    }
    EXPECT_EQ(at, answer.size());
    return records;
}

TEST_F(NameserverTest, RemovedAddressesAreLeftOutOfACachedAnswer) {
    resolver_.cache["filtered.example"] = make_answer("filtered.example", 3);
    const Bytes query = make_query(0x0102, "Filtered.Example", type::kA);
    const auto answer = udp_exchange(query);
    expect_answer(answer, 0x0102, Rcode::NoError, 2);
    // The client's question as it wrote it, then the remaining addresses, TTL aged by 100 s.
    EXPECT_TRUE(std::equal(query.begin() + 12, query.end(), answer->begin() + 12));
    const auto records = a_records(*answer, query);
    ASSERT_EQ(records.size(), 2U);
    EXPECT_EQ(records[0].first, (Bytes{192, 0, 2, 2}));
    EXPECT_EQ(records[0].second, 200U);
    EXPECT_EQ(records[1].first, (Bytes{192, 0, 2, 3}));
    EXPECT_EQ(server_->counters().filtered_answers, 1U);
    EXPECT_EQ(handler_.outcomes.back().source, AnswerSource::Cache);
    // The cache keeps the whole answer for the next client.
    EXPECT_EQ(resolver_.cache["filtered.example"]->addresses.size(), 3U);
}

TEST_F(NameserverTest, RemovedAddressesAreLeftOutOfAnUpstreamAnswer) {
    UniqueFd client = udp_client();
    const Bytes query = make_query(9, "filtered.example", type::kA);
    ::send(client.get(), query.data(), query.size(), 0);
    run_until([&] { return !resolver_.waiting.empty(); });
    ASSERT_EQ(resolver_.waiting.size(), 1U);
    resolver_.waiting[0](make_answer("filtered.example", 2));
    const auto answer = udp_receive(client.get());
    expect_answer(answer, 9, Rcode::NoError, 1);
    const auto records = a_records(*answer, query);
    ASSERT_EQ(records.size(), 1U);
    EXPECT_EQ(records[0].first, (Bytes{192, 0, 2, 2}));
    EXPECT_EQ(records[0].second, 300U);
}

TEST_F(NameserverTest, MissesWaitForTheResolver) {
    UniqueFd client = udp_client();
    const Bytes query = make_query(1, "www.example.com", type::kA);
    ::send(client.get(), query.data(), query.size(), 0);
    run_until([&] { return !resolver_.waiting.empty(); });
    ASSERT_EQ(resolver_.waiting.size(), 1U);
    EXPECT_EQ(resolver_.asked[0].name, "www.example.com");
    resolver_.waiting[0](make_answer("www.example.com", 1));
    expect_answer(udp_receive(client.get()), 1, Rcode::NoError, 1);
    ASSERT_EQ(handler_.outcomes.size(), 1U);
    EXPECT_EQ(handler_.outcomes[0].source, AnswerSource::Upstream);
}

TEST_F(NameserverTest, UpstreamFailuresBecomeServfail) {
    UniqueFd client = udp_client();
    const Bytes query = make_query(2, "down.example", type::kA);
    ::send(client.get(), query.data(), query.size(), 0);
    run_until([&] { return !resolver_.waiting.empty(); });
    ASSERT_EQ(resolver_.waiting.size(), 1U);
    resolver_.waiting[0](fail("all upstreams failed: dns://192.0.2.53:53 timed out"));
    expect_answer(udp_receive(client.get()), 2, Rcode::ServFail, 0);
    ASSERT_EQ(handler_.outcomes.size(), 1U);
    EXPECT_EQ(handler_.outcomes[0].source, AnswerSource::Failure);
    EXPECT_NE(handler_.outcomes[0].failure.find("timed out"), std::string::npos);
    EXPECT_EQ(server_->counters().servfail, 1U);
}

TEST_F(NameserverTest, GarbageGetsAnErrorWhenItHasAHeaderAndNothingOtherwise) {
    // Nothing comes back: waiting 300 ms is plenty on loopback (the answers that do come take
    // microseconds), and a late answer would still fail the counters below.
    constexpr std::chrono::milliseconds kSilence{300};
    EXPECT_FALSE(udp_exchange(Bytes{0x12, 0x34, 0x01}, kSilence).has_value());
    Bytes two_questions = make_query(0x0A0B, "a.example", type::kA);
    two_questions[5] = 2;
    const auto refused = udp_exchange(two_questions);
    ASSERT_TRUE(refused.has_value());
    EXPECT_EQ(id_of(*refused), 0x0A0B);
    EXPECT_NE(rcode_of(*refused), Rcode::NoError);
    Bytes response = make_query(0x0C0D, "a.example", type::kA);
    response[2] |= 0x80U; // QR: a response is never answered
    EXPECT_FALSE(udp_exchange(response, kSilence).has_value());
    EXPECT_EQ(server_->counters().dropped, 2U);
    EXPECT_EQ(server_->counters().malformed, 1U);
    // Still serving.
    EXPECT_TRUE(udp_exchange(make_query(9, "blocked.example", type::kA)).has_value());
}

TEST_F(NameserverTest, BigAnswersAreTruncatedForClassicUdpClientsButNotForEdnsOnes) {
    resolver_.cache["big.example"] = make_answer("big.example", 60); // 60 x 16 bytes > 512
    const auto classic = udp_exchange(make_query(1, "big.example", type::kA));
    ASSERT_TRUE(classic.has_value());
    EXPECT_TRUE(truncated(*classic));
    EXPECT_LE(classic->size(), 512U);
    const auto edns = udp_exchange(make_query(2, "big.example", type::kA, true));
    ASSERT_TRUE(edns.has_value());
    EXPECT_FALSE(truncated(*edns));
    EXPECT_EQ(answer_count(*edns), 60);
}

TEST_F(NameserverTest, TcpAnswersSeveralQueriesOnOneConnection) {
    resolver_.cache["big.example"] = make_answer("big.example", 60);
    UniqueFd client = tcp_client();
    tcp_send(client.get(), make_query(1, "big.example", type::kA));
    const auto first = tcp_receive(client.get());
    ASSERT_TRUE(first.has_value());
    EXPECT_FALSE(truncated(*first)); // TCP has room
    EXPECT_EQ(answer_count(*first), 60);
    tcp_send(client.get(), make_query(2, "blocked.example", type::kA));
    const auto second = tcp_receive(client.get());
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(id_of(*second), 2);
    EXPECT_EQ(handler_.outcomes.back().transport, ClientTransport::Tcp);
    EXPECT_EQ(server_->counters().tcp_queries, 2U);
}

TEST_F(NameserverTest, TcpClientsWaitingForTheResolverStayConnected) {
    UniqueFd client = tcp_client();
    tcp_send(client.get(), make_query(3, "www.example.com", type::kA));
    run_until([&] { return !resolver_.waiting.empty(); });
    ASSERT_EQ(resolver_.waiting.size(), 1U);
    resolver_.waiting[0](make_answer("www.example.com", 1));
    const auto answer = tcp_receive(client.get());
    ASSERT_TRUE(answer.has_value());
    EXPECT_EQ(id_of(*answer), 3);
    EXPECT_EQ(answer_count(*answer), 1);
}

TEST_F(NameserverTest, TcpGarbageClosesTheConnectionAndTheServerCarriesOn) {
    UniqueFd client = tcp_client();
    tcp_send(client.get(), Bytes{0x01, 0x02, 0x03});
    EXPECT_FALSE(tcp_receive(client.get()).has_value());
    UniqueFd next = tcp_client();
    tcp_send(next.get(), make_query(3, "blocked.example", type::kA));
    const auto answer = tcp_receive(next.get());
    ASSERT_TRUE(answer.has_value());
    EXPECT_EQ(id_of(*answer), 3);
}

TEST_F(NameserverTest, ABusyPortIsAClearError) {
    const ListenEndpoint taken{.address = IpAddress::parse("127.0.0.1").value(), .port = port_};
    auto second = Nameserver::start(io_, std::span(&taken, 1), resolver_, handler_);
    ASSERT_FALSE(second.has_value());
    EXPECT_NE(second.error().message().find("127.0.0.1:" + std::to_string(port_)),
              std::string::npos)
        << second.error().message();
    // The daemon's hint goes by the reason (issue 10): it must still be the kernel's errno.
    EXPECT_EQ(second.error().reason, std::errc::address_in_use) << second.error().message();
}

TEST_F(NameserverTest, AnAddressThisHostLacksIsAClearError) {
    // TEST-NET-1 is on no interface here: EADDRNOTAVAIL, what ::1 gives with IPv6 disabled.
    const ListenEndpoint absent{.address = IpAddress::parse("192.0.2.1").value(), .port = 0};
    auto started = Nameserver::start(io_, std::span(&absent, 1), resolver_, handler_);
    ASSERT_FALSE(started.has_value());
    EXPECT_EQ(started.error().reason, std::errc::address_not_available)
        << started.error().message();
    EXPECT_NE(started.error().message().find("192.0.2.1:0"), std::string::npos)
        << started.error().message();
}

// TCP under abuse (issue 10): the limits of TcpLimits, scaled down so that a test needs few
// sockets and little time.

TEST_F(NameserverTest, ANewConnectionClosesTheLongestIdleOneWhenTheTableIsFull) {
    restart({.max_connections = 3, .max_per_client = 32});
    std::vector<UniqueFd> clients;
    for (std::uint16_t index = 0; index < 3; ++index) {
        clients.push_back(tcp_client());
        expect_answered(clients.back().get(), index);
    }
    // The first one asks again: the second is the longest idle now.
    expect_answered(clients[0].get(), 10);
    UniqueFd newcomer = tcp_client();
    expect_answered(newcomer.get(), 20);
    EXPECT_TRUE(closed_by_server(clients[1].get()));
    expect_answered(clients[0].get(), 11);
    expect_answered(clients[2].get(), 12);
    EXPECT_EQ(server_->counters().tcp_evictions, 1U);
    EXPECT_EQ(server_->counters().tcp_refused, 0U);
}

TEST_F(NameserverTest, ANewConnectionIsRefusedOnlyWhenEveryConnectionIsBusy) {
    restart({.max_connections = 2, .max_per_client = 32});
    UniqueFd first = tcp_client();
    UniqueFd second = tcp_client();
    tcp_send(first.get(), make_query(1, "slow-1.example", type::kA));
    tcp_send(second.get(), make_query(2, "slow-2.example", type::kA));
    run_until([&] { return resolver_.waiting.size() == 2; });
    ASSERT_EQ(resolver_.waiting.size(), 2U);
    UniqueFd third = tcp_client();
    EXPECT_TRUE(closed_by_server(third.get()));
    EXPECT_EQ(server_->counters().tcp_refused, 1U);
    // The busy ones were kept and get their answers.
    resolver_.waiting[0](make_answer("slow-1.example", 1));
    resolver_.waiting[1](make_answer("slow-2.example", 1));
    expect_answer(tcp_receive(first.get()), 1, Rcode::NoError, 1);
    expect_answer(tcp_receive(second.get()), 2, Rcode::NoError, 1);
}

TEST_F(NameserverTest, ATableFullOfOneClientsBusyConnectionsGivesOneUpForAnotherClient) {
    // Queries for slow names keep connections busy: the client holding the most gives up its
    // longest-held connection, and its answer, to a client that holds none.
    restart({.max_connections = 2, .max_per_client = 32});
    UniqueFd first = tcp_client("127.0.0.2");
    UniqueFd second = tcp_client("127.0.0.2");
    tcp_send(first.get(), make_query(1, "slow-1.example", type::kA));
    tcp_send(second.get(), make_query(2, "slow-2.example", type::kA));
    run_until([&] { return resolver_.waiting.size() == 2; });
    ASSERT_EQ(resolver_.waiting.size(), 2U);
    UniqueFd newcomer = tcp_client("127.0.0.3");
    expect_answered(newcomer.get(), 3);
    EXPECT_TRUE(closed_by_server(first.get()));
    EXPECT_EQ(server_->counters().tcp_evictions, 1U);
    EXPECT_EQ(server_->counters().tcp_refused, 0U);
    // The closed connection's answer goes nowhere; the kept one gets its own.
    resolver_.waiting[0](make_answer("slow-1.example", 1));
    resolver_.waiting[1](make_answer("slow-2.example", 1));
    expect_answer(tcp_receive(second.get()), 2, Rcode::NoError, 1);
}

TEST_F(NameserverTest, BusyConnectionsOfEqualSharesAreNotCutForANewcomer) {
    restart({.max_connections = 2, .max_per_client = 32});
    UniqueFd first = tcp_client("127.0.0.2");
    UniqueFd second = tcp_client("127.0.0.4");
    tcp_send(first.get(), make_query(1, "slow-1.example", type::kA));
    tcp_send(second.get(), make_query(2, "slow-2.example", type::kA));
    run_until([&] { return resolver_.waiting.size() == 2; });
    ASSERT_EQ(resolver_.waiting.size(), 2U);
    UniqueFd newcomer = tcp_client("127.0.0.3");
    EXPECT_TRUE(closed_by_server(newcomer.get()));
    EXPECT_EQ(server_->counters().tcp_refused, 1U);
    resolver_.waiting[0](make_answer("slow-1.example", 1));
    resolver_.waiting[1](make_answer("slow-2.example", 1));
    expect_answer(tcp_receive(first.get()), 1, Rcode::NoError, 1);
    expect_answer(tcp_receive(second.get()), 2, Rcode::NoError, 1);
}

TEST_F(NameserverTest, AnAddressAtItsLimitGivesUpItsOwnLongestIdleConnection) {
    restart({.max_connections = 100, .max_per_client = 2});
    UniqueFd other = tcp_client("127.0.0.3");
    expect_answered(other.get(), 1);
    UniqueFd oldest = tcp_client("127.0.0.2");
    expect_answered(oldest.get(), 2);
    UniqueFd newer = tcp_client("127.0.0.2");
    expect_answered(newer.get(), 3);
    UniqueFd newest = tcp_client("127.0.0.2");
    expect_answered(newest.get(), 4);
    EXPECT_TRUE(closed_by_server(oldest.get()));
    // Another client's connection, idle for longer, stays.
    expect_answered(other.get(), 5);
    expect_answered(newer.get(), 6);
    EXPECT_EQ(server_->counters().tcp_client_evictions, 1U);
    EXPECT_EQ(server_->counters().tcp_evictions, 0U);
}

TEST_F(NameserverTest, AnAddressWhoseConnectionsAreAllBusyIsRefusedAnother) {
    restart({.max_connections = 100, .max_per_client = 1});
    UniqueFd busy = tcp_client("127.0.0.2");
    tcp_send(busy.get(), make_query(1, "slow.example", type::kA));
    run_until([&] { return !resolver_.waiting.empty(); });
    ASSERT_EQ(resolver_.waiting.size(), 1U);
    UniqueFd refused = tcp_client("127.0.0.2");
    EXPECT_TRUE(closed_by_server(refused.get()));
    EXPECT_EQ(server_->counters().tcp_client_refused, 1U);
    UniqueFd other = tcp_client("127.0.0.3");
    expect_answered(other.get(), 2);
    resolver_.waiting[0](make_answer("slow.example", 1));
    expect_answer(tcp_receive(busy.get()), 1, Rcode::NoError, 1);
}

TEST_F(NameserverTest, AProcessTheHandlerNamesIsOneClientFromAnyAddress) {
    restart({.max_connections = 100, .max_per_client = 2});
    handler_.processes = {{"127.0.0.4", 77}, {"127.0.0.5", 77}, {"127.0.0.1", 78}};
    UniqueFd first = tcp_client("127.0.0.4");
    expect_answered(first.get(), 1);
    UniqueFd second = tcp_client("127.0.0.5");
    expect_answered(second.get(), 2);
    // Another process on the same address as the first is a client of its own.
    UniqueFd dig = tcp_client("127.0.0.1");
    expect_answered(dig.get(), 3);
    UniqueFd third = tcp_client("127.0.0.4");
    expect_answered(third.get(), 4);
    EXPECT_TRUE(closed_by_server(first.get()));
    expect_answered(second.get(), 5);
    expect_answered(dig.get(), 6);
    EXPECT_EQ(server_->counters().tcp_client_evictions, 1U);
    ASSERT_EQ(handler_.connections.size(), 4U);
    EXPECT_EQ(handler_.connections[0].client_address.to_string(), "127.0.0.4");
    EXPECT_NE(handler_.connections[0].client_port, 0);
    EXPECT_EQ(handler_.connections[0].server.port, port_);
}

TEST_F(NameserverTest, AnIdleConnectionIsClosedAfterTheIdleTimeout) {
    restart({.idle_timeout = std::chrono::milliseconds(100)});
    UniqueFd silent = tcp_client();
    UniqueFd answered = tcp_client();
    expect_answered(answered.get(), 1);
    EXPECT_TRUE(closed_by_server(silent.get()));
    EXPECT_TRUE(closed_by_server(answered.get()));
    EXPECT_EQ(server_->counters().tcp_idle_closes, 2U);
}

TEST_F(NameserverTest, ATricklingClientIsClosedAtTheEndOfItsLifetime) {
    restart({.idle_timeout = std::chrono::milliseconds(500),
             .lifetime = std::chrono::milliseconds(400)});
    UniqueFd trickler = tcp_client();
    // A query every 50 ms keeps it from ever being idle for long; the lifetime ends it anyway.
    int answered = 0;
    bool closed = false;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!closed && std::chrono::steady_clock::now() < give_up) {
        tcp_send(trickler.get(),
                 make_query(static_cast<std::uint16_t>(answered), "blocked.example", type::kA));
        if (tcp_receive(trickler.get()).has_value()) {
            ++answered;
            closed = closed_by_server(trickler.get(), std::chrono::milliseconds(50));
        } else {
            closed = true;
        }
    }
    EXPECT_TRUE(closed);
    EXPECT_GT(answered, 1);
    EXPECT_EQ(server_->counters().tcp_lifetime_closes, 1U);
    EXPECT_EQ(server_->counters().tcp_idle_closes, 0U);
}

TEST_F(NameserverTest, AConnectionWhoseLifetimeEndsWhileBusyClosesAfterItsAnswer) {
    restart({.idle_timeout = std::chrono::seconds(10), .lifetime = std::chrono::milliseconds(50)});
    UniqueFd client = tcp_client();
    tcp_send(client.get(), make_query(1, "slow.example", type::kA));
    run_until([&] { return !resolver_.waiting.empty(); });
    ASSERT_EQ(resolver_.waiting.size(), 1U);
    // Well past the lifetime, still waiting for the resolver: open.
    run_until([] { return false; }, std::chrono::milliseconds(200));
    EXPECT_EQ(server_->counters().tcp_lifetime_closes, 0U);
    resolver_.waiting[0](make_answer("slow.example", 1));
    expect_answer(tcp_receive(client.get()), 1, Rcode::NoError, 1);
    EXPECT_TRUE(closed_by_server(client.get()));
    EXPECT_EQ(server_->counters().tcp_lifetime_closes, 1U);
}

TEST_F(NameserverTest, ABusyConnectionPastItsLifetimeIsClosedOneIdleTimeoutLater) {
    restart({.idle_timeout = std::chrono::milliseconds(100),
             .lifetime = std::chrono::milliseconds(100)});
    UniqueFd client = tcp_client();
    tcp_send(client.get(), make_query(1, "never.example", type::kA));
    // The resolver never answers.
    EXPECT_TRUE(closed_by_server(client.get()));
    EXPECT_EQ(server_->counters().tcp_lifetime_closes, 1U);
}

TEST_F(NameserverTest, AQueryIsAnsweredWhileTheTableIsFullOfAbusers) {
    // The defaults with a smaller table: 300 abusive connections, the first 60 from the address
    // the legitimate client uses too (over its limit of 32), the others from eight addresses
    // of their own. A third only connect, a third send half a length prefix, a third trickle
    // queries.
    restart({.max_connections = 100,
             .max_per_client = 32,
             .idle_timeout = std::chrono::seconds(10),
             .lifetime = std::chrono::seconds(60)});
    // An abuser's connection may be closed by now: no SIGPIPE, no check.
    const auto send_quietly = [](int fd, const Bytes& bytes) {
        ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    };
    Bytes framed_query;
    put16(framed_query, static_cast<std::uint16_t>(make_query(1, "blocked.example", 1).size()));
    const Bytes query = make_query(1, "blocked.example", type::kA);
    framed_query.insert(framed_query.end(), query.begin(), query.end());
    std::vector<UniqueFd> abusers;
    for (int index = 0; index < 300; ++index) {
        const std::string source =
            index < 60 ? std::string("127.0.0.1") : "127.0.1." + std::to_string(index % 8);
        abusers.push_back(tcp_client(source.c_str()));
        if (index % 3 == 1) {
            send_quietly(abusers.back().get(), Bytes{0});
        } else if (index % 3 == 2) {
            send_quietly(abusers.back().get(), framed_query);
        }
    }
    wait_accepted(300);
    for (std::size_t index = 2; index < abusers.size(); index += 3) {
        send_quietly(abusers[index].get(), framed_query);
    }
    run_until([] { return false; }, std::chrono::milliseconds(100));

    UniqueFd dig = tcp_client("127.0.0.1");
    expect_answered(dig.get(), 0xD16);
    const Nameserver::Counters& counters = server_->counters();
    EXPECT_EQ(counters.tcp_connections, 301U);
    EXPECT_GE(counters.tcp_client_evictions, 60U - 32U);
    // At most 100 are open: every other one was evicted, none refused.
    EXPECT_GE(counters.tcp_evictions + counters.tcp_client_evictions, 201U);
    EXPECT_EQ(counters.tcp_refused + counters.tcp_client_refused, 0U);
}

TEST_F(NameserverTest, ZeroTcpLimitsAreAClearError) {
    const ListenEndpoint loopback{.address = IpAddress::parse("127.0.0.1").value(), .port = 0};
    auto started = Nameserver::start(io_, std::span(&loopback, 1), resolver_, handler_,
                                     {.max_connections = 0});
    ASSERT_FALSE(started.has_value());
    EXPECT_NE(started.error().message().find("TCP limits"), std::string::npos);
}

} // namespace
} // namespace pw::dns
