#include "api/http_server.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "api/access_policy.h"
#include "api/caller.h"
#include "api/fake_backend.h"
#include "api/group_membership.h"
#include "common/unique_fd.h"

// The HTTP server over real sockets on 127.0.0.1 (port 0, no root), its event loop on a thread
// of its own as in the daemon, and the test as the client with plain blocking sockets.

namespace pw::api {
namespace {

namespace asio = boost::asio;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr auto kPatience = 5s;

// Names one caller for every connection, and remembers what it was asked.
class FakeCallerLookup final : public CallerLookup {
public:
    std::optional<Caller> find_caller(const ConnectionEndpoints& endpoints) override {
        const std::scoped_lock lock(mutex_);
        asked_.push_back(endpoints);
        return caller_;
    }
    void set_caller(std::optional<Caller> caller) {
        const std::scoped_lock lock(mutex_);
        caller_ = std::move(caller);
    }
    [[nodiscard]] std::vector<ConnectionEndpoints> asked() const {
        const std::scoped_lock lock(mutex_);
        return asked_;
    }

private:
    mutable std::mutex mutex_;
    std::optional<Caller> caller_ = Caller{.uid = 0, .pid = 1234, .executable = "/usr/bin/curl"};
    std::vector<ConnectionEndpoints> asked_;
};

// uid 1000 is alice, in group "portwarden"; nobody else is in any group.
class OneMember final : public GroupMembership {
public:
    bool is_member(std::uint32_t uid, std::string_view group) override {
        return uid == 1000 && group == "portwarden";
    }
    std::optional<std::string> user_name(std::uint32_t uid) override {
        if (uid == 1000) {
            return "alice";
        }
        return std::nullopt;
    }
};

struct HttpReply {
    int status = 0;
    std::map<std::string, std::string> headers; // names in lower case
    std::string body;

    [[nodiscard]] json json_body() const { return json::parse(body, nullptr, false); }
    [[nodiscard]] std::string error() const {
        const json parsed = json_body();
        return parsed.is_object() && parsed.contains("error") ? parsed["error"].get<std::string>()
                                                              : "(no error: " + body + ")";
    }
    [[nodiscard]] std::string header(const std::string& name) const {
        const auto found = headers.find(name);
        return found == headers.end() ? "" : found->second;
    }
};

// A client connection with blocking I/O and a receive timeout, so that a broken server fails the
// test instead of hanging it.
class Client {
public:
    explicit Client(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        EXPECT_TRUE(fd_.valid()) << "socket: errno " << errno;
        timeval timeout{.tv_sec = 0, .tv_usec = 100'000};
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockaddr API
        connected_ =
            ::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
        EXPECT_TRUE(connected_) << "connect: errno " << errno;
    }

    void send(std::string_view bytes) const {
        while (!bytes.empty()) {
            const ssize_t sent = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (sent <= 0) {
                ADD_FAILURE() << "send: errno " << errno;
                return;
            }
            bytes.remove_prefix(static_cast<std::size_t>(sent));
        }
    }

    // One whole answer (the server always sends Content-Length), or nullopt when the connection
    // closed or nothing came in time.
    std::optional<HttpReply> receive(std::chrono::milliseconds patience = kPatience) {
        const auto deadline = std::chrono::steady_clock::now() + patience;
        while (std::chrono::steady_clock::now() < deadline) {
            if (auto reply = take_reply()) {
                return reply;
            }
            if (!read_more()) {
                return take_reply();
            }
        }
        return std::nullopt;
    }

    // Whether the server closed the connection within `patience` (anything it sent first is
    // read and dropped).
    bool closed_by_server(std::chrono::milliseconds patience = kPatience) {
        const auto deadline = std::chrono::steady_clock::now() + patience;
        while (std::chrono::steady_clock::now() < deadline) {
            if (!read_more()) {
                return true;
            }
        }
        return false;
    }

    // Whether nothing arrives within `wait`: for answers that must not come yet.
    bool silent_for(std::chrono::milliseconds wait) {
        const auto deadline = std::chrono::steady_clock::now() + wait;
        while (std::chrono::steady_clock::now() < deadline) {
            if (!read_more() || !pending_.empty()) {
                return false;
            }
        }
        return true;
    }

    void close() { fd_ = UniqueFd(); }

private:
    // false when the connection is closed (or reset).
    bool read_more() {
        std::array<char, 8192> chunk{};
        const ssize_t received = ::recv(fd_.get(), chunk.data(), chunk.size(), 0);
        if (received > 0) {
            pending_.append(chunk.data(), static_cast<std::size_t>(received));
            return true;
        }
        return received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    }

    std::optional<HttpReply> take_reply() {
        const std::size_t header_end = pending_.find("\r\n\r\n");
        if (header_end == std::string::npos) {
            return std::nullopt;
        }
        HttpReply reply;
        const std::string head = pending_.substr(0, header_end);
        std::size_t line_end = head.find("\r\n");
        const std::string status_line = head.substr(0, line_end);
        reply.status = std::stoi(status_line.substr(status_line.find(' ') + 1, 3));
        while (line_end != std::string::npos) {
            const std::size_t start = line_end + 2;
            line_end = head.find("\r\n", start);
            const std::string line = head.substr(start, line_end - start);
            const std::size_t colon = line.find(':');
            std::string name = line.substr(0, colon);
            std::ranges::transform(name, name.begin(),
                                   [](unsigned char letter) { return std::tolower(letter); });
            reply.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
        }
        const std::size_t length = std::stoul(reply.header("content-length"));
        if (pending_.size() < header_end + 4 + length) {
            return std::nullopt;
        }
        reply.body = pending_.substr(header_end + 4, length);
        pending_.erase(0, header_end + 4 + length);
        return reply;
    }

    UniqueFd fd_;
    bool connected_ = false;
    std::string pending_;
};

class HttpServerTest : public ::testing::Test {
protected:
    void TearDown() override { stop(); }

    void start(ServerLimits limits = {}) {
        const ListenEndpoint loopback{.address = IpAddress::parse("127.0.0.1").value(), .port = 0};
        auto started = HttpServer::start(io_, {loopback}, limits, callers_, access_, backend_);
        ASSERT_TRUE(started.has_value()) << started.error().message();
        server_ = std::move(*started);
        port_ = server_->endpoints().at(0).port;
        ASSERT_NE(port_, 0);
        loop_ = std::thread([this] { io_.run(); });
    }

    void stop() {
        if (loop_.joinable()) {
            on_loop([this] { server_.reset(); });
            work_.reset();
            loop_.join();
        }
    }

    // Runs `function` on the event loop and waits for it.
    template <typename Function>
    std::invoke_result_t<Function> on_loop(Function function) {
        std::packaged_task<decltype(function())()> task(std::move(function));
        auto result = task.get_future();
        asio::post(io_, [&task] { task(); });
        return result.get();
    }

    HttpServer::Counters counters() {
        return on_loop([this] { return server_->counters(); });
    }

    // Polls `ready` (on the test's thread) until it holds or the patience is over.
    static bool eventually(const std::function<bool()>& ready) {
        const auto deadline = std::chrono::steady_clock::now() + kPatience;
        while (!ready()) {
            if (std::chrono::steady_clock::now() > deadline) {
                return false;
            }
            std::this_thread::sleep_for(1ms);
        }
        return true;
    }

    [[nodiscard]] std::string host() const { return "127.0.0.1:" + std::to_string(port_); }

    [[nodiscard]] std::string get(std::string_view target, std::string_view extra = "") const {
        return "GET " + std::string(target) + " HTTP/1.1\r\nHost: " + host() + "\r\n" +
               std::string(extra) + "\r\n";
    }

    [[nodiscard]] std::string with_body(std::string_view method, std::string_view target,
                                        std::string_view body,
                                        std::string_view content_type = "application/json") const {
        return std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: " + host() +
               "\r\nContent-Type: " + std::string(content_type) +
               "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
               std::string(body);
    }

    // One request on a new connection.
    HttpReply exchange(const std::string& request) const {
        Client client(port_);
        client.send(request);
        std::optional<HttpReply> reply = client.receive();
        EXPECT_TRUE(reply.has_value()) << request;
        return reply.value_or(HttpReply{});
    }

    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
    FakeBackend backend_;
    FakeCallerLookup callers_;
    OneMember members_;
    AccessPolicy access_{{"portwarden"}, members_};
    std::unique_ptr<HttpServer> server_;
    std::uint16_t port_ = 0;
    std::thread loop_;
};

TEST_F(HttpServerTest, AnswersStatusAsJsonAndLooksUpTheCaller) {
    start();
    const HttpReply reply = exchange(get("/api/v1/status"));
    EXPECT_EQ(reply.status, 200);
    EXPECT_EQ(reply.header("content-type"), "application/json");
    EXPECT_EQ(reply.header("cache-control"), "no-store");
    EXPECT_EQ(reply.json_body(), backend_.status_json);
    EXPECT_EQ(reply.header("access-control-allow-origin"), "");

    const auto asked = callers_.asked();
    ASSERT_EQ(asked.size(), 1U);
    EXPECT_EQ(asked[0].local_address.to_string(), "127.0.0.1");
    EXPECT_EQ(asked[0].local_port, port_);
    EXPECT_EQ(asked[0].peer_address.to_string(), "127.0.0.1");
    EXPECT_NE(asked[0].peer_port, 0);
}

TEST_F(HttpServerTest, KeepsTheConnectionForTwoRequests) {
    start();
    Client client(port_);
    client.send(get("/api/v1/status"));
    const auto first = client.receive();
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->status, 200);
    client.send(get("/api/v1/profiles"));
    const auto second = client.receive();
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(second->status, 200);
    EXPECT_EQ(second->json_body(), backend_.profiles_json);
    // One connection, one caller lookup.
    EXPECT_EQ(callers_.asked().size(), 1U);
    EXPECT_EQ(counters().connections, 1U);
    EXPECT_EQ(counters().requests, 2U);

    // Connection: close is honoured.
    client.send(get("/api/v1/status", "Connection: close\r\n"));
    const auto last = client.receive();
    ASSERT_TRUE(last.has_value());
    EXPECT_EQ(last->header("connection"), "close");
    EXPECT_TRUE(client.closed_by_server());
}

TEST_F(HttpServerTest, RefusesForeignHostNames) {
    start();
    const std::string port = std::to_string(port_);
    for (const std::string& name : std::vector<std::string>{"evil.example:" + port, "localhost",
                                                            "127.0.0.1", "localhost:1", "[::1]"}) {
        const HttpReply reply =
            exchange("GET /api/v1/status HTTP/1.1\r\nHost: " + name + "\r\n\r\n");
        EXPECT_EQ(reply.status, 403) << name;
        EXPECT_NE(reply.error().find("does not name this API"), std::string::npos) << name;
    }
    for (const std::string& name : {"localhost:" + port, "LOCALHOST:" + port, "[::1]:" + port}) {
        EXPECT_EQ(exchange("GET /api/v1/status HTTP/1.1\r\nHost: " + name + "\r\n\r\n").status, 200)
            << name;
    }
    // Without Host (HTTP/1.0 allowed that), or with two: 400.
    EXPECT_EQ(exchange("GET /api/v1/status HTTP/1.0\r\n\r\n").status, 400);
    EXPECT_EQ(exchange("GET /api/v1/status HTTP/1.1\r\nHost: " + host() + "\r\nHost: " + host() +
                       "\r\n\r\n")
                  .status,
              400);
    EXPECT_EQ(counters().host_refusals, 5U);
    EXPECT_EQ(backend_.reads(), 3);
}

TEST_F(HttpServerTest, RefusesOtherOrigins) {
    start();
    const HttpReply foreign =
        exchange(with_body("POST", "/api/v1/rules", R"({"rule": "+ *"})") + "");
    EXPECT_EQ(foreign.status, 200); // no Origin: not a browser's cross-site request

    const std::string request = "POST /api/v1/rules HTTP/1.1\r\nHost: " + host() +
                                "\r\nOrigin: http://evil.example\r\nContent-Type: "
                                "application/json\r\nContent-Length: 2\r\n\r\n{}";
    const HttpReply refused = exchange(request);
    EXPECT_EQ(refused.status, 403);
    EXPECT_NE(refused.error().find("cross-origin request from 'http://evil.example' refused"),
              std::string::npos)
        << refused.error();
    EXPECT_EQ(exchange(get("/api/v1/status", "Origin: null\r\n")).status, 403);
    EXPECT_EQ(exchange(get("/api/v1/status", "Origin: http://a\r\nOrigin: http://localhost:" +
                                                 std::to_string(port_) + "\r\n"))
                  .status,
              403);
    EXPECT_EQ(exchange(get("/api/v1/status",
                           "Origin: http://localhost:" + std::to_string(port_) + "\r\n"))
                  .status,
              200);
    EXPECT_EQ(backend_.calls().size(), 1U);
    EXPECT_EQ(counters().origin_refusals, 3U);
}

TEST_F(HttpServerTest, RefusesCallersOutsideTheGroupsAndClosesTheirConnection) {
    callers_.set_caller(Caller{.uid = 1001, .pid = 77, .executable = "/usr/bin/python3"});
    start();
    Client client(port_);
    client.send(get("/api/v1/status"));
    const auto reply = client.receive();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, 403);
    EXPECT_EQ(reply->error(),
              "user 1001 running /usr/bin/python3 is not allowed to use the API: root or a member "
              "of group(s) portwarden may use it");
    EXPECT_TRUE(client.closed_by_server());
    EXPECT_EQ(backend_.reads(), 0);

    // A member is allowed; a caller nobody could name is not.
    callers_.set_caller(Caller{.uid = 1000, .pid = 78, .executable = "/usr/bin/portwarden"});
    EXPECT_EQ(exchange(get("/api/v1/status")).status, 200);
    callers_.set_caller(std::nullopt);
    const HttpReply unknown = exchange(get("/api/v1/status"));
    EXPECT_EQ(unknown.status, 403);
    EXPECT_NE(unknown.error().find("could not be identified"), std::string::npos);
    EXPECT_EQ(counters().access_refusals, 2U);
}

TEST_F(HttpServerTest, UnknownRouteAndWrongMethod) {
    start();
    Client client(port_);
    client.send(get("/api/v1/nothing"));
    auto reply = client.receive();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, 404);

    client.send(with_body("PUT", "/api/v1/profiles", "{}"));
    reply = client.receive();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, 405);
    EXPECT_EQ(reply->header("allow"), "GET, POST");
    // Both refusals keep the connection.
    client.send(get("/api/v1/status"));
    reply = client.receive();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, 200);
}

TEST_F(HttpServerTest, BodyOverTheLimitIs413) {
    start(ServerLimits{.max_body_bytes = 1024});
    Client client(port_);
    // Refused on the header alone: the body need not be sent.
    client.send("POST /api/v1/profiles HTTP/1.1\r\nHost: " + host() +
                "\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"a\":");
    const auto reply = client.receive();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, 413);
    EXPECT_EQ(reply->error(), "the body is larger than 1024 bytes");
    EXPECT_TRUE(client.closed_by_server());

    // A chunked body finds the limit as it grows.
    Client chunked(port_);
    const std::string chunk(1000, ' ');
    chunked.send("POST /api/v1/profiles HTTP/1.1\r\nHost: " + host() +
                 "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                 "3e8\r\n" + chunk + "\r\n3e8\r\n" + chunk + "\r\n0\r\n\r\n");
    const auto chunked_reply = chunked.receive();
    ASSERT_TRUE(chunked_reply.has_value());
    EXPECT_EQ(chunked_reply->status, 413);
    EXPECT_TRUE(backend_.calls().empty());
}

TEST_F(HttpServerTest, MalformedJsonIs400AndMalformedHttpCloses) {
    start();
    const HttpReply json_error = exchange(with_body("POST", "/api/v1/profiles", "{\"name\": }"));
    EXPECT_EQ(json_error.status, 400);
    EXPECT_NE(json_error.error().find("parse error at line 1, column 10"), std::string::npos)
        << json_error.error();
    EXPECT_EQ(exchange(with_body("POST", "/api/v1/profiles", "{}", "text/plain")).status, 415);

    Client client(port_);
    client.send("NOT HTTP AT ALL\r\n\r\n");
    const auto reply = client.receive();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, 400);
    EXPECT_NE(reply->error().find("malformed HTTP request"), std::string::npos);
    EXPECT_TRUE(client.closed_by_server());

    const std::string huge_header = "X-Filler: " + std::string(20000, 'x') + "\r\n";
    EXPECT_EQ(exchange(get("/api/v1/status", huge_header)).status, 431);
    EXPECT_TRUE(backend_.calls().empty());
}

TEST_F(HttpServerTest, DeferredAnswerArrivesLater) {
    backend_.answers = FakeBackend::Answers::Later;
    start();
    Client client(port_);
    client.send(with_body("POST", "/api/v1/profiles/firefox/rules",
                          R"({"list": "endpoints", "rule": "- .example.com"})"));
    ASSERT_TRUE(eventually([this] { return backend_.waiting() == 1; }));
    EXPECT_TRUE(client.silent_for(50ms));
    std::optional<Respond> respond = backend_.take_waiting();
    ASSERT_TRUE(respond.has_value());
    on_loop([&respond] {
        (*respond)(Reply{.status = 201, .body = {{"added", true}}, .allow = {}});
        // A second answer to the same request is ignored.
        (*respond)(Reply{.status = 500, .body = nullptr, .allow = {}});
    });
    auto reply = client.receive();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, 201);
    EXPECT_EQ(reply->json_body(), json({{"added", true}}));

    // The connection goes on.
    client.send(get("/api/v1/status"));
    reply = client.receive();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, 200);
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
    backend_.answers = FakeBackend::Answers::Later;
    start();
    Client client(port_);
    // The second request arrives while the backend works on the first.
    client.send(with_body("DELETE", "/api/v1/rules", R"({"rule": "- a.example"})") +
                get("/api/v1/status"));
    ASSERT_TRUE(eventually([this] { return backend_.waiting() == 1; }));
    EXPECT_TRUE(client.silent_for(50ms));
    std::optional<Respond> respond = backend_.take_waiting();
    ASSERT_TRUE(respond.has_value());
    on_loop([&respond] { (*respond)(Reply{.status = 204, .body = nullptr, .allow = {}}); });
    const auto first = client.receive();
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->status, 204);
    EXPECT_EQ(first->body, "");
    const auto second = client.receive();
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(second->status, 200);
    EXPECT_EQ(second->json_body(), backend_.status_json);
}

TEST_F(HttpServerTest, ClientLeavingBeforeTheDeferredAnswerIsHarmless) {
    backend_.answers = FakeBackend::Answers::Later;
    start();
    {
        Client client(port_);
        client.send(
            with_body("PUT", "/api/v1/settings/filter%2FdefaultAction", R"({"value": "block"})"));
        ASSERT_TRUE(eventually([this] { return backend_.waiting() == 1; }));
    } // the client closes its socket
    ASSERT_TRUE(eventually([this] { return counters().abandoned == 1; }));
    EXPECT_EQ(on_loop([this] { return server_->connection_count(); }), 0U);

    // The backend's answer finds nobody, and nothing breaks.
    std::optional<Respond> respond = backend_.take_waiting();
    ASSERT_TRUE(respond.has_value());
    on_loop([&respond] { (*respond)(Reply{.status = 200, .body = {{"ok", true}}, .allow = {}}); });
    backend_.answers = FakeBackend::Answers::Now;
    EXPECT_EQ(exchange(get("/api/v1/status")).status, 200);

    // Even after the server is gone.
    backend_.answers = FakeBackend::Answers::Later;
    Client late(port_);
    late.send(with_body("POST", "/api/v1/profiles", R"({"name": "x"})"));
    ASSERT_TRUE(eventually([this] { return backend_.waiting() == 1; }));
    respond = backend_.take_waiting();
    ASSERT_TRUE(respond.has_value());
    on_loop([this] { server_.reset(); });
    on_loop([&respond] { (*respond)(Reply{.status = 200, .body = nullptr, .allow = {}}); });
    EXPECT_TRUE(late.closed_by_server());
}

TEST_F(HttpServerTest, UnansweredChangeTimesOutWith503) {
    backend_.answers = FakeBackend::Answers::Later;
    start(ServerLimits{.answer_timeout = 1s});
    Client client(port_);
    client.send(with_body("POST", "/api/v1/prompts/7/answer", R"({"verdict": "permit"})"));
    const auto reply = client.receive();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, 503);
    EXPECT_EQ(counters().answer_timeouts, 1U);
    // The late answer is dropped; the connection serves the next request.
    std::optional<Respond> respond = backend_.take_waiting();
    ASSERT_TRUE(respond.has_value());
    on_loop([&respond] { (*respond)(Reply{.status = 200, .body = nullptr, .allow = {}}); });
    client.send(get("/api/v1/status"));
    const auto next = client.receive();
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(next->status, 200);
}

TEST_F(HttpServerTest, AFullTableGivesUpItsLongestIdleConnection) {
    start(ServerLimits{.max_connections = 2});
    Client first(port_);
    first.send(get("/api/v1/status"));
    ASSERT_TRUE(first.receive().has_value());
    Client second(port_);
    second.send(get("/api/v1/status"));
    ASSERT_TRUE(second.receive().has_value());

    Client third(port_);
    third.send(get("/api/v1/status"));
    const auto reply = third.receive();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, 200);
    EXPECT_TRUE(first.closed_by_server());
    EXPECT_EQ(counters().evictions, 1U);
    EXPECT_EQ(on_loop([this] { return server_->connection_count(); }), 2U);
}

TEST_F(HttpServerTest, ABusyPortIsNamedInTheError) {
    start();
    const ListenEndpoint taken{.address = IpAddress::parse("127.0.0.1").value(), .port = port_};
    const auto second =
        on_loop([&] { return HttpServer::start(io_, {taken}, {}, callers_, access_, backend_); });
    ASSERT_FALSE(second.has_value());
    EXPECT_EQ(second.error().message(), host() + ": Address already in use");
}

TEST_F(HttpServerTest, ListensOnIpv6Loopback) {
    const ListenEndpoint v6{.address = IpAddress::parse("::1").value(), .port = 0};
    auto started = HttpServer::start(io_, {v6}, {}, callers_, access_, backend_);
    if (!started) {
        GTEST_SKIP() << "no IPv6 loopback here: " << started.error().message();
    }
    const std::vector<ListenEndpoint> endpoints = (*started)->endpoints();
    ASSERT_EQ(endpoints.size(), 1U);
    EXPECT_NE(endpoints[0].port, 0);
    EXPECT_EQ(to_string(endpoints[0]), "[::1]:" + std::to_string(endpoints[0].port));
}

TEST(ListenEndpoint, PrintsAsAHostAndPort) {
    EXPECT_EQ(to_string({.address = IpAddress::parse("127.0.0.1").value(), .port = 817}),
              "127.0.0.1:817");
    EXPECT_EQ(to_string({.address = IpAddress::parse("::1").value(), .port = 817}), "[::1]:817");
}

} // namespace
} // namespace pw::api
