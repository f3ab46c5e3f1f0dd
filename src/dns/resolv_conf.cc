#include "dns/resolv_conf.h"

#include <string>

namespace pw::dns {
namespace {

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(" \t\r");
    return text.substr(first, last - first + 1);
}

} // namespace

std::vector<Upstream> upstreams_from_resolv_conf(std::string_view text) {
    std::vector<Upstream> upstreams;
    while (!text.empty()) {
        const auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        if (const auto comment = line.find_first_of("#;"); comment != std::string_view::npos) {
            line = line.substr(0, comment);
        }
        line = trim(line);
        constexpr std::string_view kKeyword = "nameserver";
        if (!line.starts_with(kKeyword) || line.size() == kKeyword.size() ||
            (line[kKeyword.size()] != ' ' && line[kKeyword.size()] != '\t')) {
            continue;
        }
        const std::string_view value = trim(line.substr(kKeyword.size()));
        if (value.find_first_of(" \t%") != std::string_view::npos) {
            continue; // a zone index, or trailing words we do not understand
        }
        auto address = IpAddress::parse(value);
        if (!address || address->is_loopback() || address->is_unspecified()) {
            continue;
        }
        Upstream upstream;
        upstream.protocol = UpstreamProtocol::Udp;
        upstream.address = *address;
        upstream.port = 53;
        upstream.url = address->is_v4() ? "dns://" + address->to_string()
                                        : "dns://[" + address->to_string() + "]";
        upstreams.push_back(std::move(upstream));
    }
    return upstreams;
}

} // namespace pw::dns
