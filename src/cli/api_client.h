#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace pw::cli {

// Where the local API listens: "127.0.0.1:817", "[::1]:817" or "localhost:817".
struct ApiEndpoint {
    std::string host = "127.0.0.1"; // an address literal (IPv6 without brackets) or a name
    std::uint16_t port = 817;
};

// Parses --api ADDRESS:PORT. The port is required: the API refuses a Host without one, and
// guessing it would hide a typo.
[[nodiscard]] Result<ApiEndpoint> parse_api_endpoint(std::string_view text);

// "127.0.0.1:817", "[::1]:817".
[[nodiscard]] std::string to_string(const ApiEndpoint& endpoint);

// One request to the API. `target` is the full path ("/api/v1/status"); `body` is sent as JSON
// with Content-Type: application/json when present.
struct ApiRequest {
    std::string method;
    std::string target;
    std::optional<nlohmann::json> body;

    friend bool operator==(const ApiRequest&, const ApiRequest&) = default;
};

// The daemon's answer. `body` is the decoded JSON, null for an empty body (204); an answer that
// is not JSON is a ClientFailure::BadAnswer instead.
struct ApiResponse {
    int status = 0;
    nlohmann::json body;
};

// Why a request got no answer. The CLI maps NotReachable to exit code 3 (nothing listens) and
// the others to 1 (something listens but did not answer properly).
enum class ClientFailure : std::uint8_t {
    NotReachable, // the connection could not be made (refused, unreachable, connect timeout)
    Timeout,      // connected, but no complete answer within the timeout
    BadAnswer,    // connected, but the answer is not HTTP with a JSON body
};

struct ClientError {
    ClientFailure failure = ClientFailure::BadAnswer;
    Error error;
};

using ApiResult = std::expected<ApiResponse, ClientError>;

// How the commands reach the API. HttpApiClient in the binary; the unit tests give a fake that
// records the requests and answers canned responses.
class ApiTransport {
public:
    virtual ~ApiTransport() = default;
    [[nodiscard]] virtual ApiResult send(const ApiRequest& request) = 0;
};

// A small synchronous HTTP/1.1 client (Boost.Beast): one connection per request, closed after the
// answer, and one deadline for the whole exchange (connect, write, read), so a daemon that
// accepts but never answers cannot hang the CLI. Host is "localhost:PORT", which the API's
// browser guard accepts; no Origin is sent. Not thread-safe; one per command.
class HttpApiClient final : public ApiTransport {
public:
    HttpApiClient(ApiEndpoint endpoint, std::chrono::milliseconds timeout)
        : endpoint_(std::move(endpoint)), timeout_(timeout) {}

    // ApiTransport
    [[nodiscard]] ApiResult send(const ApiRequest& request) override;

    [[nodiscard]] const ApiEndpoint& endpoint() const { return endpoint_; }

private:
    ApiEndpoint endpoint_;
    std::chrono::milliseconds timeout_;
};

} // namespace pw::cli
