#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "common/result.h"

namespace pw::dns {

// DNS wire-format handling for the nameserver and the resolver (RFC 1035, RFC 6891 for EDNS).
// Pure: no sockets, no clock. Two halves:
//   - the query path (parse_query, the response builders, render_cached_answer) runs for every
//     client query, so it is a small checked parser over the bytes that allocates only the
//     question name;
//   - the upstream half (analyze_upstream_response) runs once per cache miss and uses ldns to
//     take the upstream's answer apart.
// Everything here treats its input as hostile: every length is checked, and no input can make
// it read out of bounds, loop forever or crash (fuzzed: tests/fuzz/dns_message_fuzz.cc).

inline constexpr std::uint16_t kClassIn = 1;

namespace type {
inline constexpr std::uint16_t kA = 1;
inline constexpr std::uint16_t kNs = 2;
inline constexpr std::uint16_t kCname = 5;
inline constexpr std::uint16_t kSoa = 6;
inline constexpr std::uint16_t kPtr = 12;
inline constexpr std::uint16_t kMx = 15;
inline constexpr std::uint16_t kTxt = 16;
inline constexpr std::uint16_t kAaaa = 28;
inline constexpr std::uint16_t kSrv = 33;
inline constexpr std::uint16_t kOpt = 41;
inline constexpr std::uint16_t kSvcb = 64;
inline constexpr std::uint16_t kHttps = 65;
inline constexpr std::uint16_t kAny = 255;
} // namespace type

// "A", "AAAA", "HTTPS", ... or "TYPE1234" (RFC 3597) for the rest.
[[nodiscard]] std::string type_name(std::uint16_t record_type);

enum class Rcode : std::uint8_t {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
};

// "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED".
[[nodiscard]] std::string_view rcode_name(Rcode rcode);

// Largest response we send over UDP to a client that announced a bigger EDNS buffer, and the size
// we announce upstream (the DNS flag day 2020 value: no IP fragmentation).
inline constexpr std::uint16_t kMaxUdpPayload = 1232;
// Without EDNS a UDP response is at most 512 bytes (RFC 1035 4.2.1).
inline constexpr std::uint16_t kClassicUdpPayload = 512;

struct Question {
    // Lower case, labels joined by dots, no trailing dot: "www.example.com"; "" is the root.
    // Bytes outside letters, digits, '-' and '_' are kept as \DDD escapes (RFC 4343), so a name
    // never contains a raw dot inside a label, a space, a control byte or a non-ASCII byte.
    std::string name;
    std::uint16_t type = type::kA;
    std::uint16_t qclass = kClassIn;
    friend bool operator==(const Question&, const Question&) = default;
};

// The one normal form of a domain name in portwarden (Question::name): a name in presentation
// form ("WWW.Example.com.", "a\\.b.example", "x\\032y") becomes lower case, without the trailing
// dot, with bytes outside letters, digits, '-' and '_' as \DDD. Every name that enters from
// outside (client queries, systemd-resolved's answers, rules) goes through this form, so two
// spellings of one name always compare equal. nullopt for text that is not a name (empty labels,
// labels over 63 bytes, over 255 bytes on the wire, broken escapes). "." and "" are the root, "".
[[nodiscard]] std::optional<std::string> normalize_name(std::string_view text);

// A client's query, parsed. `question_wire` points into the bytes given to parse_query() and is
// valid only as long as they are.
struct Query {
    std::uint16_t id = 0;
    bool recursion_desired = false;
    bool checking_disabled = false;
    Question question;
    // The question section exactly as the client sent it (its name's letter case included):
    // answers repeat it byte for byte.
    std::span<const std::uint8_t> question_wire;
    // The client's EDNS UDP payload size (RFC 6891), at least 512; nullopt without an OPT record.
    std::optional<std::uint16_t> edns_udp_size;
};

// Why a query was refused, and how to answer it.
struct QueryRejection {
    // FormErr for broken messages, NotImp for other opcodes, Refused for things we do not serve
    // (several questions, class other than IN). Meaningless when !answerable.
    Rcode rcode = Rcode::FormErr;
    // False when not even the 12-byte header could be read, or the message is a response (QR
    // set): such datagrams are dropped without an answer, so that two servers can never be made to
    // bounce error responses at each other.
    bool answerable = false;
    std::string reason; // for the log: "question name: label longer than 63 bytes"
};

// Parses a query from a client. Accepts exactly: QR=0, opcode QUERY, QDCOUNT 1, ANCOUNT 0,
// NSCOUNT 0, at most one additional record which must be an OPT for the root name; trailing bytes
// after the last record are an error. Name compression is refused in the question (no query needs
// it). Class IN only (REFUSED otherwise). An OPT record with version > 0 gets FORMERR (RFC 6891
// would want BADVERS, which needs an OPT in the answer; we keep it simple and say so in the
// reason).
[[nodiscard]] std::expected<Query, QueryRejection> parse_query(
    std::span<const std::uint8_t> message);

// A header-only answer (QDCOUNT 0) to a query that was rejected but is answerable: the client's
// ID, opcode and RD bit, QR=1, RA=1 and `rcode`. Empty when `message` is shorter than a header.
[[nodiscard]] std::vector<std::uint8_t> error_response(std::span<const std::uint8_t> message,
                                                       Rcode rcode);

// A record we make up ourselves (blocked answers, localhost): its owner is the question name.
struct SyntheticRecord {
    std::uint16_t type = type::kA;
    std::uint32_t ttl = 0;
    std::vector<std::uint8_t> rdata; // 4 bytes for A, 16 for AAAA
};

// A complete answer to `query` made by us: its header (ID, RD, CD echoed; QR, RA set; AA clear),
// the question as the client sent it, `answers` (owner = a compression pointer to the question
// name), and an OPT record announcing kMaxUdpPayload when the client sent one. Used for SERVFAIL,
// NXDOMAIN, blocked answers (A 0.0.0.17 / AAAA ::17) and the like.
[[nodiscard]] std::vector<std::uint8_t> synthesize_response(
    const Query& query, Rcode rcode, std::span<const SyntheticRecord> answers = {});

// ---------------------------------------------------------------------------------------------
// Upstream side.

// The query we send upstream for `question`: ID `id`, RD=1, the name in lower case, and an OPT
// record announcing kMaxUdpPayload (no DO bit: we do not validate DNSSEC). Empty when
// `question.name` is not a valid name (parse_query() never makes one).
[[nodiscard]] std::vector<std::uint8_t> build_upstream_query(std::uint16_t id,
                                                             const Question& question);

// An upstream response reduced to what we serve from the cache: everything after the question,
// with the upstream's OPT record removed, plus where the TTLs are so that they can be aged. The
// records are as ldns writes them back, so their compression pointers lead only to the question
// or to other records, never into the header or the dropped OPT record.
struct CachedAnswer {
    // Header bytes 2-3 of the upstream response (flags and rcode) minus TC; RD and ID are set per
    // client when rendering.
    std::uint16_t flags = 0;
    std::uint16_t answer_count = 0;
    std::uint16_t authority_count = 0;
    std::uint16_t additional_count = 0; // without the OPT record
    std::uint16_t question_size = 0;    // bytes of the question section these records follow
    std::vector<std::uint8_t> records;  // the answer, authority and additional sections
    // Offsets into `records` of every 32-bit TTL field, with the TTL the upstream sent.
    struct TtlField {
        std::uint32_t offset = 0;
        std::uint32_t ttl = 0;
    };
    std::vector<TtlField> ttl_fields;
};

// What analyze_upstream_response learned from an upstream's answer to `question`.
struct UpstreamAnswer {
    Rcode rcode = Rcode::NoError;
    bool truncated = false; // TC set: ask again over TCP; the rest is not filled in
    // The addresses the question name resolves to (A/AAAA records reached by following the
    // CNAME chain from the question name, at most 16 hops), in answer order.
    std::vector<IpAddress> addresses;
    // The names the chain went through after the question name, in order:
    // www.example.com -> cdn.example.net -> edge.example.org gives
    // {"cdn.example.net", "edge.example.org"}. Lower case, like Question::name.
    std::vector<std::string> cname_chain;
    // How long the answer may be cached, in seconds, before any clamping: the lowest TTL of the
    // answer records that the chain used; for NXDOMAIN and empty answers (NODATA) the SOA record's
    // minimum field capped by the SOA's own TTL (RFC 2308 section 5), nullopt without a SOA.
    std::optional<std::uint32_t> ttl;
    CachedAnswer cached;
};

// Checks that `message` answers `question` with ID `expected_id` (QR=1, opcode QUERY, the same
// question, case-insensitively) and takes it apart. Errors say what was wrong: a mismatching
// answer must not be used (it may be spoofed or late), a malformed one must not be cached.
[[nodiscard]] Result<UpstreamAnswer> analyze_upstream_response(
    std::span<const std::uint8_t> message, const Question& question, std::uint16_t expected_id);

// Writes the answer to `query` from a cached answer into `out` (replacing its contents): the
// client's ID, RD and CD bits and question bytes, the cached flags and records with every TTL
// reduced by `age_seconds` (not below 0), and an OPT record announcing kMaxUdpPayload when the
// client sent one. When the result would exceed `size_limit` (the client's UDP payload size; use
// 65535 for TCP), the answer is header + question + OPT only, with TC set, so that the client
// asks again over TCP. `query.question` must equal the question the answer was cached under
// (should its wire size differ all the same, the answer is a SERVFAIL without records).
void render_cached_answer(const Query& query, const CachedAnswer& answer, std::uint32_t age_seconds,
                          std::size_t size_limit, std::vector<std::uint8_t>& out);

// An answer made of `addresses` alone, in the form render_cached_answer() takes: one record of
// `question_type` (A or AAAA) per address, owned by the question name (a compression pointer to
// it), each with `ttl`; the flags and question size of `original`, the answer it is cut from;
// no authority or additional records. An IPv4 address in an AAAA answer is written as
// ::ffff:a.b.c.d (it was folded from that form). Used when the firewall removes some addresses
// from an answer for one client (answer_filter.h): the CNAME records are left out, the client
// sees the name resolve to the remaining addresses directly.
[[nodiscard]] CachedAnswer address_only_answer(const CachedAnswer& original,
                                               std::uint16_t question_type,
                                               std::span<const IpAddress> addresses,
                                               std::uint32_t ttl);

// The UDP payload limit for answering `query`: its EDNS size capped at kMaxUdpPayload, or 512.
[[nodiscard]] inline std::size_t udp_size_limit(const Query& query) {
    if (!query.edns_udp_size) {
        return kClassicUdpPayload;
    }
    return *query.edns_udp_size < kMaxUdpPayload ? *query.edns_udp_size : kMaxUdpPayload;
}

} // namespace pw::dns
