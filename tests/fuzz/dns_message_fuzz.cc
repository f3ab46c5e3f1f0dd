// libFuzzer target for the DNS message code (src/dns/message.cc): every byte of a client query
// and of an upstream answer is hostile. Built with clang++-19 -fsanitize=fuzzer,address,undefined
// by tests/fuzz/CMakeLists.txt. Besides "no crash, no leak, no UB", it checks that the builders
// and parsers agree with each other:
//   - the input as a client query: a parsed question survives build_upstream_query() and
//     parse_query() unchanged, and our own synthesized answers to it analyze cleanly;
//   - the input as an upstream answer (to a fixed question, with the input's own ID): whatever
//     analyze_upstream_response() accepts renders, for any client shape and size limit, into an
//     answer within the limit that analyzes again to the same addresses and CNAME chain.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <vector>

#include "dns/message.h"

namespace {

using pw::dns::Query;
using pw::dns::Question;
using pw::dns::Rcode;

// A fuzz finding must stop the run with a message naming the broken promise.
void require(bool condition, const char* promise) {
    if (!condition) {
        // NOLINTNEXTLINE(modernize-use-std-print): libstdc++ 12 has no <print>
        std::fprintf(stderr, "dns_message_fuzz: invariant violated: %s\n", promise);
        std::abort();
    }
}

const Question kFixedQuestion{.name = "www.example.com", .type = 1, .qclass = 1};

// A client asking kFixedQuestion, and the bytes its Query points into.
struct Client {
    std::vector<std::uint8_t> bytes;
    Query query;
};

Client make_client(std::vector<std::uint8_t> bytes) {
    Client client{.bytes = std::move(bytes), .query = {}};
    auto parsed = pw::dns::parse_query(client.bytes);
    require(parsed.has_value(), "our own upstream query parses as a client query");
    client.query = std::move(*parsed);
    return client;
}

// Three client shapes: with EDNS, without, and with the name in another case.
const std::array<Client, 3>& clients() {
    static const std::array<Client, 3> kClients = [] {
        std::vector<std::uint8_t> edns = pw::dns::build_upstream_query(0x1111, kFixedQuestion);
        std::vector<std::uint8_t> classic(edns.begin(), edns.end() - 11); // without the OPT
        classic[11] = 0;                                                  // ARCOUNT
        classic[1] = 0x22;
        std::vector<std::uint8_t> shouting = classic;
        shouting[1] = 0x33;
        shouting[13] = 'W'; // "WWW.example.com"
        shouting[14] = 'W';
        return std::array<Client, 3>{make_client(std::move(edns)), make_client(std::move(classic)),
                                     make_client(std::move(shouting))};
    }();
    return kClients;
}

void check_query(std::span<const std::uint8_t> bytes, const Query& query) {
    require(query.question_wire.data() == bytes.data() + 12, "question_wire follows the header");
    require(query.question_wire.size() <= bytes.size() - 12, "question_wire within the message");
    for (const char character : query.question.name) {
        const bool allowed = (character >= 'a' && character <= 'z') ||
                             (character >= '0' && character <= '9') || character == '-' ||
                             character == '_' || character == '.' || character == '\\';
        require(allowed, "question names are lower case letters, digits, - _ . and escapes");
    }
    require(!query.edns_udp_size || *query.edns_udp_size >= 512, "EDNS payload at least 512");

    const auto again = pw::dns::parse_query(pw::dns::build_upstream_query(7, query.question));
    require(again.has_value() && again->question == query.question,
            "build_upstream_query() and parse_query() round-trip the question");

    const std::array<pw::dns::SyntheticRecord, 2> records = {{
        {.type = 1, .ttl = 60, .rdata = {0, 0, 0, 17}},
        {.type = 28, .ttl = 60, .rdata = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x17}},
    }};
    const auto blocked = pw::dns::synthesize_response(query, Rcode::NoError, records);
    const auto analyzed = pw::dns::analyze_upstream_response(blocked, query.question, query.id);
    require(analyzed.has_value() && analyzed->addresses.size() == 2,
            "a synthesized answer analyzes to its own addresses");
    const auto nxdomain = pw::dns::synthesize_response(query, Rcode::NxDomain);
    const auto negative = pw::dns::analyze_upstream_response(nxdomain, query.question, query.id);
    require(negative.has_value() && negative->rcode == Rcode::NxDomain,
            "a synthesized NXDOMAIN analyzes as NXDOMAIN");

    // The same bytes as an answer to the question they ask (QR set), rendered back to the asker.
    std::vector<std::uint8_t> as_response(bytes.begin(), bytes.end());
    as_response[2] |= 0x80U;
    const auto answer = pw::dns::analyze_upstream_response(as_response, query.question, query.id);
    if (answer.has_value() && !answer->truncated) {
        std::vector<std::uint8_t> out;
        pw::dns::render_cached_answer(query, answer->cached, 1, pw::dns::udp_size_limit(query),
                                      out);
        require(out.size() <= pw::dns::udp_size_limit(query), "a rendered answer fits the limit");
    }
}

void check_upstream_answer(std::span<const std::uint8_t> bytes) {
    // The input's own ID, so that the fuzzer need not guess it.
    const auto id = static_cast<std::uint16_t>(bytes.size() >= 2 ? (bytes[0] << 8U) | bytes[1] : 0);
    const auto answer = pw::dns::analyze_upstream_response(bytes, kFixedQuestion, id);
    if (!answer.has_value()) {
        require(!answer.error().what.empty(), "errors say what is wrong");
        return;
    }
    if (answer->truncated) {
        require(answer->cached.records.empty(), "a truncated answer caches nothing");
        return;
    }
    for (const auto& field : answer->cached.ttl_fields) {
        require(field.offset + 4 <= answer->cached.records.size(), "TTL fields inside the records");
        require(field.ttl <= 0x7fffffffU, "TTLs with the top bit set are read as 0");
    }
    const std::uint32_t age = bytes.size() >= 4 ? bytes[2] * 7U + bytes[3] : 0;
    std::vector<std::uint8_t> out;
    for (const Client& client : clients()) {
        for (const std::size_t limit : {std::size_t{512}, std::size_t{1232}, std::size_t{65535}}) {
            pw::dns::render_cached_answer(client.query, answer->cached, age, limit, out);
            require(out.size() <= limit, "a rendered answer fits the limit");
            const auto again =
                pw::dns::analyze_upstream_response(out, kFixedQuestion, client.query.id);
            require(again.has_value(), "a rendered answer analyzes again");
            if (!again->truncated) {
                require(again->rcode == answer->rcode, "rendering keeps the rcode");
                require(again->addresses == answer->addresses, "rendering keeps the addresses");
                require(again->cname_chain == answer->cname_chain, "rendering keeps the chain");
            }
        }
    }
}

} // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> bytes(data, size);

    const auto query = pw::dns::parse_query(bytes);
    const auto formerr = pw::dns::error_response(bytes, Rcode::FormErr);
    require(formerr.size() == (size < 12 ? 0U : 12U), "an error response is a bare header");
    if (query.has_value()) {
        check_query(bytes, *query);
    } else {
        require(!query.error().reason.empty(), "rejections say why");
        require(query.error().answerable || size < 12 || (data[2] & 0x80U) != 0,
                "only headerless messages and responses go unanswered");
    }

    check_upstream_answer(bytes);
    return 0;
}
