#include "dns/message.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <ldns/ldns.h>

namespace pw::dns {
namespace {

using Bytes = std::vector<std::uint8_t>;

// ---------------------------------------------------------------------------------------------
// Hand-made wire bytes, for the cases ldns would not produce.

class Wire {
public:
    Wire& u8(std::uint8_t value) {
        bytes_.push_back(value);
        return *this;
    }
    Wire& u16(std::uint16_t value) {
        bytes_.push_back(static_cast<std::uint8_t>(value >> 8U));
        bytes_.push_back(static_cast<std::uint8_t>(value & 0xffU));
        return *this;
    }
    Wire& u32(std::uint32_t value) {
        u16(static_cast<std::uint16_t>(value >> 16U));
        return u16(static_cast<std::uint16_t>(value & 0xffffU));
    }
    Wire& raw(std::span<const std::uint8_t> data) {
        bytes_.insert(bytes_.end(), data.begin(), data.end());
        return *this;
    }
    Wire& label(std::string_view text) {
        u8(static_cast<std::uint8_t>(text.size()));
        bytes_.insert(bytes_.end(), text.begin(), text.end());
        return *this;
    }
    // "www.example.com" as labels and the root; no escapes.
    Wire& name(std::string_view dotted) {
        while (!dotted.empty()) {
            const auto dot = dotted.find('.');
            label(dotted.substr(0, dot));
            dotted = dot == std::string_view::npos ? std::string_view{} : dotted.substr(dot + 1);
        }
        return u8(0);
    }
    Wire& header(std::uint16_t id, std::uint16_t flags, std::uint16_t questions,
                 std::uint16_t answers, std::uint16_t authorities, std::uint16_t additionals) {
        return u16(id).u16(flags).u16(questions).u16(answers).u16(authorities).u16(additionals);
    }
    // An OPT record: root owner, UDP size, extended rcode/version/flags as a TTL, options.
    Wire& opt(std::uint16_t udp_size, std::uint32_t ttl = 0,
              std::span<const std::uint8_t> data = {}) {
        u8(0).u16(type::kOpt).u16(udp_size).u32(ttl).u16(static_cast<std::uint16_t>(data.size()));
        return raw(data);
    }
    [[nodiscard]] const Bytes& bytes() const { return bytes_; }

private:
    Bytes bytes_;
};

constexpr std::uint16_t kRd = 0x0100;

Bytes simple_query(std::string_view name, std::uint16_t record_type = type::kA,
                   std::optional<std::uint16_t> edns = std::nullopt, std::uint16_t id = 0x1234) {
    Wire wire;
    wire.header(id, kRd, 1, 0, 0, edns ? 1 : 0).name(name).u16(record_type).u16(kClassIn);
    if (edns) {
        wire.opt(*edns);
    }
    return wire.bytes();
}

Query parsed(const Bytes& bytes) {
    auto query = parse_query(bytes);
    EXPECT_TRUE(query.has_value()) << query.error().reason;
    return query.value_or(Query{});
}

// A parsed query with the bytes its question_wire points into (a moved vector keeps its buffer).
struct ClientQuery {
    Bytes bytes;
    Query query;
};

ClientQuery client_query(Bytes bytes) {
    ClientQuery client{.bytes = std::move(bytes), .query = {}};
    client.query = parsed(client.bytes);
    return client;
}

// ---------------------------------------------------------------------------------------------
// ldns, to build upstream answers and to check what we send.

struct LdnsPacketDeleter {
    void operator()(ldns_pkt* packet) const noexcept { ldns_pkt_free(packet); }
};
using LdnsPacket = std::unique_ptr<ldns_pkt, LdnsPacketDeleter>;

LdnsPacket ldns_parse(const Bytes& bytes) {
    ldns_pkt* packet = nullptr;
    const ldns_status status = ldns_wire2pkt(&packet, bytes.data(), bytes.size());
    EXPECT_EQ(status, LDNS_STATUS_OK) << ldns_get_errorstr_by_id(status);
    return LdnsPacket(packet);
}

std::string ldns_text(char* text) {
    std::string copy = text == nullptr ? "" : text;
    std::free(text); // NOLINT(cppcoreguidelines-no-malloc): ldns allocates with malloc
    return copy;
}

// "www.example.com. 300 IN A 192.0.2.1" per record, in section order.
std::vector<std::string> section_text(const ldns_rr_list* list) {
    std::vector<std::string> records;
    for (std::size_t index = 0; list != nullptr && index < ldns_rr_list_rr_count(list); ++index) {
        std::string text = ldns_text(ldns_rr2str(ldns_rr_list_rr(list, index)));
        std::ranges::replace(text, '\t', ' ');
        while (!text.empty() && text.back() == '\n') {
            text.pop_back();
        }
        records.push_back(text);
    }
    return records;
}

// An upstream response built with ldns (and compressed by it, as real servers do).
class Response {
public:
    Response(std::string_view name, ldns_rr_type question_type, std::uint16_t id = 4242)
        : packet_(ldns_pkt_query_new(ldns_dname_new_frm_str(std::string(name).c_str()),
                                     question_type, LDNS_RR_CLASS_IN, LDNS_RD)) {
        ldns_pkt_set_id(packet_.get(), id);
        ldns_pkt_set_qr(packet_.get(), true);
        ldns_pkt_set_ra(packet_.get(), true);
    }
    Response& answer(std::string_view record) { return push(LDNS_SECTION_ANSWER, record); }
    Response& authority(std::string_view record) { return push(LDNS_SECTION_AUTHORITY, record); }
    Response& additional(std::string_view record) { return push(LDNS_SECTION_ADDITIONAL, record); }
    Response& rcode(ldns_pkt_rcode rcode) {
        ldns_pkt_set_rcode(packet_.get(), static_cast<std::uint8_t>(rcode));
        return *this;
    }
    Response& edns(std::uint16_t udp_size) {
        ldns_pkt_set_edns_udp_size(packet_.get(), udp_size);
        return *this;
    }
    Response& truncated() {
        ldns_pkt_set_tc(packet_.get(), true);
        return *this;
    }
    [[nodiscard]] Bytes wire() const {
        std::uint8_t* data = nullptr;
        std::size_t size = 0;
        EXPECT_EQ(ldns_pkt2wire(&data, packet_.get(), &size), LDNS_STATUS_OK);
        Bytes bytes(data, data + size);
        std::free(data); // NOLINT(cppcoreguidelines-no-malloc): ldns allocates with malloc
        return bytes;
    }

private:
    Response& push(ldns_pkt_section section, std::string_view text) {
        ldns_rr* record = nullptr;
        const ldns_status status =
            ldns_rr_new_frm_str(&record, std::string(text).c_str(), 0, nullptr, nullptr);
        EXPECT_EQ(status, LDNS_STATUS_OK) << text << ": " << ldns_get_errorstr_by_id(status);
        if (record != nullptr) {
            ldns_pkt_push_rr(packet_.get(), section, record);
        }
        return *this;
    }

    LdnsPacket packet_;
};

const Question kWwwA{.name = "www.example.com", .type = type::kA, .qclass = kClassIn};
const Question kWwwAaaa{.name = "www.example.com", .type = type::kAaaa, .qclass = kClassIn};
constexpr std::uint16_t kUpstreamId = 4242;

UpstreamAnswer analyzed(const Bytes& response, const Question& question = kWwwA) {
    auto answer = analyze_upstream_response(response, question, kUpstreamId);
    EXPECT_TRUE(answer.has_value()) << answer.error().what;
    return answer.value_or(UpstreamAnswer{});
}

std::string analyze_error(const Bytes& response, const Question& question = kWwwA,
                          std::uint16_t id = kUpstreamId) {
    auto answer = analyze_upstream_response(response, question, id);
    EXPECT_FALSE(answer.has_value());
    return answer.has_value() ? "" : answer.error().what;
}

IpAddress ip(std::string_view text) {
    return IpAddress::parse(text).value();
}

// The TTLs found at the offsets of `cached.ttl_fields`, in order.
std::vector<std::uint32_t> ttls_at_offsets(const CachedAnswer& cached) {
    std::vector<std::uint32_t> ttls;
    for (const CachedAnswer::TtlField& field : cached.ttl_fields) {
        if (field.offset + 4 > cached.records.size()) {
            ADD_FAILURE() << "TTL offset " << field.offset << " outside the records";
            continue;
        }
        const std::span<const std::uint8_t> at = std::span(cached.records).subspan(field.offset, 4);
        ttls.push_back((std::uint32_t{at[0]} << 24U) | (std::uint32_t{at[1]} << 16U) |
                       (std::uint32_t{at[2]} << 8U) | at[3]);
    }
    return ttls;
}

std::vector<std::uint32_t> ttls_noted(const CachedAnswer& cached) {
    std::vector<std::uint32_t> ttls;
    ttls.reserve(cached.ttl_fields.size());
    for (const CachedAnswer::TtlField& field : cached.ttl_fields) {
        ttls.push_back(field.ttl);
    }
    return ttls;
}

// =============================================================================================
// Names of types and rcodes.

TEST(TypeName, KnownTypesByNameOthersInRfc3597Form) {
    EXPECT_EQ(type_name(type::kA), "A");
    EXPECT_EQ(type_name(type::kAaaa), "AAAA");
    EXPECT_EQ(type_name(type::kHttps), "HTTPS");
    EXPECT_EQ(type_name(1234), "TYPE1234");
    EXPECT_EQ(rcode_name(Rcode::NxDomain), "NXDOMAIN");
    EXPECT_EQ(rcode_name(Rcode::Refused), "REFUSED");
}

// =============================================================================================
// parse_query

TEST(ParseQuery, AcceptsAPlainAQuery) {
    const Bytes bytes = simple_query("www.example.com", type::kA, std::nullopt, 0xbeef);
    const Query query = parsed(bytes);
    EXPECT_EQ(query.id, 0xbeef);
    EXPECT_TRUE(query.recursion_desired);
    EXPECT_FALSE(query.checking_disabled);
    EXPECT_EQ(query.question, (Question{.name = "www.example.com", .type = type::kA}));
    EXPECT_FALSE(query.edns_udp_size.has_value());
    ASSERT_EQ(query.question_wire.size(), bytes.size() - 12);
    EXPECT_EQ(query.question_wire.data(), bytes.data() + 12);
    EXPECT_EQ(udp_size_limit(query), 512U);
}

TEST(ParseQuery, AcceptsAnAaaaQueryWithEdnsAndKeepsItsPayloadSize) {
    const ClientQuery query_client = client_query(simple_query("example.org", type::kAaaa, 4096));
    const Query& query = query_client.query;
    EXPECT_EQ(query.question.type, type::kAaaa);
    EXPECT_EQ(query.edns_udp_size, 4096);
    EXPECT_EQ(udp_size_limit(query), kMaxUdpPayload);
    // A payload size below 512 counts as 512 (RFC 6891 6.2.5).
    EXPECT_EQ(parsed(simple_query("example.org", type::kA, 100)).edns_udp_size, 512);
    EXPECT_EQ(udp_size_limit(parsed(simple_query("example.org", type::kA, 900))), 900U);
}

TEST(ParseQuery, AcceptsEdnsOptionsAndTheDoAndCdBits) {
    const std::vector<std::uint8_t> cookie = {0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8};
    Wire wire;
    wire.header(7, kRd | 0x0010, 1, 0, 0, 1).name("example.net").u16(type::kA).u16(kClassIn);
    wire.opt(1232, 0x00008000, cookie);
    const Query query = parsed(wire.bytes());
    EXPECT_TRUE(query.checking_disabled);
    EXPECT_EQ(query.edns_udp_size, 1232);
}

TEST(ParseQuery, LowerCasesTheNameButKeepsTheClientsBytes) {
    const Bytes bytes = simple_query("WwW.ExAmPlE.CoM");
    const Query query = parsed(bytes);
    EXPECT_EQ(query.question.name, "www.example.com");
    EXPECT_TRUE(std::ranges::equal(query.question_wire, std::span(bytes).subspan(12)));
}

TEST(ParseQuery, TheRootNameIsEmpty) {
    const ClientQuery query_client = client_query(simple_query("", type::kNs));
    const Query& query = query_client.query;
    EXPECT_EQ(query.question.name, "");
    EXPECT_EQ(query.question.type, type::kNs);
    EXPECT_EQ(query.question_wire.size(), 5U);
}

TEST(ParseQuery, EscapesEveryByteOutsideLettersDigitsHyphenAndUnderscore) {
    Wire wire;
    wire.header(1, 0, 1, 0, 0, 0);
    wire.label("a.b").label("x y\\").label("_srv-1").u8(3).u8(0).u8(0xff).u8('Z').u8(0);
    wire.u16(type::kSrv).u16(kClassIn);
    EXPECT_EQ(parsed(wire.bytes()).question.name, "a\\046b.x\\032y\\092._srv-1.\\000\\255z");
}

TEST(ParseQuery, AcceptsTheLongestLabelAndTheLongestName) {
    const std::string label63(63, 'a');
    EXPECT_EQ(parsed(simple_query(label63 + ".example")).question.name, label63 + ".example");
    // 3 labels of 63 and one of 61: 4 * 1 + 3 * 63 + 61 + 1 = 255 bytes.
    const std::string longest =
        label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
    EXPECT_EQ(parsed(simple_query(longest)).question.name, longest);
}

// Rejected with an answer carrying `rcode`, for a reason that mentions `reason_part`.
void expect_rejected(const Bytes& bytes, Rcode rcode, std::string_view reason_part) {
    const auto query = parse_query(bytes);
    ASSERT_FALSE(query.has_value()) << "accepted: " << query->question.name;
    EXPECT_TRUE(query.error().answerable) << query.error().reason;
    EXPECT_EQ(query.error().rcode, rcode) << query.error().reason;
    EXPECT_NE(query.error().reason.find(reason_part), std::string::npos) << query.error().reason;
}

// Rejected without an answer.
void expect_dropped(const Bytes& bytes, std::string_view reason_part) {
    const auto query = parse_query(bytes);
    ASSERT_FALSE(query.has_value()) << "accepted: " << query->question.name;
    EXPECT_FALSE(query.error().answerable) << query.error().reason;
    EXPECT_NE(query.error().reason.find(reason_part), std::string::npos) << query.error().reason;
}

TEST(ParseQuery, DropsWhatIsNotEvenAHeaderAndResponses) {
    expect_dropped({}, "header");
    expect_dropped(Bytes(11, 0), "header");
    Wire response;
    response.header(1, 0x8000 | kRd, 1, 0, 0, 0).name("example.com").u16(1).u16(1);
    expect_dropped(response.bytes(), "QR");
}

TEST(ParseQuery, OtherOpcodesAreNotImplemented) {
    Wire notify;
    notify.header(1, 4U << 11U, 1, 0, 0, 0).name("example.com").u16(type::kSoa).u16(1);
    expect_rejected(notify.bytes(), Rcode::NotImp, "opcode 4");
}

TEST(ParseQuery, QuestionCountsOtherThanOneAreRefusedOrFormErr) {
    Wire none;
    none.header(1, kRd, 0, 0, 0, 0);
    expect_rejected(none.bytes(), Rcode::FormErr, "no question");
    Wire two;
    two.header(1, kRd, 2, 0, 0, 0).name("a.example").u16(1).u16(1).name("b.example").u16(1).u16(1);
    expect_rejected(two.bytes(), Rcode::Refused, "2 questions");
}

TEST(ParseQuery, RecordsInAnswerOrAuthorityAreFormErr) {
    for (const auto& [answers, authorities] : {std::pair{1, 0}, std::pair{0, 1}}) {
        Wire wire;
        wire.header(1, kRd, 1, static_cast<std::uint16_t>(answers),
                    static_cast<std::uint16_t>(authorities), 0);
        wire.name("example.com").u16(1).u16(1);
        wire.name("example.com").u16(1).u16(1).u32(60).u16(4).u32(0x0a000001);
        expect_rejected(wire.bytes(), Rcode::FormErr, "answer or authority");
    }
}

TEST(ParseQuery, OnlyOneAdditionalRecordAndOnlyAnOptForTheRoot) {
    Wire two;
    two.header(1, kRd, 1, 0, 0, 2).name("example.com").u16(1).u16(1).opt(1232).opt(1232);
    expect_rejected(two.bytes(), Rcode::FormErr, "more than one additional");

    Wire not_root;
    not_root.header(1, kRd, 1, 0, 0, 1).name("example.com").u16(1).u16(1);
    not_root.name("x").u16(type::kOpt).u16(1232).u32(0).u16(0);
    expect_rejected(not_root.bytes(), Rcode::FormErr, "root");

    Wire not_opt;
    not_opt.header(1, kRd, 1, 0, 0, 1).name("example.com").u16(1).u16(1);
    not_opt.u8(0).u16(type::kTxt).u16(1).u32(0).u16(0);
    expect_rejected(not_opt.bytes(), Rcode::FormErr, "TXT, not OPT");
}

TEST(ParseQuery, BrokenOptRecordsAreFormErr) {
    Wire version1;
    version1.header(1, kRd, 1, 0, 0, 1).name("example.com").u16(1).u16(1).opt(1232, 0x00010000);
    expect_rejected(version1.bytes(), Rcode::FormErr, "EDNS version 1");

    const std::vector<std::uint8_t> short_option = {0, 10, 0, 8, 1, 2, 3};
    Wire bad_option;
    bad_option.header(1, kRd, 1, 0, 0, 1).name("example.com").u16(1).u16(1);
    bad_option.opt(1232, 0, short_option);
    expect_rejected(bad_option.bytes(), Rcode::FormErr, "malformed option");

    Wire past_end;
    past_end.header(1, kRd, 1, 0, 0, 1).name("example.com").u16(1).u16(1);
    past_end.u8(0).u16(type::kOpt).u16(1232).u32(0).u16(20).u32(0);
    expect_rejected(past_end.bytes(), Rcode::FormErr, "past the end");
}

TEST(ParseQuery, TrailingBytesAreFormErr) {
    Bytes bytes = simple_query("example.com");
    bytes.push_back(0);
    expect_rejected(bytes, Rcode::FormErr, "1 bytes after the last record");
    Bytes with_opt = simple_query("example.com", type::kA, 1232);
    with_opt.insert(with_opt.end(), {1, 2, 3});
    expect_rejected(with_opt, Rcode::FormErr, "3 bytes after");
}

TEST(ParseQuery, OverlongLabelsAndNamesAreFormErr) {
    expect_rejected(simple_query(std::string(64, 'a') + ".example"), Rcode::FormErr,
                    "label longer than 63");
    const std::string label63(63, 'a');
    // 4 * 64 + 1 = 257 bytes.
    expect_rejected(simple_query(label63 + "." + label63 + "." + label63 + "." + label63),
                    Rcode::FormErr, "longer than 255");
    // 255 would fit, 256 does not: three 63s and a 62.
    expect_rejected(
        simple_query(label63 + "." + label63 + "." + label63 + "." + std::string(62, 'b')),
        Rcode::FormErr, "longer than 255");
}

TEST(ParseQuery, CompressionPointersAndExtendedLabelsAreRefusedInTheQuestion) {
    Wire pointer;
    pointer.header(1, kRd, 1, 0, 0, 0).label("www").u8(0xc0).u8(12).u16(1).u16(1);
    expect_rejected(pointer.bytes(), Rcode::FormErr, "compression pointer");
    Wire extended;
    extended.header(1, kRd, 1, 0, 0, 0).u8(0x41).u8(0).u16(1).u16(1);
    expect_rejected(extended.bytes(), Rcode::FormErr, "label longer than 63");
}

TEST(ParseQuery, ClassesOtherThanInAreRefusedAfterTheFormatIsChecked) {
    Wire chaos;
    chaos.header(1, kRd, 1, 0, 0, 0).name("version.bind").u16(type::kTxt).u16(3);
    expect_rejected(chaos.bytes(), Rcode::Refused, "class 3");
    Bytes broken = chaos.bytes();
    broken.push_back(0);
    expect_rejected(broken, Rcode::FormErr, "after the last record");
}

TEST(ParseQuery, EveryPrefixOfAValidQueryIsRejectedSafely) {
    const std::vector<std::uint8_t> cookie = {0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8};
    Wire wire;
    wire.header(9, kRd, 1, 0, 0, 1).name("www.example.com").u16(type::kAaaa).u16(kClassIn);
    wire.opt(1232, 0, cookie);
    const Bytes& full = wire.bytes();
    ASSERT_TRUE(parse_query(full).has_value());
    for (std::size_t length = 0; length < full.size(); ++length) {
        // A copy of exactly `length` bytes, so that ASan sees any read past the end.
        const Bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(length));
        SCOPED_TRACE(length);
        if (length < 12) {
            expect_dropped(prefix, "header");
        } else {
            expect_rejected(prefix, Rcode::FormErr, "");
        }
    }
}

// =============================================================================================
// error_response

TEST(ErrorResponse, IsAHeaderWithTheClientsIdOpcodeAndRd) {
    Wire notify;
    notify.header(0xabcd, (4U << 11U) | kRd, 1, 0, 0, 0).name("example.com").u16(6).u16(1);
    const Bytes response = error_response(notify.bytes(), Rcode::NotImp);
    ASSERT_EQ(response.size(), 12U);
    const LdnsPacket packet = ldns_parse(response);
    ASSERT_TRUE(packet);
    EXPECT_EQ(ldns_pkt_id(packet.get()), 0xabcd);
    EXPECT_TRUE(ldns_pkt_qr(packet.get()));
    EXPECT_TRUE(ldns_pkt_rd(packet.get()));
    EXPECT_TRUE(ldns_pkt_ra(packet.get()));
    EXPECT_EQ(ldns_pkt_get_opcode(packet.get()), LDNS_PACKET_NOTIFY);
    EXPECT_EQ(ldns_pkt_get_rcode(packet.get()), LDNS_RCODE_NOTIMPL);
    EXPECT_EQ(ldns_pkt_qdcount(packet.get()), 0);

    Wire no_rd;
    no_rd.header(1, 0, 0, 0, 0, 0);
    const Bytes formerr = error_response(no_rd.bytes(), Rcode::FormErr);
    ASSERT_EQ(formerr.size(), 12U);
    EXPECT_EQ(formerr[2], 0x80); // QR only: no RD
    EXPECT_EQ(formerr[3], 0x81); // RA, FORMERR
}

TEST(ErrorResponse, NothingForLessThanAHeader) {
    EXPECT_TRUE(error_response(Bytes(11, 0), Rcode::FormErr).empty());
}

// =============================================================================================
// synthesize_response

TEST(SynthesizeResponse, AnswersWithOurRecordsUnderTheQuestionName) {
    const Bytes bytes = simple_query("Blocked.Example", type::kA, 4096, 0x5555);
    Query query = parsed(bytes);
    const std::vector<SyntheticRecord> records = {
        {.type = type::kA, .ttl = 60, .rdata = {0, 0, 0, 17}},
        {.type = type::kAaaa,
         .ttl = 30,
         .rdata = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x17}},
    };
    const Bytes response = synthesize_response(query, Rcode::NoError, records);
    const LdnsPacket packet = ldns_parse(response);
    ASSERT_TRUE(packet);
    EXPECT_EQ(ldns_pkt_id(packet.get()), 0x5555);
    EXPECT_TRUE(ldns_pkt_qr(packet.get()));
    EXPECT_TRUE(ldns_pkt_rd(packet.get()));
    EXPECT_TRUE(ldns_pkt_ra(packet.get()));
    EXPECT_FALSE(ldns_pkt_aa(packet.get()));
    EXPECT_EQ(ldns_pkt_get_rcode(packet.get()), LDNS_RCODE_NOERROR);
    EXPECT_EQ(section_text(ldns_pkt_question(packet.get())),
              std::vector<std::string>{"Blocked.Example. IN A"});
    EXPECT_EQ(section_text(ldns_pkt_answer(packet.get())),
              (std::vector<std::string>{"Blocked.Example. 60 IN A 0.0.0.17",
                                        "Blocked.Example. 30 IN AAAA ::17"}));
    EXPECT_TRUE(ldns_pkt_edns(packet.get()));
    EXPECT_EQ(ldns_pkt_edns_udp_size(packet.get()), kMaxUdpPayload);
    // The question bytes are the client's, byte for byte.
    EXPECT_TRUE(std::ranges::equal(std::span(response).subspan(12, query.question_wire.size()),
                                   query.question_wire));
}

TEST(SynthesizeResponse, NxDomainWithoutEdnsEchoesCd) {
    Wire wire;
    wire.header(3, 0x0010, 1, 0, 0, 0).name("use-application-dns.net").u16(1).u16(1);
    const Query query = parsed(wire.bytes());
    const Bytes response = synthesize_response(query, Rcode::NxDomain);
    const LdnsPacket packet = ldns_parse(response);
    ASSERT_TRUE(packet);
    EXPECT_EQ(ldns_pkt_get_rcode(packet.get()), LDNS_RCODE_NXDOMAIN);
    EXPECT_FALSE(ldns_pkt_rd(packet.get()));
    EXPECT_TRUE(ldns_pkt_cd(packet.get()));
    EXPECT_FALSE(ldns_pkt_edns(packet.get()));
    EXPECT_EQ(ldns_pkt_ancount(packet.get()), 0);
    EXPECT_EQ(response.size(), wire.bytes().size());
}

// =============================================================================================
// build_upstream_query

TEST(BuildUpstreamQuery, AsksRecursivelyInLowerCaseWithEdnsWithoutDo) {
    const Bytes query =
        build_upstream_query(777, Question{.name = "www.example.com", .type = type::kAaaa});
    const LdnsPacket packet = ldns_parse(query);
    ASSERT_TRUE(packet);
    EXPECT_EQ(ldns_pkt_id(packet.get()), 777);
    EXPECT_FALSE(ldns_pkt_qr(packet.get()));
    EXPECT_TRUE(ldns_pkt_rd(packet.get()));
    EXPECT_EQ(section_text(ldns_pkt_question(packet.get())),
              std::vector<std::string>{"www.example.com. IN AAAA"});
    EXPECT_TRUE(ldns_pkt_edns(packet.get()));
    EXPECT_EQ(ldns_pkt_edns_udp_size(packet.get()), kMaxUdpPayload);
    EXPECT_FALSE(ldns_pkt_edns_do(packet.get()));
}

void expect_round_trip(std::string_view name) {
    const Question question{.name = std::string(name), .type = type::kTxt};
    const auto query = parse_query(build_upstream_query(1, question));
    ASSERT_TRUE(query.has_value()) << name << ": " << query.error().reason;
    EXPECT_EQ(query->question, question);
    EXPECT_EQ(query->edns_udp_size, kMaxUdpPayload);
}

TEST(BuildUpstreamQuery, RoundTripsThroughParseQueryIncludingEscapes) {
    expect_round_trip("");
    expect_round_trip("example");
    expect_round_trip("www.example.com");
    expect_round_trip(R"(a\046b.x\032y\092._srv-1.\000\255z)");
    // Upper case and a final dot are accepted and normalized.
    const auto query = parse_query(build_upstream_query(1, Question{.name = "WWW.Example.COM."}));
    ASSERT_TRUE(query.has_value());
    EXPECT_EQ(query->question.name, "www.example.com");
}

TEST(BuildUpstreamQuery, NamesThatAreNotNamesGiveNothing) {
    for (const std::string_view name : {"a..b", ".a", "a\\", "a\\999"}) {
        EXPECT_TRUE(build_upstream_query(1, Question{.name = std::string(name)}).empty()) << name;
    }
    EXPECT_TRUE(build_upstream_query(1, Question{.name = std::string(64, 'a')}).empty());
    const std::string label63(63, 'a');
    EXPECT_TRUE(build_upstream_query(
                    1, Question{.name = label63 + "." + label63 + "." + label63 + "." + label63})
                    .empty());
}

// =============================================================================================
// analyze_upstream_response

TEST(AnalyzeUpstreamResponse, CollectsAddressesAndTheLowestTtl) {
    const Bytes wire = Response("www.example.com", LDNS_RR_TYPE_A)
                           .answer("www.example.com. 300 IN A 192.0.2.1")
                           .answer("www.example.com. 200 IN A 192.0.2.2")
                           .authority("example.com. 900 IN NS ns1.example.com.")
                           .additional("ns1.example.com. 900 IN A 192.0.2.53")
                           .wire();
    const UpstreamAnswer answer = analyzed(wire);
    EXPECT_EQ(answer.rcode, Rcode::NoError);
    EXPECT_FALSE(answer.truncated);
    EXPECT_EQ(answer.addresses, (std::vector{ip("192.0.2.1"), ip("192.0.2.2")}));
    EXPECT_TRUE(answer.cname_chain.empty());
    EXPECT_EQ(answer.ttl, 200U);
}

TEST(AnalyzeUpstreamResponse, DescribesTheRecordsAndTheirTtlsForTheCache) {
    const Bytes wire = Response("www.example.com", LDNS_RR_TYPE_A)
                           .answer("www.example.com. 300 IN A 192.0.2.1")
                           .answer("www.example.com. 200 IN A 192.0.2.2")
                           .authority("example.com. 900 IN NS ns1.example.com.")
                           .additional("ns1.example.com. 901 IN A 192.0.2.53")
                           .wire();
    const CachedAnswer cached = analyzed(wire).cached;
    EXPECT_EQ(cached.answer_count, 2);
    EXPECT_EQ(cached.authority_count, 1);
    EXPECT_EQ(cached.additional_count, 1);
    EXPECT_EQ(cached.question_size, 17 + 4);
    EXPECT_EQ(cached.records.size(), wire.size() - 12 - cached.question_size);
    EXPECT_EQ(cached.flags & 0x8000, 0x8000); // QR kept
    EXPECT_EQ(ttls_at_offsets(cached), (std::vector<std::uint32_t>{300, 200, 900, 901}));
    EXPECT_EQ(ttls_noted(cached), (std::vector<std::uint32_t>{300, 200, 900, 901}));
}

TEST(AnalyzeUpstreamResponse, AaaaAnswers) {
    const UpstreamAnswer answer = analyzed(Response("www.example.com", LDNS_RR_TYPE_AAAA)
                                               .answer("www.example.com. 60 IN AAAA 2001:db8::1")
                                               .wire(),
                                           kWwwAaaa);
    EXPECT_EQ(answer.addresses, std::vector{ip("2001:db8::1")});
    EXPECT_EQ(answer.ttl, 60U);
}

TEST(AnalyzeUpstreamResponse, FollowsTheCnameChainCaseInsensitively) {
    const UpstreamAnswer answer =
        analyzed(Response("WWW.example.COM", LDNS_RR_TYPE_A)
                     .answer("www.EXAMPLE.com. 600 IN CNAME Cdn.Example.Net.")
                     .answer("cdn.example.net. 120 IN CNAME edge.example.org.")
                     .answer("edge.example.org. 300 IN A 198.51.100.7")
                     .answer("other.example. 5 IN A 203.0.113.1")
                     .wire());
    EXPECT_EQ(answer.cname_chain,
              (std::vector<std::string>{"cdn.example.net", "edge.example.org"}));
    EXPECT_EQ(answer.addresses, std::vector{ip("198.51.100.7")});
    // The CNAMEs count, the record of an unrelated name does not.
    EXPECT_EQ(answer.ttl, 120U);
}

TEST(AnalyzeUpstreamResponse, ChainsInAnyOrder) {
    const UpstreamAnswer answer = analyzed(Response("www.example.com", LDNS_RR_TYPE_A)
                                               .answer("b.example. 50 IN A 192.0.2.9")
                                               .answer("a.example. 50 IN CNAME b.example.")
                                               .answer("www.example.com. 50 IN CNAME a.example.")
                                               .wire());
    EXPECT_EQ(answer.cname_chain, (std::vector<std::string>{"a.example", "b.example"}));
    EXPECT_EQ(answer.addresses, std::vector{ip("192.0.2.9")});
}

TEST(AnalyzeUpstreamResponse, CnameLoopsEndWithoutAddresses) {
    const UpstreamAnswer answer = analyzed(Response("www.example.com", LDNS_RR_TYPE_A)
                                               .answer("www.example.com. 60 IN CNAME a.example.")
                                               .answer("a.example. 30 IN CNAME b.example.")
                                               .answer("b.example. 90 IN CNAME a.example.")
                                               .answer("b.example. 90 IN A 192.0.2.1")
                                               .wire());
    EXPECT_EQ(answer.cname_chain, (std::vector<std::string>{"a.example", "b.example"}));
    EXPECT_TRUE(answer.addresses.empty());
    EXPECT_EQ(answer.ttl, 30U); // no SOA: the lowest TTL present
}

TEST(AnalyzeUpstreamResponse, ASelfLoopIsALoopToo) {
    const UpstreamAnswer answer =
        analyzed(Response("www.example.com", LDNS_RR_TYPE_A)
                     .answer("www.example.com. 60 IN CNAME www.example.com.")
                     .wire());
    EXPECT_TRUE(answer.cname_chain.empty());
    EXPECT_TRUE(answer.addresses.empty());
}

TEST(AnalyzeUpstreamResponse, ADanglingChainIsNodataWithTheSoaTtl) {
    const UpstreamAnswer answer =
        analyzed(Response("www.example.com", LDNS_RR_TYPE_A)
                     .answer("www.example.com. 3600 IN CNAME gone.example.net.")
                     .authority("example.net. 3600 IN SOA ns.example.net. host.example.net. 1 "
                                "7200 3600 1209600 300")
                     .wire());
    EXPECT_EQ(answer.cname_chain, std::vector<std::string>{"gone.example.net"});
    EXPECT_TRUE(answer.addresses.empty());
    EXPECT_EQ(answer.ttl, 300U);
}

TEST(AnalyzeUpstreamResponse, StopsAfterSixteenHops) {
    Response response("www.example.com", LDNS_RR_TYPE_A);
    response.answer("www.example.com. 60 IN CNAME c1.example.");
    for (int hop = 1; hop < 20; ++hop) {
        response.answer("c" + std::to_string(hop) + ".example. 60 IN CNAME c" +
                        std::to_string(hop + 1) + ".example.");
    }
    response.answer("c20.example. 60 IN A 192.0.2.20");
    const UpstreamAnswer answer = analyzed(response.wire());
    ASSERT_EQ(answer.cname_chain.size(), 16U);
    EXPECT_EQ(answer.cname_chain.back(), "c16.example");
    EXPECT_TRUE(answer.addresses.empty());

    Response short_chain("www.example.com", LDNS_RR_TYPE_A);
    short_chain.answer("www.example.com. 60 IN CNAME c1.example.");
    for (int hop = 1; hop < 16; ++hop) {
        short_chain.answer("c" + std::to_string(hop) + ".example. 60 IN CNAME c" +
                           std::to_string(hop + 1) + ".example.");
    }
    short_chain.answer("c16.example. 60 IN A 192.0.2.16");
    EXPECT_EQ(analyzed(short_chain.wire()).addresses, std::vector{ip("192.0.2.16")});
}

TEST(AnalyzeUpstreamResponse, NxDomainTakesTheSoaMinimumCappedByTheSoaTtl) {
    const UpstreamAnswer answer =
        analyzed(Response("www.example.com", LDNS_RR_TYPE_A)
                     .rcode(LDNS_RCODE_NXDOMAIN)
                     .authority("example.com. 3600 IN SOA ns.example.com. host.example.com. 1 "
                                "7200 3600 1209600 300")
                     .wire());
    EXPECT_EQ(answer.rcode, Rcode::NxDomain);
    EXPECT_TRUE(answer.addresses.empty());
    EXPECT_EQ(answer.ttl, 300U);
    EXPECT_EQ(answer.cached.answer_count, 0);
    EXPECT_EQ(answer.cached.authority_count, 1);

    const UpstreamAnswer capped =
        analyzed(Response("www.example.com", LDNS_RR_TYPE_A)
                     .rcode(LDNS_RCODE_NXDOMAIN)
                     .authority("example.com. 45 IN SOA ns.example.com. host.example.com. 1 "
                                "7200 3600 1209600 300")
                     .wire());
    EXPECT_EQ(capped.ttl, 45U);
}

TEST(AnalyzeUpstreamResponse, NxDomainWithoutSoaHasNoTtl) {
    const UpstreamAnswer answer =
        analyzed(Response("www.example.com", LDNS_RR_TYPE_A).rcode(LDNS_RCODE_NXDOMAIN).wire());
    EXPECT_EQ(answer.rcode, Rcode::NxDomain);
    EXPECT_FALSE(answer.ttl.has_value());
}

TEST(AnalyzeUpstreamResponse, NodataTakesTheSoaTtl) {
    const UpstreamAnswer answer =
        analyzed(Response("www.example.com", LDNS_RR_TYPE_AAAA)
                     .authority("example.com. 3600 IN SOA ns.example.com. host.example.com. 1 "
                                "7200 3600 1209600 120")
                     .wire(),
                 kWwwAaaa);
    EXPECT_EQ(answer.rcode, Rcode::NoError);
    EXPECT_TRUE(answer.addresses.empty());
    EXPECT_EQ(answer.ttl, 120U);
    EXPECT_EQ(answer.cached.answer_count, 0);
}

TEST(AnalyzeUpstreamResponse, OtherTypesCountTheirRecordsAtTheEndOfTheChain) {
    const Question mx{.name = "example.com", .type = type::kMx};
    const UpstreamAnswer answer =
        analyzed(Response("example.com", LDNS_RR_TYPE_MX)
                     .answer("example.com. 700 IN MX 10 mail.example.com.")
                     .additional("mail.example.com. 100 IN A 192.0.2.25")
                     .wire(),
                 mx);
    EXPECT_TRUE(answer.addresses.empty());
    EXPECT_EQ(answer.ttl, 700U);

    const Question cname{.name = "www.example.com", .type = type::kCname};
    const UpstreamAnswer direct = analyzed(Response("www.example.com", LDNS_RR_TYPE_CNAME)
                                               .answer("www.example.com. 80 IN CNAME cdn.example.")
                                               .wire(),
                                           cname);
    EXPECT_TRUE(direct.cname_chain.empty()); // the CNAME is the answer, not a way to one
    EXPECT_EQ(direct.ttl, 80U);
}

TEST(AnalyzeUpstreamResponse, TtlsWithTheTopBitSetCountAsZero) {
    const UpstreamAnswer answer = analyzed(Response("www.example.com", LDNS_RR_TYPE_A)
                                               .answer("www.example.com. 4294967295 IN A 192.0.2.1")
                                               .wire());
    EXPECT_EQ(answer.ttl, 0U);
    ASSERT_EQ(answer.cached.ttl_fields.size(), 1U);
    EXPECT_EQ(answer.cached.ttl_fields[0].ttl, 0U);
}

TEST(AnalyzeUpstreamResponse, TheUpstreamOptRecordIsDropped) {
    const Bytes wire = Response("www.example.com", LDNS_RR_TYPE_A)
                           .answer("www.example.com. 300 IN A 192.0.2.1")
                           .additional("ns1.example.com. 900 IN A 192.0.2.53")
                           .edns(1232)
                           .wire();
    const UpstreamAnswer answer = analyzed(wire);
    EXPECT_EQ(answer.cached.additional_count, 1);
    EXPECT_EQ(answer.cached.records.size(), wire.size() - 12 - answer.cached.question_size - 11);
    EXPECT_EQ(answer.cached.ttl_fields.size(), 2U);
}

TEST(AnalyzeUpstreamResponse, TruncatedAnswersSayTruncatedAndNothingElse) {
    const UpstreamAnswer answer = analyzed(Response("www.example.com", LDNS_RR_TYPE_A)
                                               .truncated()
                                               .answer("www.example.com. 300 IN A 192.0.2.1")
                                               .wire());
    EXPECT_TRUE(answer.truncated);
    EXPECT_TRUE(answer.addresses.empty());
    EXPECT_TRUE(answer.cached.records.empty());

    // Servers cut records off when they truncate; the header and question still count.
    Wire cut;
    cut.header(kUpstreamId, 0x8380, 1, 5, 0, 0).name("www.example.com").u16(1).u16(1);
    cut.u16(0xc00c).u16(1);
    EXPECT_TRUE(analyzed(cut.bytes()).truncated);
}

TEST(AnalyzeUpstreamResponse, RefusesAnswersToAnotherQuery) {
    const Bytes wire = Response("www.example.com", LDNS_RR_TYPE_A)
                           .answer("www.example.com. 300 IN A 192.0.2.1")
                           .wire();
    EXPECT_NE(analyze_error(wire, kWwwA, 4243).find("ID 4242 does not match query ID 4243"),
              std::string::npos);
    EXPECT_NE(analyze_error(wire, Question{.name = "www.example.org"}).find("not for"),
              std::string::npos);
    EXPECT_NE(analyze_error(wire, kWwwAaaa).find("not for"), std::string::npos);
    EXPECT_NE(analyze_error(wire, Question{.name = "www.example.com", .qclass = 3}).find("not for"),
              std::string::npos);

    Bytes query_bit_clear = wire;
    query_bit_clear[2] &= 0x7fU;
    EXPECT_NE(analyze_error(query_bit_clear).find("QR"), std::string::npos);

    Wire no_question;
    no_question.header(kUpstreamId, 0x8180, 0, 0, 0, 0);
    EXPECT_NE(analyze_error(no_question.bytes()).find("0 questions"), std::string::npos);
}

TEST(AnalyzeUpstreamResponse, RefusesRcodesWeDoNotKnowAndExtendedRcodes) {
    Wire yxdomain;
    yxdomain.header(kUpstreamId, 0x8186, 1, 0, 0, 0).name("www.example.com").u16(1).u16(1);
    EXPECT_NE(analyze_error(yxdomain.bytes()).find("rcode 6"), std::string::npos);

    Wire badvers;
    badvers.header(kUpstreamId, 0x8180, 1, 0, 0, 1).name("www.example.com").u16(1).u16(1);
    badvers.opt(1232, 0x01000000);
    EXPECT_NE(analyze_error(badvers.bytes()).find("extended rcode 1"), std::string::npos);
}

// Renders `answer` for a client asking `client_name` (A, with EDNS) and parses it back.
LdnsPacket render_and_parse(const CachedAnswer& answer, std::string_view client_name,
                            std::uint16_t client_id) {
    const ClientQuery client = client_query(simple_query(client_name, type::kA, 1232, client_id));
    std::vector<std::uint8_t> out;
    render_cached_answer(client.query, answer, 0, 65535, out);
    return ldns_parse(out);
}

TEST(AnalyzeUpstreamResponse, AnOptRecordInTheMiddleIsDroppedWithoutBreakingPointers) {
    Wire wire;
    wire.header(kUpstreamId, 0x8180, 1, 1, 0, 2).name("www.example.com").u16(1).u16(1);
    wire.u16(0xc00c).u16(1).u16(1).u32(60).u16(4).u32(0xc0000201);
    wire.opt(1232);
    // "ns" + a pointer to "example.com" in the question.
    wire.label("ns").u16(0xc010).u16(1).u16(1).u32(70).u16(4).u32(0xc0000202);
    const UpstreamAnswer answer = analyzed(wire.bytes());
    EXPECT_EQ(answer.addresses, std::vector{ip("192.0.2.1")});
    EXPECT_EQ(answer.cached.additional_count, 1);
    EXPECT_EQ(answer.cached.ttl_fields.size(), 2U);

    const LdnsPacket packet = render_and_parse(answer.cached, "www.example.com", 9);
    ASSERT_TRUE(packet);
    EXPECT_EQ(section_text(ldns_pkt_additional(packet.get())),
              std::vector<std::string>{"ns.example.com. 70 IN A 192.0.2.2"});
    EXPECT_TRUE(ldns_pkt_edns(packet.get()));
}

TEST(AnalyzeUpstreamResponse, CompressionPointersIntoTheHeaderDoNotSurviveCaching) {
    // The second byte of the upstream's ID (0x00) read as a name is the root; that of the
    // client's ID would not be.
    Wire wire;
    wire.header(0, 0x8180, 1, 2, 0, 0).name("www.example.com").u16(1).u16(1);
    wire.u16(0xc00c).u16(1).u16(1).u32(60).u16(4).u32(0xc0000201);
    wire.u16(0xc001).u16(type::kTxt).u16(1).u32(60).u16(3).u8(2).u8('h').u8('i');
    const auto answer = analyze_upstream_response(wire.bytes(), kWwwA, 0);
    ASSERT_TRUE(answer.has_value()) << answer.error().what;
    const LdnsPacket packet = render_and_parse(answer->cached, "www.example.com", 0x3f3f);
    ASSERT_TRUE(packet);
    EXPECT_EQ(
        section_text(ldns_pkt_answer(packet.get())),
        (std::vector<std::string>{"www.example.com. 60 IN A 192.0.2.1", ". 60 IN TXT \"hi\""}));
}

TEST(AnalyzeUpstreamResponse, RefusesOptRecordsWhereTheyDoNotBelong) {
    Wire in_answer;
    in_answer.header(kUpstreamId, 0x8180, 1, 1, 0, 0).name("www.example.com").u16(1).u16(1);
    in_answer.opt(1232);
    EXPECT_NE(analyze_error(in_answer.bytes()).find("outside the additional"), std::string::npos);

    Wire two;
    two.header(kUpstreamId, 0x8180, 1, 0, 0, 2).name("www.example.com").u16(1).u16(1);
    two.opt(1232).opt(1232);
    EXPECT_NE(analyze_error(two.bytes()).find("more than one OPT"), std::string::npos);
}

TEST(AnalyzeUpstreamResponse, RefusesTsigRecords) {
    // ldns keeps TSIG apart from the other records and would reorder them when re-encoding.
    Wire wire;
    wire.header(kUpstreamId, 0x8180, 1, 1, 0, 1).name("www.example.com").u16(1).u16(1);
    wire.u16(0xc00c).u16(1).u16(1).u32(60).u16(4).u32(0xc0000201);
    wire.name("key.example").u16(250).u16(255).u32(0).u16(0);
    EXPECT_NE(analyze_error(wire.bytes()).find("TSIG"), std::string::npos);
}

TEST(AnalyzeUpstreamResponse, EveryPrefixOfAResponseFailsSafely) {
    const Bytes full = Response("www.example.com", LDNS_RR_TYPE_A)
                           .answer("www.example.com. 60 IN CNAME cdn.example.net.")
                           .answer("cdn.example.net. 60 IN A 192.0.2.1")
                           .authority("example.net. 60 IN NS ns.example.net.")
                           .edns(1232)
                           .wire();
    ASSERT_TRUE(analyze_upstream_response(full, kWwwA, kUpstreamId).has_value());
    for (std::size_t length = 0; length < full.size(); ++length) {
        const Bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(length));
        const auto answer = analyze_upstream_response(prefix, kWwwA, kUpstreamId);
        EXPECT_FALSE(answer.has_value()) << "prefix of " << length << " bytes accepted";
    }
}

TEST(AnalyzeUpstreamResponse, SurvivesEveryByteFlipped) {
    const Bytes full = Response("www.example.com", LDNS_RR_TYPE_A)
                           .answer("www.example.com. 60 IN CNAME cdn.example.net.")
                           .answer("cdn.example.net. 60 IN A 192.0.2.1")
                           .authority(
                               "example.net. 60 IN SOA ns.example.net. h.example.net. 1 2 3 "
                               "4 5")
                           .edns(1232)
                           .wire();
    for (std::size_t index = 0; index < full.size(); ++index) {
        for (const std::uint8_t value : {0x00, 0x3f, 0xc0, 0xff}) {
            Bytes changed = full;
            changed[index] = value;
            const auto answer = analyze_upstream_response(changed, kWwwA, kUpstreamId);
            if (answer.has_value() && !answer->truncated) {
                // Whatever was accepted must be renderable.
                std::vector<std::uint8_t> out;
                const ClientQuery query_client = client_query(simple_query("www.example.com"));
                const Query& query = query_client.query;
                render_cached_answer(query, answer->cached, 1, 65535, out);
                EXPECT_GE(out.size(), 12U + query.question_wire.size());
            }
        }
    }
}

// =============================================================================================
// render_cached_answer

class RenderCachedAnswer : public ::testing::Test {
protected:
    // What the upstream said for www.example.com A, compressed by ldns.
    static UpstreamAnswer upstream_answer() {
        return analyzed(Response("www.example.com", LDNS_RR_TYPE_A)
                            .answer("www.example.com. 300 IN CNAME cdn.example.net.")
                            .answer("cdn.example.net. 60 IN A 192.0.2.1")
                            .authority("example.net. 900 IN NS ns.example.net.")
                            .additional("ns.example.net. 900 IN A 192.0.2.53")
                            .edns(4096)
                            .wire());
    }

    std::vector<std::uint8_t> out_;
};

TEST_F(RenderCachedAnswer, GivesTheClientItsIdFlagsAndQuestionWithAgedTtls) {
    const UpstreamAnswer answer = upstream_answer();
    Wire client;
    client.header(0x0bad, 0x0010, 1, 0, 0, 0).name("WWW.example.COM").u16(1).u16(1);
    const Query query = parsed(client.bytes());
    render_cached_answer(query, answer.cached, 100, udp_size_limit(query), out_);

    const LdnsPacket packet = ldns_parse(out_);
    ASSERT_TRUE(packet);
    EXPECT_EQ(ldns_pkt_id(packet.get()), 0x0bad);
    EXPECT_TRUE(ldns_pkt_qr(packet.get()));
    EXPECT_FALSE(ldns_pkt_rd(packet.get())); // the client's RD, not the upstream's
    EXPECT_TRUE(ldns_pkt_cd(packet.get()));
    EXPECT_TRUE(ldns_pkt_ra(packet.get()));
    EXPECT_FALSE(ldns_pkt_tc(packet.get()));
    EXPECT_EQ(ldns_pkt_get_rcode(packet.get()), LDNS_RCODE_NOERROR);
    EXPECT_FALSE(ldns_pkt_edns(packet.get())); // the client sent no OPT
    EXPECT_TRUE(std::ranges::equal(std::span(out_).subspan(12, query.question_wire.size()),
                                   query.question_wire));
    EXPECT_EQ(section_text(ldns_pkt_answer(packet.get())),
              (std::vector<std::string>{// The owner points at the question: the client's case.
                                        "WWW.example.COM. 200 IN CNAME cdn.example.net.",
                                        "cdn.example.net. 0 IN A 192.0.2.1"}));
    EXPECT_EQ(section_text(ldns_pkt_authority(packet.get())),
              std::vector<std::string>{"example.net. 800 IN NS ns.example.net."});
    EXPECT_EQ(section_text(ldns_pkt_additional(packet.get())),
              std::vector<std::string>{"ns.example.net. 800 IN A 192.0.2.53"});
}

TEST_F(RenderCachedAnswer, AddsOurOptForEdnsClientsAndReusesTheBuffer) {
    const UpstreamAnswer answer = upstream_answer();
    const ClientQuery query_client =
        client_query(simple_query("www.example.com", type::kA, 4096, 5));
    const Query& query = query_client.query;
    out_.reserve(2048);
    const auto* buffer = out_.data();
    render_cached_answer(query, answer.cached, 0, udp_size_limit(query), out_);
    EXPECT_EQ(out_.data(), buffer);

    const LdnsPacket packet = ldns_parse(out_);
    ASSERT_TRUE(packet);
    EXPECT_TRUE(ldns_pkt_rd(packet.get()));
    EXPECT_TRUE(ldns_pkt_edns(packet.get()));
    EXPECT_EQ(ldns_pkt_edns_udp_size(packet.get()), kMaxUdpPayload);
    EXPECT_EQ(ldns_pkt_arcount(packet.get()), 1); // ldns counts the OPT apart
    EXPECT_EQ(section_text(ldns_pkt_answer(packet.get())),
              (std::vector<std::string>{"www.example.com. 300 IN CNAME cdn.example.net.",
                                        "cdn.example.net. 60 IN A 192.0.2.1"}));
}

// 40 A records: 12 + 21 + 40 * 16 = 673 bytes, over 512 but within 1232.
UpstreamAnswer forty_addresses() {
    Response big("www.example.com", LDNS_RR_TYPE_A);
    for (int index = 1; index <= 40; ++index) {
        big.answer("www.example.com. 60 IN A 192.0.2." + std::to_string(index));
    }
    UpstreamAnswer answer = analyzed(big.wire());
    EXPECT_EQ(answer.addresses.size(), 40U);
    return answer;
}

TEST_F(RenderCachedAnswer, SetsTcWhenTheAnswerDoesNotFitIn512Bytes) {
    const ClientQuery client = client_query(simple_query("www.example.com"));
    render_cached_answer(client.query, forty_addresses().cached, 0, udp_size_limit(client.query),
                         out_);
    EXPECT_LE(out_.size(), 512U);
    const LdnsPacket packet = ldns_parse(out_);
    ASSERT_TRUE(packet);
    EXPECT_TRUE(ldns_pkt_tc(packet.get()));
    EXPECT_EQ(ldns_pkt_ancount(packet.get()), 0);
    EXPECT_EQ(ldns_pkt_qdcount(packet.get()), 1);
}

TEST_F(RenderCachedAnswer, SendsEverythingWithinTheEdnsSizeOrOverTcp) {
    const ClientQuery edns = client_query(simple_query("www.example.com", type::kA, 1232));
    render_cached_answer(edns.query, forty_addresses().cached, 0, udp_size_limit(edns.query), out_);
    LdnsPacket packet = ldns_parse(out_);
    ASSERT_TRUE(packet);
    EXPECT_FALSE(ldns_pkt_tc(packet.get()));
    EXPECT_EQ(ldns_pkt_ancount(packet.get()), 40);

    const ClientQuery classic = client_query(simple_query("www.example.com"));
    render_cached_answer(classic.query, forty_addresses().cached, 0, 65535, out_);
    packet = ldns_parse(out_);
    ASSERT_TRUE(packet);
    EXPECT_EQ(ldns_pkt_ancount(packet.get()), 40);
}

TEST_F(RenderCachedAnswer, ATruncatedAnswerKeepsTheOpt) {
    const ClientQuery edns = client_query(simple_query("www.example.com", type::kA, 600));
    render_cached_answer(edns.query, forty_addresses().cached, 0, udp_size_limit(edns.query), out_);
    const LdnsPacket packet = ldns_parse(out_);
    ASSERT_TRUE(packet);
    EXPECT_TRUE(ldns_pkt_tc(packet.get()));
    EXPECT_TRUE(ldns_pkt_edns(packet.get()));
    EXPECT_EQ(out_.size(), 12U + edns.query.question_wire.size() + 11U);
}

TEST_F(RenderCachedAnswer, KeepsNegativeAnswersNegative) {
    const UpstreamAnswer answer =
        analyzed(Response("www.example.com", LDNS_RR_TYPE_A)
                     .rcode(LDNS_RCODE_NXDOMAIN)
                     .authority("example.com. 3600 IN SOA ns.example.com. host.example.com. 1 "
                                "7200 3600 1209600 300")
                     .wire());
    const ClientQuery query_client = client_query(simple_query("www.example.com"));
    const Query& query = query_client.query;
    render_cached_answer(query, answer.cached, 10, udp_size_limit(query), out_);
    const LdnsPacket packet = ldns_parse(out_);
    ASSERT_TRUE(packet);
    EXPECT_EQ(ldns_pkt_get_rcode(packet.get()), LDNS_RCODE_NXDOMAIN);
    EXPECT_EQ(section_text(ldns_pkt_authority(packet.get())),
              std::vector<std::string>{"example.com. 3590 IN SOA ns.example.com. "
                                       "host.example.com. 1 7200 3600 1209600 300"});
}

TEST_F(RenderCachedAnswer, AQuestionOfAnotherSizeGetsServfailNotBrokenPointers) {
    const UpstreamAnswer answer = upstream_answer();
    const ClientQuery query_client = client_query(simple_query("longer.www.example.com"));
    const Query& query = query_client.query;
    render_cached_answer(query, answer.cached, 0, 65535, out_);
    const LdnsPacket packet = ldns_parse(out_);
    ASSERT_TRUE(packet);
    EXPECT_EQ(ldns_pkt_get_rcode(packet.get()), LDNS_RCODE_SERVFAIL);
    EXPECT_EQ(ldns_pkt_ancount(packet.get()), 0);
    EXPECT_EQ(out_.size(), 12U + query.question_wire.size());
}

// --- address_only_answer: an answer cut down for one client ------------------------------------

TEST_F(RenderCachedAnswer, AddressOnlyAnswerKeepsTheGivenAddressesAsRecordsOfTheQuestion) {
    const UpstreamAnswer answer = upstream_answer();
    const std::vector<IpAddress> kept = {IpAddress::parse("192.0.2.7").value(),
                                         IpAddress::parse("192.0.2.9").value()};
    const CachedAnswer cut = address_only_answer(answer.cached, type::kA, kept, 60);
    Wire client;
    client.header(0x0bad, 0x0100, 1, 0, 0, 0).name("WWW.example.COM").u16(1).u16(1);
    const Query query = parsed(client.bytes());
    render_cached_answer(query, cut, 10, udp_size_limit(query), out_);
    const LdnsPacket packet = ldns_parse(out_);
    ASSERT_TRUE(packet);
    EXPECT_EQ(ldns_pkt_id(packet.get()), 0x0bad);
    EXPECT_TRUE(ldns_pkt_ra(packet.get()));
    EXPECT_EQ(ldns_pkt_get_rcode(packet.get()), LDNS_RCODE_NOERROR);
    EXPECT_EQ(section_text(ldns_pkt_answer(packet.get())),
              (std::vector<std::string>{"WWW.example.COM. 50 IN A 192.0.2.7",
                                        "WWW.example.COM. 50 IN A 192.0.2.9"}));
    EXPECT_EQ(ldns_pkt_nscount(packet.get()), 0);
    EXPECT_EQ(ldns_pkt_arcount(packet.get()), 0);
}

TEST_F(RenderCachedAnswer, AddressOnlyAaaaAnswerWritesFoldedIpv4AsMapped) {
    const UpstreamAnswer answer =
        analyzed(Response("www.example.com", LDNS_RR_TYPE_AAAA)
                     .answer("www.example.com. 300 IN AAAA 2001:db8::1")
                     .answer("www.example.com. 300 IN AAAA ::ffff:192.0.2.1")
                     .wire(),
                 kWwwAaaa);
    ASSERT_EQ(answer.addresses.size(), 2U);
    EXPECT_TRUE(answer.addresses[1].is_v4()); // folded on parsing
    const CachedAnswer cut = address_only_answer(answer.cached, type::kAaaa, answer.addresses, 300);
    const ClientQuery client = client_query(simple_query("www.example.com", type::kAaaa));
    render_cached_answer(client.query, cut, 0, 65535, out_);
    const LdnsPacket packet = ldns_parse(out_);
    ASSERT_TRUE(packet);
    EXPECT_EQ(section_text(ldns_pkt_answer(packet.get())),
              (std::vector<std::string>{"www.example.com. 300 IN AAAA 2001:db8::1",
                                        "www.example.com. 300 IN AAAA ::ffff:192.0.2.1"}));
}

TEST_F(RenderCachedAnswer, AddressOnlyAnswerSkipsAddressesOfTheOtherType) {
    const std::vector<IpAddress> mixed = {IpAddress::parse("2001:db8::1").value(),
                                          IpAddress::parse("192.0.2.1").value()};
    const CachedAnswer cut = address_only_answer(upstream_answer().cached, type::kA, mixed, 60);
    EXPECT_EQ(cut.answer_count, 1);
    EXPECT_EQ(cut.ttl_fields.size(), 1U);
    EXPECT_EQ(cut.authority_count, 0);
}

// --- normalize_name: the one normal form of a name ----------------------------------------------

TEST(NormalizeName, LowerCaseWithoutTheTrailingDot) {
    EXPECT_EQ(normalize_name("WWW.Example.COM."), "www.example.com");
    EXPECT_EQ(normalize_name("www.example.com"), "www.example.com");
    EXPECT_EQ(normalize_name("."), "");
    EXPECT_EQ(normalize_name(""), "");
}

TEST(NormalizeName, OddBytesBecomeDecimalEscapes) {
    EXPECT_EQ(normalize_name("a\\.b.example"), "a\\046b.example");
    EXPECT_EQ(normalize_name("x\\032Y.example"), "x\\032y.example");
    EXPECT_EQ(normalize_name("x\\065.example"), "xa.example");
}

TEST(NormalizeName, TextThatIsNotANameIsRefused) {
    EXPECT_FALSE(normalize_name("a..b"));
    EXPECT_FALSE(normalize_name(".a"));
    EXPECT_FALSE(normalize_name("example\\25"));
    EXPECT_FALSE(normalize_name("example\\256"));
    EXPECT_FALSE(normalize_name("x\\"));
    EXPECT_FALSE(normalize_name(std::string(64, 'a') + ".example"));
    std::string long_name;
    for (int label = 0; label < 5; ++label) {
        long_name += std::string(60, 'a') + ".";
    }
    EXPECT_FALSE(normalize_name(long_name));
}

} // namespace
} // namespace pw::dns
