// libFuzzer target: parse_endpoint_rule() on arbitrary bytes, then matches() on what parses.
// A rule line comes from a user's config file, so any byte sequence must give a rule or an error,
// never a crash, a hang or undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "firewall/endpoint_rule.h"
#include "packet/packet_info.h"

namespace {

using pw::firewall::EndpointQuery;

// A few queries that between them reach every branch of matches(): both families, a protocol
// with ports and one without, and ports at both ends of the range.
std::vector<EndpointQuery> make_queries() {
    std::vector<EndpointQuery> queries;
    const auto add = [&queries](std::string_view address, std::uint8_t protocol,
                                std::uint16_t port) {
        if (auto parsed = pw::IpAddress::parse(address)) {
            queries.push_back(EndpointQuery{
                .remote_address = *parsed, .protocol = protocol, .service_port = port});
        }
    };
    add("10.1.2.3", pw::packet::protocol::kTcp, 22);
    add("192.0.2.255", pw::packet::protocol::kUdp, 65535);
    add("2001:db8::1", pw::packet::protocol::kIcmpV6, 0);
    add("::1", pw::packet::protocol::kSctp, 0);
    return queries;
}

} // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::vector<EndpointQuery> kQueries = make_queries();
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): libFuzzer hands out bytes.
    const std::string_view line(reinterpret_cast<const char*>(data), size);
    const auto rule = pw::firewall::parse_endpoint_rule(line);
    if (!rule) {
        return 0;
    }
    // Invariants the parser promises; a violation aborts so that libFuzzer reports it.
    if (rule->port_low > rule->port_high || rule->text.empty() || rule->text.size() > size) {
        __builtin_trap();
    }
    for (const EndpointQuery& query : kQueries) {
        (void)pw::firewall::matches(*rule, query);
    }
    const std::vector<pw::firewall::EndpointRule> rules = {*rule};
    (void)pw::firewall::first_match(rules, kQueries.front());
    return 0;
}
