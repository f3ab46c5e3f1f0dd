#include "dns/resolver.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include "dns/upstream.h"
#include "fakes/fake_clock.h"

namespace pw::dns {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using asio::ip::tcp;
using asio::ip::udp;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Bytes = std::vector<std::uint8_t>;

IpAddress address(std::string_view text) {
    return IpAddress::parse(text).value();
}

Question question(std::string name, std::uint16_t record_type = type::kA) {
    return Question{.name = std::move(name), .type = record_type, .qclass = kClassIn};
}

// ---------------------------------------------------------------------------------------------
// DNS messages as a fake upstream sees and makes them, by hand (RFC 1035 section 4.1).

struct ReceivedQuery {
    std::uint16_t id = 0;
    bool recursion_desired = false;
    Question question;
};

std::optional<ReceivedQuery> parse_received(std::span<const std::uint8_t> message) {
    if (message.size() < 12) {
        return std::nullopt;
    }
    ReceivedQuery query;
    query.id = static_cast<std::uint16_t>((message[0] << 8) | message[1]);
    query.recursion_desired = (message[2] & 0x01) != 0;
    std::size_t position = 12;
    while (true) {
        if (position >= message.size()) {
            return std::nullopt;
        }
        const std::size_t length = message[position++];
        if (length == 0) {
            break;
        }
        if (length > 63 || position + length > message.size()) {
            return std::nullopt;
        }
        if (!query.question.name.empty()) {
            query.question.name += '.';
        }
        for (std::size_t index = 0; index < length; ++index) {
            const auto c = static_cast<char>(message[position + index]);
            query.question.name += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        }
        position += length;
    }
    if (position + 4 > message.size()) {
        return std::nullopt;
    }
    query.question.type =
        static_cast<std::uint16_t>((message[position] << 8) | message[position + 1]);
    query.question.qclass =
        static_cast<std::uint16_t>((message[position + 2] << 8) | message[position + 3]);
    return query;
}

void put16(Bytes& out, std::uint16_t value) {
    out.push_back(static_cast<std::uint8_t>(value >> 8));
    out.push_back(static_cast<std::uint8_t>(value & 0xff));
}

void put32(Bytes& out, std::uint32_t value) {
    put16(out, static_cast<std::uint16_t>(value >> 16));
    put16(out, static_cast<std::uint16_t>(value & 0xffff));
}

struct Reply {
    Rcode rcode = Rcode::NoError;
    // NOLINTBEGIN(readability-redundant-member-init): GCC -Wmissing-field-initializers
    std::vector<std::string> addresses{}; // A or AAAA records for the question name
    std::uint32_t ttl = 300;
    bool truncated = false;
    std::optional<std::uint16_t> id{};          // the query's ID unless given
    std::optional<std::string> question_name{}; // the query's name unless given
    // NOLINTEND(readability-redundant-member-init)
};

Bytes make_response(const ReceivedQuery& query, const Reply& reply) {
    Bytes out;
    put16(out, reply.id.value_or(query.id));
    std::uint16_t flags = 0x8000 | 0x0080 | static_cast<std::uint16_t>(reply.rcode); // QR, RA
    if (query.recursion_desired) {
        flags |= 0x0100;
    }
    if (reply.truncated) {
        flags |= 0x0200;
    }
    put16(out, flags);
    put16(out, 1);
    put16(out, static_cast<std::uint16_t>(reply.addresses.size()));
    put16(out, 0);
    put16(out, 0);
    const std::string name = reply.question_name.value_or(query.question.name);
    std::size_t start = 0;
    while (start < name.size()) {
        const std::size_t dot = std::min(name.find('.', start), name.size());
        out.push_back(static_cast<std::uint8_t>(dot - start));
        out.insert(out.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
                   name.begin() + static_cast<std::ptrdiff_t>(dot));
        start = dot + 1;
    }
    out.push_back(0);
    put16(out, query.question.type);
    put16(out, query.question.qclass);
    for (const std::string& text : reply.addresses) {
        const IpAddress record = address(text);
        put16(out, 0xc00c); // the question name
        put16(out, record.is_v4() ? type::kA : type::kAaaa);
        put16(out, kClassIn);
        put32(out, reply.ttl);
        put16(out, static_cast<std::uint16_t>(record.bytes().size()));
        out.insert(out.end(), record.bytes().begin(), record.bytes().end());
    }
    return out;
}

// What a fake upstream sends back for a query: any number of messages, none for silence.
using Responder = std::function<std::vector<Bytes>(const ReceivedQuery&)>;

Responder answer_with(std::vector<std::string> addresses, std::uint32_t ttl = 300) {
    return [addresses = std::move(addresses), ttl](const ReceivedQuery& query) {
        return std::vector<Bytes>{make_response(query, {.addresses = addresses, .ttl = ttl})};
    };
}

Responder answer_rcode(Rcode rcode) {
    return [rcode](const ReceivedQuery& query) {
        return std::vector<Bytes>{make_response(query, {.rcode = rcode})};
    };
}

std::vector<Bytes> silence(const ReceivedQuery& /*query*/) {
    return {};
}

// ---------------------------------------------------------------------------------------------
// Fake upstreams on 127.0.0.1, served by the test's io_context (the same thread as the resolver).

const asio::ip::address kLoopback = asio::ip::make_address("127.0.0.1");

class FakeUdpUpstream {
public:
    FakeUdpUpstream(asio::io_context& io, Responder respond, std::uint16_t port = 0)
        : socket_(io, udp::endpoint(kLoopback, port)), respond_(std::move(respond)) {
        receive();
    }

    [[nodiscard]] std::uint16_t port() const { return socket_.local_endpoint().port(); }
    [[nodiscard]] std::string url() const { return "dns://127.0.0.1:" + std::to_string(port()); }
    [[nodiscard]] const std::vector<ReceivedQuery>& queries() const { return queries_; }

private:
    void receive() {
        socket_.async_receive_from(
            asio::buffer(buffer_), sender_,
            [this](const boost::system::error_code& error, std::size_t size) {
                if (error) {
                    return;
                }
                handle({buffer_.data(), size});
                receive();
            });
    }

    void handle(std::span<const std::uint8_t> datagram) {
        const auto query = parse_received(datagram);
        if (!query) {
            return;
        }
        queries_.push_back(*query);
        for (const Bytes& reply : respond_(*query)) {
            socket_.send_to(asio::buffer(reply), sender_);
        }
    }

    udp::socket socket_;
    Responder respond_;
    std::array<std::uint8_t, 65535> buffer_{};
    udp::endpoint sender_;
    std::vector<ReceivedQuery> queries_;
};

// A DNS server over TCP, or over TLS when given a server context: one query per connection.
class FakeStreamUpstream {
public:
    FakeStreamUpstream(asio::io_context& io, Responder respond, asio::ssl::context* tls = nullptr,
                       std::uint16_t port = 0)
        : acceptor_(io, tcp::endpoint(kLoopback, port)), respond_(std::move(respond)), tls_(tls) {
        accept();
    }

    [[nodiscard]] std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    [[nodiscard]] const std::vector<ReceivedQuery>& queries() const { return queries_; }
    // The SNI names TLS clients sent ("" for none).
    [[nodiscard]] const std::vector<std::string>& server_names() const { return server_names_; }
    [[nodiscard]] int handshakes_failed() const { return handshakes_failed_; }

private:
    using TlsStream = asio::ssl::stream<tcp::socket>;

    void accept() {
        acceptor_.async_accept([this](const boost::system::error_code& error, tcp::socket socket) {
            if (error) {
                return;
            }
            serve(std::move(socket));
            accept();
        });
    }

    void serve(tcp::socket socket) {
        if (tls_ == nullptr) {
            read_query(std::make_shared<tcp::socket>(std::move(socket)));
            return;
        }
        auto stream = std::make_shared<TlsStream>(std::move(socket), *tls_);
        stream->async_handshake(
            TlsStream::server, [this, stream](const boost::system::error_code& error) {
                if (error) {
                    ++handshakes_failed_;
                    return;
                }
                const char* name =
                    SSL_get_servername(stream->native_handle(), TLSEXT_NAMETYPE_host_name);
                server_names_.emplace_back(name == nullptr ? "" : name);
                read_query(stream);
            });
    }

    template <typename Stream>
    void read_query(const std::shared_ptr<Stream>& stream) {
        auto length = std::make_shared<std::array<std::uint8_t, 2>>();
        asio::async_read(
            *stream, asio::buffer(*length),
            [this, stream, length](const boost::system::error_code& error, std::size_t) {
                if (error) {
                    return;
                }
                auto message = std::make_shared<Bytes>(((*length)[0] << 8) | (*length)[1]);
                asio::async_read(
                    *stream, asio::buffer(*message),
                    [this, stream, message](const boost::system::error_code& failed, std::size_t) {
                        if (!failed) {
                            answer(stream, *message);
                        }
                    });
            });
    }

    template <typename Stream>
    void answer(const std::shared_ptr<Stream>& stream, const Bytes& message) {
        const auto query = parse_received(message);
        if (!query) {
            return;
        }
        queries_.push_back(*query);
        const std::vector<Bytes> replies = respond_(*query);
        if (replies.empty()) {
            held_.push_back(stream); // silent, but the connection stays open
            return;
        }
        auto out = std::make_shared<Bytes>();
        for (const Bytes& reply : replies) {
            put16(*out, static_cast<std::uint16_t>(reply.size()));
            out->insert(out->end(), reply.begin(), reply.end());
        }
        asio::async_write(*stream, asio::buffer(*out),
                          [stream, out](const boost::system::error_code&, std::size_t) {});
    }

    tcp::acceptor acceptor_;
    Responder respond_;
    asio::ssl::context* tls_;
    std::vector<ReceivedQuery> queries_;
    std::vector<std::string> server_names_;
    std::vector<std::shared_ptr<void>> held_;
    int handshakes_failed_ = 0;
};

// A port on 127.0.0.1 that nobody listens on (bound, read, released).
template <typename Protocol>
std::uint16_t closed_port(asio::io_context& io) {
    typename Protocol::socket socket(io, typename Protocol::endpoint(kLoopback, 0));
    return socket.local_endpoint().port();
}

// ---------------------------------------------------------------------------------------------
// Certificates made for the test run: a CA, and a server certificate for dns.test signed by it.

class TestCertificates {
public:
    static const TestCertificates& get() {
        static const TestCertificates kCertificates;
        return kCertificates;
    }
    [[nodiscard]] bool ok() const { return ok_; }
    [[nodiscard]] const fs::path& ca() const { return ca_; }
    [[nodiscard]] const fs::path& directory() const { return directory_; }

    [[nodiscard]] std::unique_ptr<asio::ssl::context> server_context() const {
        auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
        context->use_certificate_chain_file((directory_ / "server.pem").string());
        context->use_private_key_file((directory_ / "server.key").string(),
                                      asio::ssl::context::pem);
        return context;
    }

    TestCertificates(const TestCertificates&) = delete;
    TestCertificates& operator=(const TestCertificates&) = delete;
    TestCertificates(TestCertificates&&) = delete;
    TestCertificates& operator=(TestCertificates&&) = delete;

private:
    TestCertificates()
        : directory_(fs::temp_directory_path() /
                     ("pw-resolver-test-" + std::to_string(::getpid()))),
          ca_(directory_ / "ca.pem") {
        fs::create_directories(directory_);
        std::ofstream(directory_ / "server.ext") << "subjectAltName=DNS:dns.test\n";
        const std::string in = "cd '" + directory_.string() + "' && ";
        const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        const std::string commands =
            in + "openssl req -x509 " + key + " -keyout ca.key -out ca.pem -days 2" +
            " -subj '/CN=portwarden test CA' -addext basicConstraints=critical,CA:TRUE" +
            " -addext keyUsage=critical,keyCertSign 2>/dev/null && " + "openssl req " + key +
            " -keyout server.key -out server.csr -subj '/CN=dns.test' 2>/dev/null && " +
            "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial" +
            " -out server.pem -days 2 -extfile server.ext 2>/dev/null";
        ok_ = std::system(commands.c_str()) == 0; // NOLINT(concurrency-mt-unsafe): test setup
    }
    ~TestCertificates() {
        std::error_code ignored;
        fs::remove_all(directory_, ignored);
    }

    fs::path directory_;
    fs::path ca_;
    bool ok_ = false;
};

// ---------------------------------------------------------------------------------------------

using Outcome = std::optional<Result<std::shared_ptr<const Answer>>>;

// An outcome in one line, so that a test states what it expects in one assertion:
// "NOERROR 192.0.2.1 192.0.2.2 from dns://127.0.0.1:4242" or "error: all upstreams failed: ...".
std::string summary(const Result<std::shared_ptr<const Answer>>& result) {
    if (!result) {
        return "error: " + result.error().message();
    }
    std::string text(rcode_name((*result)->rcode));
    for (const IpAddress& resolved : (*result)->addresses) {
        text += " " + resolved.to_string();
    }
    return text + " from " + (*result)->upstream;
}

std::string summary(const Outcome& outcome) {
    return outcome ? summary(*outcome) : "(no callback yet)";
}

// The counters that moved, in a fixed order: "queries=2 merged=4".
std::string summary(const Resolver::Counters& counters) {
    std::string text;
    const auto add = [&](std::string_view name, std::uint64_t value) {
        if (value != 0) {
            text += (text.empty() ? "" : " ") + std::string(name) + "=" + std::to_string(value);
        }
    };
    add("queries", counters.upstream_queries);
    add("merged", counters.merged);
    add("timeouts", counters.timeouts);
    add("failovers", counters.failovers);
    add("tcp_fallbacks", counters.tcp_fallbacks);
    add("failures", counters.failures);
    add("mismatched", counters.mismatched);
    return text;
}

// What a fake upstream was asked: "www.example.com A, www.example.com AAAA".
std::string summary(const std::vector<ReceivedQuery>& queries) {
    std::string text;
    for (const ReceivedQuery& query : queries) {
        text += (text.empty() ? "" : ", ") + query.question.name + " " +
                type_name(query.question.type) + (query.recursion_desired ? "" : " (no RD)");
    }
    return text;
}

class ResolverTest : public ::testing::Test {
protected:
    std::unique_ptr<Resolver> make_resolver(const std::vector<std::string>& urls,
                                            milliseconds attempt_timeout = milliseconds(2000),
                                            milliseconds total_timeout = milliseconds(5000)) {
        ResolverOptions options{.upstreams = {},
                                .attempt_timeout = attempt_timeout,
                                .total_timeout = total_timeout,
                                .cache = {}};
        for (const std::string& url : urls) {
            options.upstreams.push_back(parse_upstream_url(url).value());
        }
        auto resolver = Resolver::create(io_, std::move(options), clock_);
        if (!resolver) {
            ADD_FAILURE() << resolver.error().message();
            return nullptr;
        }
        return std::move(*resolver);
    }

    // Starts resolving; the outcome fills in while the loop runs.
    static std::shared_ptr<Outcome> start(Resolver& resolver, const Question& asked) {
        auto outcome = std::make_shared<Outcome>();
        resolver.resolve(asked, [outcome](Result<std::shared_ptr<const Answer>> result) {
            EXPECT_FALSE(outcome->has_value()) << "called back twice";
            *outcome = std::move(result);
        });
        return outcome;
    }

    // Runs the loop until `finished` says so. The guard only keeps a broken resolver from
    // hanging the test run; no test depends on how long anything takes.
    void run_until(const std::function<bool()>& finished) {
        const auto guard = std::chrono::steady_clock::now() + seconds(20);
        while (!finished() && std::chrono::steady_clock::now() < guard) {
            io_.run_one_for(milliseconds(50));
            if (io_.stopped()) {
                io_.restart();
            }
        }
        EXPECT_TRUE(finished()) << "the resolver never called back";
    }

    // Resolves one question to the end.
    Outcome resolve(Resolver& resolver, const Question& asked) {
        const auto outcome = start(resolver, asked);
        run_until([&] { return outcome->has_value(); });
        return *outcome;
    }

    // The answer object of a successful outcome, or null.
    static std::shared_ptr<const Answer> answer_of(const Outcome& outcome) {
        return outcome && *outcome ? **outcome : nullptr;
    }

    asio::io_context io_;
    testing::FakeClock clock_;
};

TEST_F(ResolverTest, ResolvesOverUdpWithoutCallingBackFromInsideResolve) {
    FakeUdpUpstream upstream(io_, answer_with({"192.0.2.1", "192.0.2.2"}, 300));
    const auto resolver = make_resolver({upstream.url()});
    ASSERT_NE(resolver, nullptr);

    const auto outcome = start(*resolver, question("www.example.com"));
    EXPECT_FALSE(outcome->has_value()) << "never called back from inside resolve()";
    run_until([&] { return outcome->has_value(); });

    EXPECT_EQ(summary(*outcome), "NOERROR 192.0.2.1 192.0.2.2 from " + upstream.url());
    EXPECT_EQ(summary(upstream.queries()), "www.example.com A");
    EXPECT_EQ(summary(resolver->counters()), "queries=1");
}

TEST_F(ResolverTest, CachesTheAnswerBeforeCallingBack) {
    FakeUdpUpstream upstream(io_, answer_with({"192.0.2.1"}, 300));
    const auto resolver = make_resolver({upstream.url()});
    ASSERT_NE(resolver, nullptr);
    EXPECT_FALSE(resolver->cached(question("www.example.com")).has_value());

    const auto answer = answer_of(resolve(*resolver, question("www.example.com")));
    ASSERT_NE(answer, nullptr);
    EXPECT_EQ(answer->wire.answer_count, 1);
    const auto hit = resolver->cached(question("www.example.com"));
    ASSERT_TRUE(hit.has_value());
    EXPECT_EQ(hit->answer, answer) << "the cache holds the very answer the waiters got";
    EXPECT_EQ(resolver->cache_size(), 1U);
    // Another type is another question.
    EXPECT_FALSE(resolver->cached(question("www.example.com", type::kAaaa)).has_value());
}

TEST_F(ResolverTest, CachedAnswersExpireWithTheirTtl) {
    FakeUdpUpstream upstream(io_, answer_with({"192.0.2.1"}, 300));
    const auto resolver = make_resolver({upstream.url()});
    ASSERT_NE(resolver, nullptr);
    ASSERT_NE(answer_of(resolve(*resolver, question("www.example.com"))), nullptr);

    clock_.advance(seconds(299));
    EXPECT_TRUE(resolver->cached(question("www.example.com")).has_value());
    clock_.advance(seconds(2));
    EXPECT_FALSE(resolver->cached(question("www.example.com")).has_value());
    resolver->expire_cache();
    EXPECT_EQ(resolver->cache_size(), 0U);
}

TEST_F(ResolverTest, NxdomainIsAnAnswerAndIsCached) {
    FakeUdpUpstream upstream(io_, answer_rcode(Rcode::NxDomain));
    const auto resolver = make_resolver({upstream.url()});
    ASSERT_NE(resolver, nullptr);

    EXPECT_EQ(summary(resolve(*resolver, question("nowhere.example"))),
              "NXDOMAIN from " + upstream.url());
    EXPECT_TRUE(resolver->cached(question("nowhere.example")).has_value());
    EXPECT_EQ(summary(resolver->counters()), "queries=1");
}

TEST_F(ResolverTest, InvalidNameIsNotSentUpstream) {
    FakeUdpUpstream upstream(io_, answer_with({"192.0.2.1"}));
    const auto resolver = make_resolver({upstream.url()});
    ASSERT_NE(resolver, nullptr);

    const std::string name = std::string(64, 'a') + ".example";
    EXPECT_EQ(summary(resolve(*resolver, question(name))),
              "error: cannot ask upstream for the invalid name '" + name + "'");
    EXPECT_EQ(summary(resolver->counters()), "failures=1");
    // The upstream is not blamed: the next question goes to it first.
    ASSERT_NE(answer_of(resolve(*resolver, question("www.example.com"))), nullptr);
    EXPECT_EQ(summary(upstream.queries()), "www.example.com A");
}

TEST_F(ResolverTest, MergesIdenticalQuestionsInFlight) {
    FakeUdpUpstream upstream(io_, answer_with({"192.0.2.1"}));
    const auto resolver = make_resolver({upstream.url()});
    ASSERT_NE(resolver, nullptr);

    std::vector<std::shared_ptr<Outcome>> outcomes;
    outcomes.reserve(5);
    for (int index = 0; index < 5; ++index) {
        outcomes.push_back(start(*resolver, question("www.example.com")));
    }
    const auto other_type = start(*resolver, question("www.example.com", type::kAaaa));
    run_until([&] {
        return other_type->has_value() && std::ranges::all_of(outcomes, [](const auto& outcome) {
                   return outcome->has_value();
               });
    });

    const auto first = answer_of(*outcomes[0]);
    ASSERT_NE(first, nullptr) << summary(*outcomes[0]);
    EXPECT_TRUE(std::ranges::all_of(outcomes, [&](const auto& outcome) {
        return answer_of(*outcome) == first;
    })) << "every waiter gets the same answer object";
    EXPECT_EQ(summary(upstream.queries()), "www.example.com A, www.example.com AAAA");
    EXPECT_EQ(summary(resolver->counters()), "queries=2 merged=4");
}

TEST_F(ResolverTest, FailsOverWhenTheFirstUpstreamRefuses) {
    const std::string refusing = "dns://127.0.0.1:" + std::to_string(closed_port<udp>(io_));
    FakeUdpUpstream working(io_, answer_with({"192.0.2.1"}));
    const auto resolver = make_resolver({refusing, working.url()});
    ASSERT_NE(resolver, nullptr);

    EXPECT_EQ(summary(resolve(*resolver, question("one.example"))),
              "NOERROR 192.0.2.1 from " + working.url());
    EXPECT_EQ(summary(resolver->counters()), "queries=2 failovers=1");
}

TEST_F(ResolverTest, FailedUpstreamIsAskedLastForThirtySeconds) {
    const std::string refusing = "dns://127.0.0.1:" + std::to_string(closed_port<udp>(io_));
    FakeUdpUpstream working(io_, answer_with({"192.0.2.1"}));
    const auto resolver = make_resolver({refusing, working.url()});
    ASSERT_NE(resolver, nullptr);
    ASSERT_NE(answer_of(resolve(*resolver, question("one.example"))), nullptr);

    // The working upstream is asked first now: one query.
    clock_.advance(seconds(29));
    ASSERT_NE(answer_of(resolve(*resolver, question("two.example"))), nullptr);
    EXPECT_EQ(summary(resolver->counters()), "queries=3 failovers=1");

    // Then the configured order again: the refusing one first, and it fails again.
    clock_.advance(seconds(1));
    ASSERT_NE(answer_of(resolve(*resolver, question("three.example"))), nullptr);
    EXPECT_EQ(summary(resolver->counters()), "queries=5 failovers=2");
    EXPECT_EQ(summary(working.queries()), "one.example A, two.example A, three.example A");
}

TEST_F(ResolverTest, FailsOverWhenTheFirstUpstreamIsSilent) {
    FakeUdpUpstream silent(io_, silence);
    FakeUdpUpstream working(io_, answer_with({"192.0.2.1"}));
    const auto resolver = make_resolver({silent.url(), working.url()}, milliseconds(100));
    ASSERT_NE(resolver, nullptr);

    EXPECT_EQ(summary(resolve(*resolver, question("www.example.com"))),
              "NOERROR 192.0.2.1 from " + working.url());
    EXPECT_EQ(summary(silent.queries()), "www.example.com A");
    EXPECT_EQ(summary(resolver->counters()), "queries=2 timeouts=1 failovers=1");
}

TEST_F(ResolverTest, ALostAnswerIsAskedForAgainWithinTheTotalTimeout) {
    // The only upstream drops the first query (as a full socket buffer would) and answers the
    // second: no SERVFAIL for a single lost datagram.
    int seen = 0;
    const Responder answer = answer_with({"192.0.2.1"});
    FakeUdpUpstream lossy(io_, [&seen, &answer](const ReceivedQuery& query) {
        return ++seen == 1 ? std::vector<Bytes>{} : answer(query);
    });
    const auto resolver = make_resolver({lossy.url()}, milliseconds(100));
    ASSERT_NE(resolver, nullptr);
    EXPECT_EQ(summary(resolve(*resolver, question("www.example.com"))),
              "NOERROR 192.0.2.1 from " + lossy.url());
    EXPECT_EQ(summary(lossy.queries()), "www.example.com A, www.example.com A");
}

TEST_F(ResolverTest, ServfailAndRefusedMakeTheResolverAskTheNextUpstream) {
    for (const Rcode rcode : {Rcode::ServFail, Rcode::Refused}) {
        FakeUdpUpstream failing(io_, answer_rcode(rcode));
        FakeUdpUpstream working(io_, answer_with({"192.0.2.1"}));
        const auto resolver = make_resolver({failing.url(), working.url()});
        ASSERT_NE(resolver, nullptr);

        EXPECT_EQ(summary(resolve(*resolver, question("www.example.com"))),
                  "NOERROR 192.0.2.1 from " + working.url())
            << rcode_name(rcode);
        EXPECT_EQ(summary(failing.queries()), "www.example.com A");
        EXPECT_EQ(summary(resolver->counters()), "queries=2 failovers=1");
    }
}

TEST_F(ResolverTest, ReportsWhatEveryUpstreamDidWhenAllFail) {
    FakeUdpUpstream failing(io_, answer_rcode(Rcode::ServFail));
    const std::string refusing = "dns://127.0.0.1:" + std::to_string(closed_port<udp>(io_));
    const std::string closed_tcp = "tcp://127.0.0.1:" + std::to_string(closed_port<tcp>(io_));
    const auto resolver = make_resolver({failing.url(), refusing, closed_tcp});
    ASSERT_NE(resolver, nullptr);

    EXPECT_EQ(summary(resolve(*resolver, question("www.example.com"))),
              "error: all upstreams failed: " + failing.url() + " answered SERVFAIL; " + refusing +
                  " network error: Connection refused; " + closed_tcp +
                  " could not connect: Connection refused");
    EXPECT_FALSE(resolver->cached(question("www.example.com")).has_value());
    EXPECT_EQ(summary(resolver->counters()), "queries=3 failovers=2 failures=1");
}

TEST_F(ResolverTest, GivesUpWhenTheTotalTimeoutPasses) {
    FakeUdpUpstream first(io_, silence);
    FakeUdpUpstream second(io_, silence);
    FakeUdpUpstream third(io_, silence);
    const auto resolver = make_resolver({first.url(), second.url(), third.url()}, milliseconds(150),
                                        milliseconds(250));
    ASSERT_NE(resolver, nullptr);

    const auto first_waiter = start(*resolver, question("www.example.com"));
    const auto second_waiter = start(*resolver, question("www.example.com"));
    run_until([&] { return first_waiter->has_value() && second_waiter->has_value(); });
    const std::string expected = "error: no answer within 250 ms: " + first.url() +
                                 " timed out after 150 ms; " + second.url() +
                                 " had not answered yet; " + third.url() + " not asked";
    EXPECT_EQ(summary(*first_waiter), expected);
    EXPECT_EQ(summary(*second_waiter), expected);
    EXPECT_EQ(summary(third.queries()), "");
    // The first attempt timed out, then the whole query.
    EXPECT_EQ(summary(resolver->counters()),
              "queries=2 merged=1 timeouts=2 failovers=1 failures=2");
}

TEST_F(ResolverTest, TruncatedUdpAnswerIsAskedAgainOverTcpAtTheSameUpstream) {
    FakeStreamUpstream tcp_side(io_, answer_with({"192.0.2.7"}));
    FakeUdpUpstream udp_side(
        io_,
        [](const ReceivedQuery& query) {
            return std::vector<Bytes>{make_response(query, {.truncated = true})};
        },
        tcp_side.port());
    const auto resolver = make_resolver({udp_side.url()});
    ASSERT_NE(resolver, nullptr);

    EXPECT_EQ(summary(resolve(*resolver, question("big.example"))),
              "NOERROR 192.0.2.7 from " + udp_side.url());
    EXPECT_EQ(summary(udp_side.queries()), "big.example A");
    EXPECT_EQ(summary(tcp_side.queries()), "big.example A");
    EXPECT_EQ(summary(resolver->counters()), "queries=2 tcp_fallbacks=1");
}

TEST_F(ResolverTest, IgnoresDatagramsThatDoNotAnswerTheQuestion) {
    FakeUdpUpstream upstream(io_, [](const ReceivedQuery& query) {
        return std::vector<Bytes>{
            make_response(query, {.addresses = {"203.0.113.66"},
                                  .id = static_cast<std::uint16_t>(query.id ^ 0x5a5a)}),
            make_response(query, {.addresses = {"203.0.113.66"}, .question_name = "evil.example"}),
            Bytes{0x12, 0x34, 0x56},
            make_response(query, {.addresses = {"192.0.2.1"}}),
        };
    });
    const auto resolver = make_resolver({upstream.url()});
    ASSERT_NE(resolver, nullptr);

    EXPECT_EQ(summary(resolve(*resolver, question("www.example.com"))),
              "NOERROR 192.0.2.1 from " + upstream.url());
    EXPECT_EQ(summary(resolver->counters()), "queries=1 mismatched=3");
}

TEST_F(ResolverTest, UsesRandomQueryIds) {
    FakeUdpUpstream upstream(io_, answer_with({"192.0.2.1"}));
    const auto resolver = make_resolver({upstream.url()});
    ASSERT_NE(resolver, nullptr);
    for (int index = 0; index < 8; ++index) {
        ASSERT_NE(answer_of(resolve(*resolver, question("n" + std::to_string(index) + ".example"))),
                  nullptr);
    }
    ASSERT_EQ(upstream.queries().size(), 8U);
    // Eight equal IDs out of 65536 would be a broken generator, not bad luck.
    EXPECT_FALSE(std::ranges::all_of(upstream.queries(), [&](const ReceivedQuery& query) {
        return query.id == upstream.queries()[0].id;
    }));
}

TEST_F(ResolverTest, ResolvesOverTcp) {
    FakeStreamUpstream upstream(io_, answer_with({"2001:db8::1"}));
    const std::string url = "tcp://127.0.0.1:" + std::to_string(upstream.port());
    const auto resolver = make_resolver({url});
    ASSERT_NE(resolver, nullptr);

    EXPECT_EQ(summary(resolve(*resolver, question("www.example.com", type::kAaaa))),
              "NOERROR 2001:db8::1 from " + url);
    EXPECT_EQ(summary(upstream.queries()), "www.example.com AAAA");
}

TEST_F(ResolverTest, TcpUpstreamThatClosesWithoutAnsweringFailsOver) {
    FakeStreamUpstream broken(io_, [](const ReceivedQuery& query) {
        // A length prefix promising more than is sent, then the connection closes.
        Bytes reply = make_response(query, {.addresses = {"192.0.2.1"}});
        reply.resize(6);
        return std::vector<Bytes>{reply};
    });
    FakeUdpUpstream working(io_, answer_with({"192.0.2.2"}));
    const std::string url = "tcp://127.0.0.1:" + std::to_string(broken.port());
    const auto resolver = make_resolver({url, working.url()});
    ASSERT_NE(resolver, nullptr);

    EXPECT_EQ(summary(resolve(*resolver, question("www.example.com"))),
              "NOERROR 192.0.2.2 from " + working.url());
    EXPECT_EQ(summary(broken.queries()), "www.example.com A");
    EXPECT_EQ(summary(resolver->counters()), "queries=2 failovers=1");
}

// ---------------------------------------------------------------------------------------------
// DNS over TLS.

class ResolverTlsTest : public ResolverTest {
protected:
    void SetUp() override {
        if (!TestCertificates::get().ok()) {
            GTEST_FAIL() << "could not make test certificates with the openssl command";
        }
        server_context_ = TestCertificates::get().server_context();
    }

    enum class CaFile : std::uint8_t { Test, System };

    static std::string url(std::string_view name, const FakeStreamUpstream& server,
                           CaFile ca_file = CaFile::Test) {
        std::string text =
            "dot://" + std::string(name) + "?ip=127.0.0.1&port=" + std::to_string(server.port());
        if (ca_file == CaFile::Test) {
            text += "&verify=" + TestCertificates::get().ca().string();
        }
        return text;
    }

    std::unique_ptr<asio::ssl::context> server_context_;
};

TEST_F(ResolverTlsTest, ResolvesOverTlsWithThePrivateCaFromVerify) {
    FakeStreamUpstream server(io_, answer_with({"192.0.2.53"}), server_context_.get());
    const auto resolver = make_resolver({url("dns.test", server)});
    ASSERT_NE(resolver, nullptr);

    EXPECT_EQ(summary(resolve(*resolver, question("www.example.com"))),
              "NOERROR 192.0.2.53 from " + url("dns.test", server));
    EXPECT_EQ(server.server_names(), std::vector<std::string>{"dns.test"}) << "SNI";
    EXPECT_EQ(summary(server.queries()), "www.example.com A");
}

TEST_F(ResolverTlsTest, CertificateForAnotherNameFailsOver) {
    FakeStreamUpstream server(io_, answer_with({"192.0.2.53"}), server_context_.get());
    FakeUdpUpstream fallback(io_, answer_with({"192.0.2.1"}));
    const auto resolver = make_resolver({url("other.test", server), fallback.url()});
    ASSERT_NE(resolver, nullptr);

    EXPECT_EQ(summary(resolve(*resolver, question("www.example.com"))),
              "NOERROR 192.0.2.1 from " + fallback.url());
    EXPECT_EQ(summary(server.queries()), "") << "no question goes to an unverified server";
    EXPECT_EQ(summary(resolver->counters()), "queries=2 failovers=1");
}

TEST_F(ResolverTlsTest, CertificateForAnotherNameIsReported) {
    FakeStreamUpstream server(io_, answer_with({"192.0.2.53"}), server_context_.get());
    const auto resolver = make_resolver({url("other.test", server)});
    ASSERT_NE(resolver, nullptr);

    EXPECT_EQ(summary(resolve(*resolver, question("www.example.com"))),
              "error: all upstreams failed: " + url("other.test", server) +
                  " certificate verification failed: hostname mismatch");
    EXPECT_EQ(summary(server.queries()), "");
}

TEST_F(ResolverTlsTest, CertificateFromACaOutsideTheSystemStoreIsRejected) {
    FakeStreamUpstream server(io_, answer_with({"192.0.2.53"}), server_context_.get());
    const std::string system_ca = url("dns.test", server, CaFile::System);
    const auto resolver = make_resolver({system_ca});
    ASSERT_NE(resolver, nullptr);

    const std::string outcome = summary(resolve(*resolver, question("www.example.com")));
    EXPECT_TRUE(outcome.starts_with("error: all upstreams failed: " + system_ca +
                                    " certificate verification failed: "))
        << outcome;
    EXPECT_EQ(summary(server.queries()), "");
}

TEST_F(ResolverTest, CreateFailsWhenTheVerifyFileIsMissing) {
    const fs::path missing = fs::temp_directory_path() / "pw-resolver-test-no-such-ca.pem";
    const std::string url = "dot://dns.test?ip=127.0.0.1&verify=" + missing.string();
    ResolverOptions options;
    options.upstreams.push_back(parse_upstream_url(url).value());

    const auto resolver = Resolver::create(io_, options, clock_);
    ASSERT_FALSE(resolver.has_value());
    EXPECT_TRUE(resolver.error().what.starts_with("dns/nameservers: cannot load the CA file '" +
                                                  missing.string() + "' given as verify= in '" +
                                                  url + "'"))
        << resolver.error().what;
}

TEST_F(ResolverTest, CreateFailsWhenTheVerifyFileHoldsNoCertificate) {
    const fs::path garbage = fs::temp_directory_path() /
                             ("pw-resolver-test-garbage-" + std::to_string(::getpid()) + ".pem");
    std::ofstream(garbage) << "not a certificate\n";
    ResolverOptions options;
    options.upstreams.push_back(
        parse_upstream_url("dot://dns.test?ip=127.0.0.1&verify=" + garbage.string()).value());

    const auto resolver = Resolver::create(io_, options, clock_);
    fs::remove(garbage);
    ASSERT_FALSE(resolver.has_value());
    EXPECT_TRUE(resolver.error().what.starts_with("dns/nameservers: cannot load the CA file '" +
                                                  garbage.string() + "'"))
        << resolver.error().what;
}

TEST_F(ResolverTest, CreateFailsWithoutUpstreams) {
    const auto resolver = Resolver::create(io_, ResolverOptions{}, clock_);
    ASSERT_FALSE(resolver.has_value());
    EXPECT_EQ(resolver.error().what, "dns/nameservers: no upstream nameserver configured");
}

TEST_F(ResolverTest, ShutDownFailsTheWaitersAndLaterQuestions) {
    FakeUdpUpstream silent(io_, silence);
    const auto resolver = make_resolver({silent.url()});
    ASSERT_NE(resolver, nullptr);

    const auto waiting = start(*resolver, question("www.example.com"));
    run_until([&] { return !silent.queries().empty(); });
    resolver->shut_down();
    EXPECT_FALSE(waiting->has_value()) << "called back later, not from shut_down()";
    const auto late = start(*resolver, question("late.example"));
    run_until([&] { return waiting->has_value() && late->has_value(); });
    EXPECT_EQ(summary(*waiting), "error: resolver shut down");
    EXPECT_EQ(summary(*late), "error: resolver shut down");
    EXPECT_EQ(summary(resolver->counters()), "queries=1 failures=2");
}

} // namespace
} // namespace pw::dns
