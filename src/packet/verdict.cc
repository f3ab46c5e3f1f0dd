#include "packet/verdict.h"

namespace pw::packet {
namespace {

constexpr MarkMeaning meaning(Verdict verdict, Persistence persistence) {
    return MarkMeaning{.verdict = verdict, .persistence = persistence};
}

} // namespace

std::optional<MarkMeaning> meaning_of_mark(std::uint32_t value) {
    using enum Verdict;
    switch (value) {
        case mark::kAccept:
            return meaning(Accept, Persistence::Temporary);
        case mark::kBlock:
            return meaning(Block, Persistence::Temporary);
        case mark::kDrop:
            return meaning(Drop, Persistence::Temporary);
        case mark::kPermanentAccept:
            return meaning(Accept, Persistence::Permanent);
        case mark::kPermanentBlock:
            return meaning(Block, Persistence::Permanent);
        case mark::kPermanentDrop:
            return meaning(Drop, Persistence::Permanent);
        case mark::kRerouteToTunnel:
            return meaning(RerouteToTunnel, Persistence::Permanent);
        case mark::kRerouteToNameserver:
            return meaning(RerouteToNameserver, Persistence::Permanent);
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
