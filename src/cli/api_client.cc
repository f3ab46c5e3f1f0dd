#include "cli/api_client.h"

#include <charconv>
#include <cstddef>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/beast/http/write.hpp>

namespace pw::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using Tcp = asio::ip::tcp;

// The API's answers are small (the largest is the list of profiles); a bound keeps a confused
// peer from filling memory.
constexpr std::uint64_t kMaxAnswerBytes = 64ULL * 1024 * 1024;

ClientError client_error(ClientFailure failure, std::string what,
                         const boost::system::error_code& code = {}) {
    std::error_code reason;
    if (code) {
        reason = std::error_code(code.value(), std::system_category());
        if (code.category() != boost::system::system_category()) {
            // Beast's own codes (timeout, end of stream) have no errno: keep their words.
            what += ": " + code.message();
            reason = {};
        }
    }
    return ClientError{.failure = failure,
                       .error = Error{.what = std::move(what), .reason = reason}};
}

bool is_timeout(const boost::system::error_code& code) {
    return code == beast::error::timeout;
}

// A failed step of the exchange: the deadline passing is a Timeout (NotReachable while
// connecting), anything else `failure` with the OS or Beast reason.
ClientError step_failed(ClientFailure failure, const std::string& step,
                        const boost::system::error_code& code, std::chrono::milliseconds timeout) {
    if (is_timeout(code)) {
        return client_error(
            failure == ClientFailure::NotReachable ? failure : ClientFailure::Timeout,
            step + ": no answer within " + std::to_string(timeout.count()) + " ms");
    }
    return client_error(failure, step, code);
}

http::request<http::string_body> http_message(const ApiRequest& request, http::verb verb,
                                              std::uint16_t port) {
    http::request<http::string_body> message{verb, request.target, 11};
    // The API accepts "localhost" with the port it listens on (its DNS-rebinding guard).
    message.set(http::field::host, "localhost:" + std::to_string(port));
    message.set(http::field::user_agent, "portwarden-cli");
    message.set(http::field::accept, "application/json");
    message.set(http::field::connection, "close");
    if (request.body) {
        message.set(http::field::content_type, "application/json");
        message.body() = request.body->dump();
    }
    message.prepare_payload();
    return message;
}

// The answer's status and JSON body.
ApiResult decode_answer(const http::response<http::string_body>& answer, const std::string& where) {
    ApiResponse response;
    response.status = static_cast<int>(answer.result_int());
    const std::string& body = answer.body();
    if (body.empty()) {
        response.body = nullptr;
        return response;
    }
    try {
        response.body = nlohmann::json::parse(body);
    } catch (const nlohmann::json::exception&) {
        return std::unexpected(client_error(
            ClientFailure::BadAnswer,
            "the answer from " + where + " (HTTP " + std::to_string(response.status) +
                ") is not JSON: is this portwarden's API? It begins: " + body.substr(0, 80)));
    }
    return response;
}

} // namespace

Result<ApiEndpoint> parse_api_endpoint(std::string_view text) {
    const std::string quoted = "'" + std::string(text) + "'";
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon + 1 == text.size()) {
        return fail("--api " + quoted + ": expected ADDRESS:PORT, such as 127.0.0.1:817");
    }
    std::string_view host = text.substr(0, colon);
    const std::string_view port_text = text.substr(colon + 1);
    unsigned port = 0;
    const auto [end, error] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (error != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
        port > 65535) {
        return fail("--api " + quoted + ": the port must be a number from 1 to 65535");
    }
    if (host.starts_with('[')) {
        if (!host.ends_with(']')) {
            return fail("--api " + quoted + ": an IPv6 address is written [::1]:817");
        }
        host = host.substr(1, host.size() - 2);
    } else if (host.find(':') != std::string_view::npos) {
        return fail("--api " + quoted + ": write an IPv6 address in brackets, as [::1]:817");
    }
    if (host.empty()) {
        return fail("--api " + quoted + ": the address is missing");
    }
    return ApiEndpoint{.host = std::string(host), .port = static_cast<std::uint16_t>(port)};
}

std::string to_string(const ApiEndpoint& endpoint) {
    const bool ipv6 = endpoint.host.find(':') != std::string::npos;
    return (ipv6 ? "[" + endpoint.host + "]" : endpoint.host) + ":" + std::to_string(endpoint.port);
}

ApiResult HttpApiClient::send(const ApiRequest& request) {
    const std::string where = to_string(endpoint_);
    asio::io_context io;
    boost::system::error_code code;
    Tcp::resolver resolver(io);
    const auto addresses = resolver.resolve(endpoint_.host, std::to_string(endpoint_.port),
                                            Tcp::resolver::numeric_service, code);
    if (code) {
        return std::unexpected(
            client_error(ClientFailure::NotReachable, "cannot resolve " + endpoint_.host, code));
    }

    const http::verb verb = http::string_to_verb(request.method);
    if (verb == http::verb::unknown) {
        return std::unexpected(
            client_error(ClientFailure::BadAnswer, "unknown HTTP method " + request.method));
    }
    const http::request<http::string_body> message = http_message(request, verb, endpoint_.port);

    beast::tcp_stream stream(io);
    // One deadline for the whole exchange: beast's stream timeouts apply to asynchronous
    // operations only, hence the callbacks below on an io_context run to completion here.
    stream.expires_after(timeout_);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxAnswerBytes);
    std::optional<ClientError> failure;

    const auto on_read = [&](const boost::system::error_code& error, std::size_t /*bytes*/) {
        if (error) {
            failure = step_failed(ClientFailure::BadAnswer, "reading the answer from " + where,
                                  error, timeout_);
        }
    };
    const auto on_write = [&](const boost::system::error_code& error, std::size_t /*bytes*/) {
        if (error) {
            failure = step_failed(ClientFailure::BadAnswer, "sending the request to " + where,
                                  error, timeout_);
            return;
        }
        http::async_read(stream, buffer, parser, on_read);
    };
    stream.async_connect(
        addresses, [&](const boost::system::error_code& error, const Tcp::endpoint& /*connected*/) {
            if (error) {
                failure = step_failed(ClientFailure::NotReachable, "connect to " + where, error,
                                      timeout_);
                return;
            }
            http::async_write(stream, message, on_write);
        });
    io.run();
    if (failure) {
        return std::unexpected(std::move(*failure));
    }
    return decode_answer(parser.get(), where);
}

} // namespace pw::cli
