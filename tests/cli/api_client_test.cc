#include "cli/api_client.h"

#include <chrono>
#include <cstddef>
#include <string>
#include <thread>
#include <utility>

#include <boost/asio/buffer.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

// The HTTP client against a canned server: an acceptor on 127.0.0.1 port 0 in a thread that
// takes one connection, reads one request and answers with fixed bytes (or never answers). No
// root; connecting to loopback installs nothing.

namespace pw::cli {
namespace {

namespace asio = boost::asio;
using Tcp = asio::ip::tcp;
using nlohmann::json;
using namespace std::chrono_literals;

enum class Behaviour : std::uint8_t { Answer, NeverAnswer };

class CannedServer {
public:
    explicit CannedServer(std::string answer, Behaviour behaviour = Behaviour::Answer)
        : acceptor_(io_, Tcp::endpoint(asio::ip::address_v4::loopback(), 0)),
          answer_(std::move(answer)),
          behaviour_(behaviour) {
        thread_ = std::thread([this] { serve(); });
    }
    CannedServer(const CannedServer&) = delete;
    CannedServer& operator=(const CannedServer&) = delete;
    CannedServer(CannedServer&&) = delete;
    CannedServer& operator=(CannedServer&&) = delete;
    // Every test makes exactly one connection, so the thread ends once the client is done.
    ~CannedServer() { thread_.join(); }

    [[nodiscard]] std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

    // The request as received; valid after the client returned.
    [[nodiscard]] std::string request() {
        thread_.join();
        thread_ = std::thread([] {});
        return request_;
    }

private:
    void serve() {
        boost::system::error_code error;
        Tcp::socket socket = acceptor_.accept(error);
        if (error) {
            return;
        }
        asio::streambuf buffer;
        const std::size_t header_size = asio::read_until(socket, buffer, "\r\n\r\n", error);
        if (error) {
            return;
        }
        std::string received(asio::buffers_begin(buffer.data()), asio::buffers_end(buffer.data()));
        std::size_t length = 0;
        if (const std::size_t at = received.find("Content-Length: "); at != std::string::npos) {
            length = std::stoul(received.substr(at + 16));
        }
        if (received.size() < header_size + length) {
            asio::read(socket, buffer,
                       asio::transfer_exactly(header_size + length - received.size()), error);
            received.assign(asio::buffers_begin(buffer.data()), asio::buffers_end(buffer.data()));
        }
        request_ = received;
        if (behaviour_ == Behaviour::Answer) {
            asio::write(socket, asio::buffer(answer_), error);
            return;
        }
        // Never answer: wait until the client gives up and closes.
        char byte = 0;
        socket.read_some(asio::buffer(&byte, 1), error);
    }

    asio::io_context io_;
    Tcp::acceptor acceptor_;
    std::string answer_;
    Behaviour behaviour_;
    std::string request_;
    std::thread thread_;
};

std::string http_answer(int status, const std::string& reason, const std::string& body) {
    return "HTTP/1.1 " + std::to_string(status) + " " + reason +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n\r\n" + body;
}

HttpApiClient client_for(std::uint16_t port, std::chrono::milliseconds timeout = 2000ms) {
    return HttpApiClient(ApiEndpoint{.host = "127.0.0.1", .port = port}, timeout);
}

TEST(ParseApiEndpoint, AddressAndPort) {
    auto endpoint = parse_api_endpoint("127.0.0.1:817");
    ASSERT_TRUE(endpoint.has_value());
    EXPECT_EQ(endpoint->host, "127.0.0.1");
    EXPECT_EQ(endpoint->port, 817);
    endpoint = parse_api_endpoint("[::1]:8170");
    ASSERT_TRUE(endpoint.has_value());
    EXPECT_EQ(endpoint->host, "::1");
    EXPECT_EQ(to_string(*endpoint), "[::1]:8170");
    endpoint = parse_api_endpoint("localhost:817");
    ASSERT_TRUE(endpoint.has_value());
    EXPECT_EQ(endpoint->host, "localhost");
}

TEST(ParseApiEndpoint, RefusesWhatIsNotAddressColonPort) {
    for (const char* bad : {"127.0.0.1", "127.0.0.1:", ":817", "127.0.0.1:0", "127.0.0.1:70000",
                            "::1:817", "[::1:817", "host:port"}) {
        EXPECT_FALSE(parse_api_endpoint(bad).has_value()) << bad;
    }
}

TEST(HttpApiClient, SendsOneRequestWithHostAndJsonBody) {
    CannedServer server(http_answer(200, "OK", R"([{"key": "a", "value": 1}])"));
    auto client = client_for(server.port());
    const ApiResult answer = client.send(
        ApiRequest{.method = "PUT", .target = "/api/v1/settings/a", .body = json{{"value", 1}}});
    ASSERT_TRUE(answer.has_value()) << answer.error().error.message();
    EXPECT_EQ(answer->status, 200);
    EXPECT_EQ(answer->body, json::parse(R"([{"key": "a", "value": 1}])"));
    const std::string request = server.request();
    EXPECT_TRUE(request.starts_with("PUT /api/v1/settings/a HTTP/1.1\r\n")) << request;
    EXPECT_NE(request.find("Host: localhost:" + std::to_string(server.port()) + "\r\n"),
              std::string::npos)
        << request;
    EXPECT_NE(request.find("Content-Type: application/json\r\n"), std::string::npos) << request;
    EXPECT_TRUE(request.ends_with("\r\n\r\n{\"value\":1}")) << request;
    EXPECT_EQ(request.find("Origin"), std::string::npos) << request;
}

TEST(HttpApiClient, GetHasNoBodyAndNoContentType) {
    CannedServer server(http_answer(200, "OK", R"({"version": "x"})"));
    auto client = client_for(server.port());
    const ApiResult answer =
        client.send(ApiRequest{.method = "GET", .target = "/api/v1/status", .body = std::nullopt});
    ASSERT_TRUE(answer.has_value()) << answer.error().error.message();
    EXPECT_EQ(answer->body["version"], "x");
    const std::string request = server.request();
    EXPECT_EQ(request.find("Content-Type"), std::string::npos) << request;
}

TEST(HttpApiClient, ErrorStatusIsAnAnswerNotAFailure) {
    CannedServer server(http_answer(403, "Forbidden", R"({"error": "not allowed"})"));
    auto client = client_for(server.port());
    const ApiResult answer =
        client.send(ApiRequest{.method = "GET", .target = "/api/v1/status", .body = std::nullopt});
    ASSERT_TRUE(answer.has_value());
    EXPECT_EQ(answer->status, 403);
    EXPECT_EQ(answer->body["error"], "not allowed");
}

TEST(HttpApiClient, NoContentIsANullBody) {
    CannedServer server("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    auto client = client_for(server.port());
    const ApiResult answer = client.send(
        ApiRequest{.method = "DELETE", .target = "/api/v1/profiles/x", .body = std::nullopt});
    ASSERT_TRUE(answer.has_value()) << answer.error().error.message();
    EXPECT_EQ(answer->status, 204);
    EXPECT_TRUE(answer->body.is_null());
}

TEST(HttpApiClient, AnswerThatIsNotJsonIsABadAnswer) {
    CannedServer server("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n<html");
    auto client = client_for(server.port());
    const ApiResult answer =
        client.send(ApiRequest{.method = "GET", .target = "/api/v1/status", .body = std::nullopt});
    ASSERT_FALSE(answer.has_value());
    EXPECT_EQ(answer.error().failure, ClientFailure::BadAnswer);
    EXPECT_NE(answer.error().error.message().find("is not JSON"), std::string::npos);
}

TEST(HttpApiClient, NotHttpIsABadAnswer) {
    CannedServer server("SSH-2.0-OpenSSH_9.2\r\n\r\n");
    auto client = client_for(server.port());
    const ApiResult answer =
        client.send(ApiRequest{.method = "GET", .target = "/api/v1/status", .body = std::nullopt});
    ASSERT_FALSE(answer.has_value());
    EXPECT_EQ(answer.error().failure, ClientFailure::BadAnswer);
}

TEST(HttpApiClient, ServerThatNeverAnswersTimesOut) {
    CannedServer server("", Behaviour::NeverAnswer);
    auto client = client_for(server.port(), 300ms);
    const auto started = std::chrono::steady_clock::now();
    const ApiResult answer =
        client.send(ApiRequest{.method = "GET", .target = "/api/v1/status", .body = std::nullopt});
    const auto waited = std::chrono::steady_clock::now() - started;
    ASSERT_FALSE(answer.has_value());
    EXPECT_EQ(answer.error().failure, ClientFailure::Timeout);
    EXPECT_NE(answer.error().error.message().find("reading the answer from 127.0.0.1:"),
              std::string::npos)
        << answer.error().error.message();
    EXPECT_NE(answer.error().error.message().find("no answer within 300 ms"), std::string::npos)
        << answer.error().error.message();
    // A hang guard, not a performance bound: the deadline ended the wait.
    EXPECT_LT(waited, 5s);
}

TEST(HttpApiClient, RefusedConnectionIsNotReachable) {
    std::uint16_t port = 0;
    {
        // A port that was free a moment ago and now has no listener.
        asio::io_context io;
        const Tcp::acceptor acceptor(io, Tcp::endpoint(asio::ip::address_v4::loopback(), 0));
        port = acceptor.local_endpoint().port();
    }
    auto client = client_for(port);
    const ApiResult answer =
        client.send(ApiRequest{.method = "GET", .target = "/api/v1/status", .body = std::nullopt});
    ASSERT_FALSE(answer.has_value());
    EXPECT_EQ(answer.error().failure, ClientFailure::NotReachable);
    EXPECT_NE(answer.error().error.message().find("Connection refused"), std::string::npos)
        << answer.error().error.message();
}

} // namespace
} // namespace pw::cli
