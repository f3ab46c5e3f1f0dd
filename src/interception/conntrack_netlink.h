#pragma once

#include <linux/netlink.h>

#include <memory>
#include <optional>

#include "interception/conntrack_entry.h"

struct nf_conntrack;

// Shared by conntrack.cc and conntrack_destroy_listener.cc (not for other folders): reading
// conntrack entries out of ctnetlink messages with libnetfilter_conntrack's parser.
namespace pw::interception {

struct NfConntrackDeleter {
    void operator()(nf_conntrack* object) const noexcept;
};
// A libnetfilter_conntrack object: what its parser fills and its message builder reads.
using NfConntrack = std::unique_ptr<nf_conntrack, NfConntrackDeleter>;

// A new, empty object; nullptr when out of memory.
[[nodiscard]] NfConntrack new_nf_conntrack();

// The entry in a ctnetlink conntrack message (a dump part, a get answer or an event); nullopt
// when the message carries no IPv4 or IPv6 entry with both tuples.
[[nodiscard]] std::optional<ConntrackEntry> parse_conntrack_message(const nlmsghdr* message);

// The entry an object holds (filled by the parser); nullopt without both tuples.
[[nodiscard]] std::optional<ConntrackEntry> entry_from(const nf_conntrack& object);

} // namespace pw::interception
