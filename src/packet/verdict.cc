#include "packet/verdict.h"

namespace pw::packet {

std::optional<MarkMeaning> meaning_of_mark(std::uint32_t value) {
    using enum Verdict;
    switch (value) {
        case mark::kAccept:
            return MarkMeaning{Accept, Persistence::Temporary};
        case mark::kBlock:
            return MarkMeaning{Block, Persistence::Temporary};
        case mark::kDrop:
            return MarkMeaning{Drop, Persistence::Temporary};
        case mark::kPermanentAccept:
            return MarkMeaning{Accept, Persistence::Permanent};
        case mark::kPermanentBlock:
            return MarkMeaning{Block, Persistence::Permanent};
        case mark::kPermanentDrop:
            return MarkMeaning{Drop, Persistence::Permanent};
        case mark::kRerouteToTunnel:
            return MarkMeaning{RerouteToTunnel, Persistence::Permanent};
        case mark::kRerouteToNameserver:
            return MarkMeaning{RerouteToNameserver, Persistence::Permanent};
        default:
            return std::nullopt;
    }
}

std::string_view verdict_name(Verdict verdict) {
    switch (verdict) {
        case Verdict::Accept:
            return "accept";
        case Verdict::Block:
            return "block";
        case Verdict::Drop:
            return "drop";
        case Verdict::RerouteToNameserver:
            return "reroute-nameserver";
        case Verdict::RerouteToTunnel:
            return "reroute-tunnel";
    }
    return "drop";
}

} // namespace pw::packet
