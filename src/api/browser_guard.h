#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/ip_address.h"

namespace pw::api {

// Where a connection reached the API: the address and port of the listening socket it arrived
// on. The browser guards accept names of this endpoint only.
struct ServerAddress {
    IpAddress address;
    std::uint16_t port = 0;
};

// The Host header check against DNS rebinding (issue 11 item 2). A web page that makes its own
// name resolve to 127.0.0.1 can have the browser send requests to the API, but the browser then
// writes that name in Host. Accepted: "localhost", any loopback address literal (127.0.0.1,
// [::1]) or the literal address of `server`, always with the server's port
// ("127.0.0.1:817"). nullopt when accepted, else why not, for a 403.
[[nodiscard]] std::optional<std::string> host_refusal(std::string_view host,
                                                      const ServerAddress& server);

// The Origin header check against cross-site requests: a browser names the page's origin in
// every cross-origin request (and in same-origin POSTs). Only our own origins are accepted,
// "http://" followed by a Host that host_refusal() accepts ("http://localhost:817"); "null"
// (sandboxed frames, file:// pages) and every other site are refused, and no CORS headers are
// ever sent. nullopt when accepted, else why not, for a 403. Requests without Origin (curl, the
// CLI) are not browsers' cross-origin requests and do not get here.
[[nodiscard]] std::optional<std::string> origin_refusal(std::string_view origin,
                                                        const ServerAddress& server);

} // namespace pw::api
