// libFuzzer target: API requests from arbitrary bytes, the way the HTTP server takes them apart
// (src/api/http_server.cc): Beast's request parser with the server's limits, the Host and Origin
// guards, then the router over a backend that answers at once. Any input must end in exactly one
// answer with a real HTTP status and a body that serialises, never a crash, an escaped exception
// or undefined behaviour.
//
// The first byte picks the form of the rest: even, raw HTTP/1.1 bytes (framing, headers, chunked
// bodies); odd, a request already framed, as four lines "METHOD\nTARGET\nCONTENT-TYPE\nBODY",
// which reaches the router's paths and the JSON body parser without the HTTP parser in the way.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <nlohmann/json.hpp>

#include "../api/fake_backend.h"
#include "api/backend.h"
#include "api/browser_guard.h"
#include "api/router.h"

namespace {

namespace http = boost::beast::http;
using pw::api::Reply;

// The server's default limits, smaller bodies so that the fuzzer spends its time on content.
constexpr std::size_t kMaxBody = 64 * 1024;
constexpr std::uint32_t kMaxHeader = 16 * 1024;

void check(bool condition) {
    if (!condition) {
        __builtin_trap();
    }
}

std::string_view to_std(boost::beast::string_view text) {
    return {text.data(), text.size()};
}

pw::api::FakeBackend& backend() {
    static pw::api::FakeBackend fake;
    static const bool filled = [] {
        fake.profile_table["firefox"] = {{"id", "firefox"}};
        fake.global_settings = {{.key = "filter/defaultAction",
                                 .value = "permit",
                                 .layer = pw::api::SettingLayer::Default,
                                 .scope = pw::api::SettingScope::App}};
        fake.app_settings["firefox"] = fake.global_settings;
        return true;
    }();
    static_cast<void>(filled);
    return fake;
}

// Routes one framed request and checks its single answer.
void route(const pw::api::Request& request) {
    static pw::api::Router router(backend());
    int answers = 0;
    Reply reply;
    router.handle(request, [&](Reply given) {
        ++answers;
        reply = std::move(given);
    });
    backend().forget_calls();
    check(answers == 1);
    check(reply.status >= 200 && reply.status <= 599);
    if (reply.status >= 400) {
        check(reply.body.is_object() && reply.body.contains("error") &&
              reply.body["error"].is_string());
    }
    check(reply.status != 405 || !reply.allow.empty());
    // What the server sends: invalid UTF-8 from decoded paths is replaced, never thrown.
    static_cast<void>(reply.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void fuzz_http(std::string_view bytes) {
    const pw::api::ServerAddress server{.address = pw::IpAddress::parse("127.0.0.1").value(),
                                        .port = 817};
    http::request_parser<http::string_body> parser;
    parser.body_limit(kMaxBody);
    parser.header_limit(kMaxHeader);
    parser.eager(true);
    boost::beast::error_code error;
    while (!bytes.empty() && !parser.is_done()) {
        const std::size_t used = parser.put(boost::asio::buffer(bytes.data(), bytes.size()), error);
        if (error == http::error::need_more) {
            return; // the server would wait for more bytes
        }
        if (error) {
            return; // the server answers 400/413/431 and closes
        }
        if (used == 0) {
            return;
        }
        bytes.remove_prefix(used);
    }
    if (!parser.is_done()) {
        return;
    }
    const http::request<http::string_body>& request = parser.get();
    if (request.count(http::field::host) != 1) {
        return;
    }
    const std::string_view host = to_std(request[http::field::host]);
    if (pw::api::host_refusal(host, server)) {
        return;
    }
    if (request.count(http::field::origin) == 1 &&
        pw::api::origin_refusal(to_std(request[http::field::origin]), server)) {
        return;
    }
    const auto content_type = request.find(http::field::content_type);
    route(pw::api::Request{
        .method = to_std(request.method_string()),
        .target = to_std(request.target()),
        .content_type = content_type == request.end()
                            ? std::nullopt
                            : std::optional<std::string_view>(to_std(content_type->value())),
        .body = request.body()});
}

// "METHOD\nTARGET\nCONTENT-TYPE\nBODY"; a missing line is empty, an empty content type absent.
void fuzz_framed(std::string_view text) {
    std::string_view lines[3];
    for (std::string_view& line : lines) {
        const std::size_t end = text.find('\n');
        line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    }
    // The guards see the target's text too: they must take anything.
    const pw::api::ServerAddress server{.address = pw::IpAddress::parse("::1").value(),
                                        .port = 817};
    static_cast<void>(pw::api::host_refusal(lines[1], server));
    static_cast<void>(pw::api::origin_refusal(lines[2], server));
    route(pw::api::Request{
        .method = lines[0],
        .target = lines[1],
        .content_type = lines[2].empty() ? std::nullopt : std::optional<std::string_view>(lines[2]),
        .body = text});
}

} // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): libFuzzer hands out bytes.
    const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
    if ((data[0] & 1U) == 0) {
        fuzz_http(input);
    } else {
        fuzz_framed(input);
    }
    return 0;
}
