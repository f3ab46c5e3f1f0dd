#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/backend.h"
#include "common/result.h"

namespace pw::api {

// One request as the router sees it: framed by the HTTP server, past the browser guards and the
// access policy. The views are valid during Router::handle() only.
struct Request {
    std::string_view method;                      // "GET", as sent (methods are case-sensitive)
    std::string_view target;                      // "/api/v1/profiles/abc?x=1"
    std::optional<std::string_view> content_type; // nullopt: no Content-Type header
    std::string_view body;                        // empty: no body
};

// Maps (method, target) to the Backend (issue 11 item 1, docs/api.md): finds the route, checks
// the method (405 with Allow), decodes the path's parameters, parses and checks the JSON body,
// and calls the backend. Pure: no sockets, no clock, so every route is tested with a fake
// Backend and fuzzed. Runs on the event-loop thread only, like the Backend.
class Router {
public:
    explicit Router(Backend& backend) : backend_(backend) {}

    // Answers through `respond`, exactly once: at once for reads and refusals, later for changes
    // (when the backend has stored them). Never throws for anything in `request`.
    void handle(const Request& request, Respond respond);

private:
    Backend& backend_;
};

// Every route the router serves as (method, path template), e.g. ("GET",
// "/api/v1/profiles/{id}"): what the OpenAPI document must list (tests/api/openapi_test.cc).
[[nodiscard]] std::vector<std::pair<std::string, std::string>> route_table();

// The deepest JSON nesting a body may have: the rules, profiles and answers the API takes are a
// few levels deep, and a shallow bound keeps recursive code downstream (dump, the backend's
// walks) far from the stack's limit.
inline constexpr int kMaxJsonDepth = 32;

// Decodes %XX escapes (RFC 3986 2.1); nullopt for a '%' not followed by two hex digits. '+' is
// not a space in a path.
[[nodiscard]] std::optional<std::string> percent_decode(std::string_view text);

// Parses a request body. Errors say where: "malformed JSON body: parse error at line 1, column 9:
// syntax error while parsing object - unexpected '}'; expected string literal" (cut to a readable
// length), or "JSON body nested deeper than 32 levels".
[[nodiscard]] Result<nlohmann::json> parse_json_body(std::string_view body);

// Whether a Content-Type names JSON: "application/json", any case, parameters allowed
// ("application/json; charset=utf-8").
[[nodiscard]] bool is_json_content_type(std::string_view content_type);

} // namespace pw::api
