#include "dns/message.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <limits>
#include <memory>
#include <utility>

#include <ldns/ldns.h>

#include "common/assert.h"

namespace pw::dns {
namespace {

constexpr std::size_t kHeaderSize = 12;
constexpr std::size_t kMaxNameWireLength = 255; // RFC 1035 3.1, the length bytes included
constexpr std::size_t kMaxLabelLength = 63;
constexpr std::size_t kRecordFixedSize = 10; // type, class, TTL, RDLENGTH after the owner name
constexpr std::size_t kOptRecordSize = 11;   // root owner + kRecordFixedSize, no options
constexpr std::size_t kMaxCnameHops = 16;
constexpr std::uint16_t kTypeTsig = 250; // RFC 8945
// RFC 2181 8: a TTL with the top bit set is to be read as 0.
constexpr std::uint32_t kMaxTtl = 0x7fffffff;

// The 16-bit flags word of the header (RFC 1035 4.1.1, RFC 2535 for AD and CD).
constexpr std::uint16_t kFlagQr = 0x8000;
constexpr std::uint16_t kOpcodeMask = 0x7800;
constexpr std::uint16_t kFlagTc = 0x0200;
constexpr std::uint16_t kFlagRd = 0x0100;
constexpr std::uint16_t kFlagRa = 0x0080;
constexpr std::uint16_t kFlagCd = 0x0010;
constexpr std::uint16_t kRcodeMask = 0x000f;
constexpr unsigned kOpcodeShift = 11;

constexpr std::uint8_t kPointerBits = 0xc0;
// A compression pointer to offset 12: the question name, right after the header.
constexpr std::uint16_t kPointerToQuestion = 0xc000 | kHeaderSize;

// Section counts in header order, after ID and flags.
struct Header {
    std::uint16_t id = 0;
    std::uint16_t flags = 0;
    std::uint16_t question_count = 0;
    std::uint16_t answer_count = 0;
    std::uint16_t authority_count = 0;
    std::uint16_t additional_count = 0;
};

// Callers check the bounds: these read and write exactly where they are told.
std::uint16_t load_u16(std::span<const std::uint8_t> bytes, std::size_t offset) {
    return static_cast<std::uint16_t>((bytes[offset] << 8U) | bytes[offset + 1]);
}

std::uint32_t load_u32(std::span<const std::uint8_t> bytes, std::size_t offset) {
    return (std::uint32_t{load_u16(bytes, offset)} << 16U) | load_u16(bytes, offset + 2);
}

void append_u16(std::vector<std::uint8_t>& out, std::uint16_t value) {
    out.push_back(static_cast<std::uint8_t>(value >> 8U));
    out.push_back(static_cast<std::uint8_t>(value & 0xffU));
}

void append_u32(std::vector<std::uint8_t>& out, std::uint32_t value) {
    append_u16(out, static_cast<std::uint16_t>(value >> 16U));
    append_u16(out, static_cast<std::uint16_t>(value & 0xffffU));
}

void store_u32(std::uint8_t* at, std::uint32_t value) {
    at[0] = static_cast<std::uint8_t>(value >> 24U);
    at[1] = static_cast<std::uint8_t>((value >> 16U) & 0xffU);
    at[2] = static_cast<std::uint8_t>((value >> 8U) & 0xffU);
    at[3] = static_cast<std::uint8_t>(value & 0xffU);
}

Header read_header(std::span<const std::uint8_t> message) {
    return Header{.id = load_u16(message, 0),
                  .flags = load_u16(message, 2),
                  .question_count = load_u16(message, 4),
                  .answer_count = load_u16(message, 6),
                  .authority_count = load_u16(message, 8),
                  .additional_count = load_u16(message, 10)};
}

void append_header(std::vector<std::uint8_t>& out, const Header& header) {
    append_u16(out, header.id);
    append_u16(out, header.flags);
    append_u16(out, header.question_count);
    append_u16(out, header.answer_count);
    append_u16(out, header.authority_count);
    append_u16(out, header.additional_count);
}

// An OPT record for the root name announcing kMaxUdpPayload: version 0, no DO bit, no options.
void append_opt(std::vector<std::uint8_t>& out) {
    out.push_back(0);
    append_u16(out, type::kOpt);
    append_u16(out, kMaxUdpPayload);
    append_u32(out, 0);
    append_u16(out, 0);
}

unsigned opcode_of(std::uint16_t flags) {
    return (flags & kOpcodeMask) >> kOpcodeShift;
}

// ---------------------------------------------------------------------------------------------
// Names.

// Bytes a presentation name shows as themselves; everything else becomes \DDD. Upper case
// letters are shown lower case.
bool is_plain_name_byte(std::uint8_t byte) {
    return (byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z') ||
           (byte >= '0' && byte <= '9') || byte == '-' || byte == '_';
}

std::uint8_t ascii_lower(std::uint8_t byte) {
    return byte >= 'A' && byte <= 'Z' ? static_cast<std::uint8_t>(byte - 'A' + 'a') : byte;
}

void append_label_text(std::string& text, std::span<const std::uint8_t> label) {
    for (const std::uint8_t byte : label) {
        if (is_plain_name_byte(byte)) {
            text.push_back(static_cast<char>(ascii_lower(byte)));
            continue;
        }
        text.push_back('\\');
        text.push_back(static_cast<char>('0' + byte / 100));
        text.push_back(static_cast<char>('0' + byte / 10 % 10));
        text.push_back(static_cast<char>('0' + byte % 10));
    }
}

struct NameExtent {
    std::size_t end = 0;         // offset just past the name's terminating zero byte
    std::size_t text_length = 0; // length of its presentation form
};

// Measures an uncompressed name at `offset` and checks it (RFC 1035 3.1: labels of at most 63
// bytes, 255 bytes in all). Compression pointers are refused: a question never needs one.
std::expected<NameExtent, std::string_view> scan_name(std::span<const std::uint8_t> bytes,
                                                      std::size_t offset) {
    std::size_t position = offset;
    std::size_t wire_length = 0;
    std::size_t text_length = 0;
    while (true) {
        if (position >= bytes.size()) {
            return std::unexpected("name runs past the end of the message");
        }
        const std::uint8_t length = bytes[position];
        if (length == 0) {
            return NameExtent{.end = position + 1, .text_length = text_length};
        }
        if ((length & kPointerBits) == kPointerBits) {
            return std::unexpected("compression pointer (not allowed here)");
        }
        // Length bytes 64-191 would be labels over 63 bytes, or the extended label types that
        // RFC 6891 retired: neither is a name.
        if ((length & kPointerBits) != 0) {
            return std::unexpected("label longer than 63 bytes");
        }
        wire_length += 1U + length;
        if (wire_length + 1 > kMaxNameWireLength) {
            return std::unexpected("name longer than 255 bytes");
        }
        if (bytes.size() - position - 1 < length) {
            return std::unexpected("name runs past the end of the message");
        }
        text_length += text_length == 0 ? 0 : 1; // the dot before this label
        for (const std::uint8_t byte : bytes.subspan(position + 1, length)) {
            text_length += is_plain_name_byte(byte) ? 1 : 4;
        }
        position += 1U + length;
    }
}

// Writes the presentation form of a name that scan_name() accepted, with one allocation.
void write_name_text(std::span<const std::uint8_t> bytes, std::size_t offset,
                     std::size_t text_length, std::string& text) {
    text.clear();
    text.reserve(text_length);
    std::size_t position = offset;
    while (bytes[position] != 0) {
        const std::size_t length = bytes[position];
        if (position != offset) {
            text.push_back('.');
        }
        append_label_text(text, bytes.subspan(position + 1, length));
        position += 1 + length;
    }
}

// Reads the uncompressed name at `offset` into `text`; returns the offset after it.
std::expected<std::size_t, std::string_view> read_name(std::span<const std::uint8_t> bytes,
                                                       std::size_t offset, std::string& text) {
    const auto extent = scan_name(bytes, offset);
    if (!extent) {
        return std::unexpected(extent.error());
    }
    write_name_text(bytes, offset, extent->text_length, text);
    return extent->end;
}

bool is_digit(char character) {
    return character >= '0' && character <= '9';
}

bool equal_ignoring_case(std::string_view left, std::string_view right) {
    return std::ranges::equal(left, right, [](char a, char b) {
        return ascii_lower(static_cast<std::uint8_t>(a)) ==
               ascii_lower(static_cast<std::uint8_t>(b));
    });
}

// Appends the wire form of a presentation name (\DDD and \X escapes, an optional final dot) in
// lower case. False when it is not a valid name; `out` then holds a partial name.
bool append_name_wire(std::string_view text, std::vector<std::uint8_t>& out) {
    if (text == ".") {
        text = {};
    }
    const std::size_t name_start = out.size();
    std::size_t position = 0;
    while (position < text.size()) {
        const std::size_t length_at = out.size();
        out.push_back(0);
        while (position < text.size() && text[position] != '.') {
            auto byte = static_cast<std::uint8_t>(text[position++]);
            if (byte == '\\') {
                if (position + 3 <= text.size() && is_digit(text[position]) &&
                    is_digit(text[position + 1]) && is_digit(text[position + 2])) {
                    const int value = (text[position] - '0') * 100 +
                                      (text[position + 1] - '0') * 10 + (text[position + 2] - '0');
                    if (value > 255) {
                        return false;
                    }
                    byte = static_cast<std::uint8_t>(value);
                    position += 3;
                } else if (position < text.size() && !is_digit(text[position])) {
                    // \X escapes X; a digit after the backslash must start \DDD (RFC 1035 5.1).
                    byte = static_cast<std::uint8_t>(text[position++]);
                } else {
                    return false;
                }
            }
            out.push_back(ascii_lower(byte));
        }
        const std::size_t label_length = out.size() - length_at - 1;
        if (label_length == 0 || label_length > kMaxLabelLength) {
            return false; // empty labels (".." or a leading dot) and long ones
        }
        out[length_at] = static_cast<std::uint8_t>(label_length);
        if (position < text.size()) {
            ++position; // the dot; a final one ends the name
        }
    }
    out.push_back(0);
    return out.size() - name_start <= kMaxNameWireLength;
}

} // namespace

std::optional<std::string> normalize_name(std::string_view text) {
    if (text.empty()) {
        return std::string();
    }
    std::vector<std::uint8_t> wire;
    if (!append_name_wire(text, wire)) {
        return std::nullopt;
    }
    const auto extent = scan_name(wire, 0);
    if (!extent) {
        return std::nullopt;
    }
    std::string name;
    write_name_text(wire, 0, extent->text_length, name);
    return name;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Queries.

std::unexpected<QueryRejection> drop(std::string reason) {
    return std::unexpected(
        QueryRejection{.rcode = Rcode::FormErr, .answerable = false, .reason = std::move(reason)});
}

std::unexpected<QueryRejection> reject(Rcode rcode, std::string reason) {
    return std::unexpected(
        QueryRejection{.rcode = rcode, .answerable = true, .reason = std::move(reason)});
}

// The header checks of parse_query(), before anything else is read.
std::optional<std::unexpected<QueryRejection>> check_query_header(const Header& header) {
    if ((header.flags & kFlagQr) != 0) {
        return drop("a response (QR set), not a query");
    }
    if (const unsigned opcode = opcode_of(header.flags); opcode != 0) {
        return reject(Rcode::NotImp, "opcode " + std::to_string(opcode) + " is not QUERY");
    }
    if (header.question_count == 0) {
        return reject(Rcode::FormErr, "no question");
    }
    if (header.question_count > 1) {
        return reject(Rcode::Refused,
                      std::to_string(header.question_count) + " questions; only one is served");
    }
    if (header.answer_count != 0 || header.authority_count != 0) {
        return reject(Rcode::FormErr, "a query with answer or authority records");
    }
    if (header.additional_count > 1) {
        return reject(Rcode::FormErr, "more than one additional record");
    }
    return std::nullopt;
}

struct Opt {
    std::uint16_t udp_size = 0;
    std::size_t end = 0;
};

// The additional record of a query at `offset`: an OPT record for the root name (RFC 6891 6.1)
// with well-formed options.
std::expected<Opt, std::string> parse_opt(std::span<const std::uint8_t> message,
                                          std::size_t offset) {
    if (offset >= message.size() || message[offset] != 0) {
        return std::unexpected("the additional record is not an OPT record for the root name");
    }
    const std::size_t fixed = offset + 1;
    if (message.size() - fixed < kRecordFixedSize) {
        return std::unexpected("OPT record: truncated");
    }
    if (const std::uint16_t record_type = load_u16(message, fixed); record_type != type::kOpt) {
        return std::unexpected("the additional record is " + type_name(record_type) + ", not OPT");
    }
    if (const std::uint8_t version = message[fixed + 5]; version != 0) {
        return std::unexpected("OPT record: EDNS version " + std::to_string(version) +
                               " (only 0 is supported; answered FORMERR, not BADVERS)");
    }
    const std::size_t data = fixed + kRecordFixedSize;
    const std::size_t data_length = load_u16(message, fixed + 8);
    if (message.size() - data < data_length) {
        return std::unexpected("OPT record: data runs past the end of the message");
    }
    // Options are code, length, value (RFC 6891 6.1.2); they must fill the data exactly.
    std::size_t option = data;
    const std::size_t data_end = data + data_length;
    while (option < data_end) {
        if (data_end - option < 4 || data_end - option - 4 < load_u16(message, option + 2)) {
            return std::unexpected("OPT record: malformed option");
        }
        option += 4U + load_u16(message, option + 2);
    }
    return Opt{.udp_size = std::max(load_u16(message, fixed + 2), kClassicUdpPayload),
               .end = data_end};
}

// ---------------------------------------------------------------------------------------------
// Upstream responses.

struct LdnsPacketDeleter {
    void operator()(ldns_pkt* packet) const noexcept { ldns_pkt_free(packet); }
};
using LdnsPacket = std::unique_ptr<ldns_pkt, LdnsPacketDeleter>;

// ldns hands out wire buffers allocated with malloc().
struct MallocDeleter {
    // NOLINTNEXTLINE(cppcoreguidelines-no-malloc): freeing what ldns allocated
    void operator()(std::uint8_t* data) const noexcept { std::free(data); }
};

Result<std::vector<std::uint8_t>> encode(const ldns_pkt& packet) {
    std::uint8_t* raw_data = nullptr;
    std::size_t size = 0;
    const ldns_status status = ldns_pkt2wire(&raw_data, &packet, &size);
    const std::unique_ptr<std::uint8_t, MallocDeleter> data(raw_data);
    if (status != LDNS_STATUS_OK || !data || size < kHeaderSize) {
        return fail(std::string("cannot re-encode the response: ") +
                    ldns_get_errorstr_by_id(status));
    }
    return std::vector<std::uint8_t>(data.get(), data.get() + size);
}

std::optional<Rcode> rcode_from_wire(unsigned value) {
    if (value > static_cast<unsigned>(Rcode::Refused)) {
        return std::nullopt;
    }
    return static_cast<Rcode>(value);
}

std::uint32_t effective_ttl(std::uint32_t ttl) {
    return ttl > kMaxTtl ? 0 : ttl;
}

// Skips a record's owner name, which may end in a compression pointer (not followed: ldns
// checks where pointers lead). Returns the offset after it.
Result<std::size_t> skip_owner_name(std::span<const std::uint8_t> message, std::size_t offset) {
    std::size_t position = offset;
    while (true) {
        if (position >= message.size()) {
            return fail("record owner name runs past the end of the message");
        }
        const std::uint8_t length = message[position];
        if (length == 0) {
            return position + 1;
        }
        if ((length & kPointerBits) == kPointerBits) {
            if (message.size() - position < 2) {
                return fail("record owner name runs past the end of the message");
            }
            return position + 2;
        }
        if ((length & kPointerBits) != 0) {
            return fail("record owner name has a label longer than 63 bytes");
        }
        position += 1U + length;
        if (position - offset + 1 > kMaxNameWireLength) {
            return fail("record owner name longer than 255 bytes");
        }
    }
}

// Where the records of a response are, for CachedAnswer.
struct RecordLayout {
    std::size_t begin = 0; // the answer section
    std::size_t end = 0;   // after the last record, the OPT record excluded
    std::uint16_t additional_count = 0;
    std::vector<CachedAnswer::TtlField> ttl_fields;
};

struct RecordWalk {
    RecordLayout layout;
    std::optional<std::size_t> opt_begin;
    std::size_t position = 0;
};

// Looks at one record of the walk; `section_additional` says whether it is in the additional
// section (the only place for an OPT record).
Status walk_record(std::span<const std::uint8_t> message, bool section_additional,
                   RecordWalk& walk) {
    const std::size_t record_begin = walk.position;
    const auto fixed = skip_owner_name(message, record_begin);
    if (!fixed) {
        return std::unexpected(fixed.error());
    }
    if (message.size() - *fixed < kRecordFixedSize) {
        return fail("record runs past the end of the message");
    }
    const std::size_t data_length = load_u16(message, *fixed + 8);
    if (message.size() - *fixed - kRecordFixedSize < data_length) {
        return fail("record data runs past the end of the message");
    }
    walk.position = *fixed + kRecordFixedSize + data_length;
    const std::uint16_t record_type = load_u16(message, *fixed);
    if (record_type == kTypeTsig) {
        // We never sign queries, and ldns moves TSIG records about (it keeps them apart from
        // the additional section), which would break the layout of what we cache.
        return fail("TSIG record in a response to an unsigned query");
    }
    if (record_type != type::kOpt) {
        walk.layout.ttl_fields.push_back(CachedAnswer::TtlField{
            .offset = static_cast<std::uint32_t>(*fixed + 4 - walk.layout.begin),
            .ttl = effective_ttl(load_u32(message, *fixed + 4))});
        return {};
    }
    if (!section_additional) {
        return fail("OPT record outside the additional section");
    }
    if (walk.opt_begin) {
        return fail("more than one OPT record");
    }
    if (*fixed != record_begin + 1) {
        return fail("OPT record for a name other than the root");
    }
    if (const std::uint8_t extended_rcode = message[*fixed + 4]; extended_rcode != 0) {
        return fail("extended rcode " + std::to_string(extended_rcode) + " in the OPT record");
    }
    walk.opt_begin = record_begin;
    return {};
}

// Walks every record after the question: checks that each is within the message, notes where
// the TTL fields are and where the OPT record is.
Result<RecordWalk> walk_records(std::span<const std::uint8_t> message, const Header& header,
                                std::size_t question_end) {
    RecordWalk walk;
    walk.layout.begin = question_end;
    walk.layout.additional_count = header.additional_count;
    walk.position = question_end;
    const std::size_t before_additional =
        std::size_t{header.answer_count} + std::size_t{header.authority_count};
    const std::size_t total = before_additional + header.additional_count;
    for (std::size_t index = 0; index < total; ++index) {
        if (const auto walked = walk_record(message, index >= before_additional, walk); !walked) {
            return std::unexpected(walked.error());
        }
    }
    walk.layout.end = walk.position;
    return walk;
}

// The records to cache: everything after the question but the OPT record, which is dropped
// (we add our own when answering a client with EDNS).
Result<RecordLayout> cacheable_layout(std::span<const std::uint8_t> message, const Header& header,
                                      std::size_t question_end) {
    auto walk = walk_records(message, header, question_end);
    if (!walk) {
        return std::unexpected(std::move(walk.error()));
    }
    RecordLayout& layout = walk->layout;
    if (const std::optional<std::size_t> opt_begin = walk->opt_begin; opt_begin.has_value()) {
        // Cutting an OPT record out of the middle would move the records after it, and with
        // them the targets of compression pointers. ldns writes OPT last unless there is a
        // TSIG record, which walk_record() refuses, so this is only a safety net.
        const std::size_t begin = *opt_begin;
        if (begin + kOptRecordSize + load_u16(message, begin + 9) != walk->position) {
            return fail("OPT record in the middle of the additional section");
        }
        layout.end = begin;
        --layout.additional_count;
    }
    return std::move(layout);
}

struct CheckedResponse {
    Header header;
    Rcode rcode = Rcode::NoError;
    std::string question_name; // lower case
    std::size_t question_end = 0;
};

// The header and question of an upstream response, checked with the same parser as client
// queries rather than with ldns: a truncated (TC) response often has records cut off, which
// ldns refuses, and it must still be recognized as truncated.
Result<CheckedResponse> check_response_header(std::span<const std::uint8_t> message,
                                              const Question& question, std::uint16_t expected_id) {
    if (message.size() < kHeaderSize) {
        return fail("response shorter than a DNS header");
    }
    CheckedResponse checked;
    checked.header = read_header(message);
    const Header& header = checked.header;
    if (header.id != expected_id) {
        return fail("response ID " + std::to_string(header.id) + " does not match query ID " +
                    std::to_string(expected_id));
    }
    if ((header.flags & kFlagQr) == 0) {
        return fail("not a response (QR clear)");
    }
    if (const unsigned opcode = opcode_of(header.flags); opcode != 0) {
        return fail("response opcode " + std::to_string(opcode) + " is not QUERY");
    }
    const auto rcode = rcode_from_wire(header.flags & kRcodeMask);
    if (!rcode) {
        return fail("unexpected rcode " + std::to_string(header.flags & kRcodeMask));
    }
    checked.rcode = *rcode;
    if (header.question_count != 1) {
        return fail("response with " + std::to_string(header.question_count) +
                    " questions instead of 1");
    }
    const auto name_end = read_name(message, kHeaderSize, checked.question_name);
    if (!name_end) {
        return fail("response question name: " + std::string(name_end.error()));
    }
    if (message.size() - *name_end < 4) {
        return fail("response question runs past the end of the message");
    }
    const std::uint16_t question_type = load_u16(message, *name_end);
    const std::uint16_t question_class = load_u16(message, *name_end + 2);
    if (!equal_ignoring_case(checked.question_name, question.name) ||
        question_type != question.type || question_class != question.qclass) {
        return fail("response is for " + checked.question_name + " " + type_name(question_type) +
                    ", not for " + question.name + " " + type_name(question.type));
    }
    checked.question_end = *name_end + 4;
    return checked;
}

// An answer record as the CNAME walk needs it.
struct AnswerRecord {
    std::string owner; // lower case presentation form
    std::uint16_t type = 0;
    std::uint32_t ttl = 0;
    const ldns_rr* record = nullptr; // owned by the packet
};

// The presentation form of a domain-name rdf (uncompressed wire bytes), or nullopt.
std::optional<std::string> name_of_rdf(const ldns_rdf* rdf) {
    if (rdf == nullptr || ldns_rdf_get_type(rdf) != LDNS_RDF_TYPE_DNAME) {
        return std::nullopt;
    }
    std::string text;
    if (!read_name(std::span(ldns_rdf_data(rdf), ldns_rdf_size(rdf)), 0, text)) {
        return std::nullopt;
    }
    return text;
}

std::vector<AnswerRecord> class_in_answers(const ldns_pkt& packet) {
    std::vector<AnswerRecord> records;
    const ldns_rr_list* answers = ldns_pkt_answer(&packet);
    const std::size_t count = answers == nullptr ? 0 : ldns_rr_list_rr_count(answers);
    records.reserve(count);
    for (std::size_t index = 0; index < count; ++index) {
        const ldns_rr* record = ldns_rr_list_rr(answers, index);
        if (ldns_rr_get_class(record) != LDNS_RR_CLASS_IN) {
            continue;
        }
        auto owner = name_of_rdf(ldns_rr_owner(record));
        if (!owner) {
            continue;
        }
        records.push_back(AnswerRecord{.owner = std::move(*owner),
                                       .type = static_cast<std::uint16_t>(ldns_rr_get_type(record)),
                                       .ttl = effective_ttl(ldns_rr_ttl(record)),
                                       .record = record});
    }
    return records;
}

struct ChainWalk {
    std::string_view final_name;
    bool loop = false;
    // The lowest TTL of the CNAME records followed; the largest value when there were none.
    std::uint32_t cname_ttl = std::numeric_limits<std::uint32_t>::max();
};

// Follows CNAME records from `start` through the answer section, at most kMaxCnameHops, and
// stops at a name seen before.
ChainWalk follow_cnames(std::string_view start, const std::vector<AnswerRecord>& records,
                        std::vector<std::string>& chain) {
    ChainWalk walk{.final_name = start};
    for (std::size_t hop = 0; hop < kMaxCnameHops; ++hop) {
        const auto cname = std::ranges::find_if(records, [&](const AnswerRecord& record) {
            return record.type == type::kCname && record.owner == walk.final_name;
        });
        if (cname == records.end()) {
            break;
        }
        auto target = name_of_rdf(ldns_rr_rdf(cname->record, 0));
        if (!target) {
            break;
        }
        walk.cname_ttl = std::min(walk.cname_ttl, cname->ttl);
        if (*target == start || std::ranges::find(chain, *target) != chain.end()) {
            walk.loop = true;
            break;
        }
        chain.push_back(std::move(*target));
        walk.final_name = chain.back();
    }
    return walk;
}

std::optional<IpAddress> address_of(const AnswerRecord& record) {
    const ldns_rdf* rdf = ldns_rr_rdf(record.record, 0);
    if (rdf == nullptr) {
        return std::nullopt;
    }
    if (record.type == type::kA && ldns_rdf_size(rdf) == 4) {
        return IpAddress::from_v4_bytes(std::span<const std::uint8_t, 4>(ldns_rdf_data(rdf), 4));
    }
    if (record.type == type::kAaaa && ldns_rdf_size(rdf) == 16) {
        return IpAddress::from_v6_bytes(std::span<const std::uint8_t, 16>(ldns_rdf_data(rdf), 16));
    }
    return std::nullopt;
}

// RFC 2308 5: the negative TTL is the SOA's minimum field, capped by the SOA record's own TTL.
std::optional<std::uint32_t> negative_ttl(const ldns_pkt& packet) {
    const ldns_rr_list* authority = ldns_pkt_authority(&packet);
    const std::size_t count = authority == nullptr ? 0 : ldns_rr_list_rr_count(authority);
    for (std::size_t index = 0; index < count; ++index) {
        const ldns_rr* record = ldns_rr_list_rr(authority, index);
        if (ldns_rr_get_type(record) != LDNS_RR_TYPE_SOA ||
            ldns_rr_get_class(record) != LDNS_RR_CLASS_IN || ldns_rr_rd_count(record) != 7) {
            continue;
        }
        const ldns_rdf* minimum = ldns_rr_rdf(record, 6);
        if (minimum == nullptr || ldns_rdf_size(minimum) != 4) {
            continue;
        }
        return std::min(effective_ttl(ldns_rdf2native_int32(minimum)),
                        effective_ttl(ldns_rr_ttl(record)));
    }
    return std::nullopt;
}

struct FinalRecords {
    bool positive = false; // records of the asked type (or any, for ANY) at the final name
    std::uint32_t lowest_ttl = std::numeric_limits<std::uint32_t>::max(); // of those records
};

// Looks at the records of the name the CNAME chain ended at: their addresses go to `addresses`.
FinalRecords collect_final_records(const std::vector<AnswerRecord>& records,
                                   std::string_view final_name, std::uint16_t question_type,
                                   std::vector<IpAddress>& addresses) {
    FinalRecords found;
    for (const AnswerRecord& record : records) {
        if (record.owner != final_name) {
            continue;
        }
        if (record.type == type::kA || record.type == type::kAaaa) {
            if (const auto address = address_of(record)) {
                addresses.push_back(*address);
            }
        }
        if (record.type == question_type || question_type == type::kAny) {
            found.positive = true;
            found.lowest_ttl = std::min(found.lowest_ttl, record.ttl);
        }
    }
    return found;
}

// Fills addresses, cname_chain and ttl from the answer and authority sections.
void follow_answer(const ldns_pkt& packet, std::string_view question_name,
                   std::uint16_t question_type, UpstreamAnswer& answer) {
    const std::vector<AnswerRecord> records = class_in_answers(packet);
    // A CNAME question is answered by the CNAME record itself, not by where it leads.
    const ChainWalk walk = question_type == type::kCname
                               ? ChainWalk{.final_name = question_name}
                               : follow_cnames(question_name, records, answer.cname_chain);
    const FinalRecords final_records =
        walk.loop || answer.rcode != Rcode::NoError
            ? FinalRecords{}
            : collect_final_records(records, walk.final_name, question_type, answer.addresses);
    if (final_records.positive) {
        answer.ttl = std::min(final_records.lowest_ttl, walk.cname_ttl);
        return;
    }
    // Nothing of the asked type at the end of the chain: NXDOMAIN or NODATA, perhaps after
    // CNAMEs (whose TTLs also bound how long the answer holds).
    if (const auto negative = negative_ttl(packet)) {
        answer.ttl = std::min(*negative, walk.cname_ttl);
        return;
    }
    // A NOERROR answer with records but without a SOA (a dangling chain, records of other
    // names): the lowest TTL of what is there, so that a non-empty answer always has a TTL.
    if (answer.rcode == Rcode::NoError && !records.empty()) {
        std::uint32_t lowest_present = std::numeric_limits<std::uint32_t>::max();
        for (const AnswerRecord& record : records) {
            lowest_present = std::min(lowest_present, record.ttl);
        }
        answer.ttl = lowest_present;
    }
}

} // namespace

std::string type_name(std::uint16_t record_type) {
    switch (record_type) {
        case type::kA:
            return "A";
        case type::kNs:
            return "NS";
        case type::kCname:
            return "CNAME";
        case type::kSoa:
            return "SOA";
        case type::kPtr:
            return "PTR";
        case type::kMx:
            return "MX";
        case type::kTxt:
            return "TXT";
        case type::kAaaa:
            return "AAAA";
        case type::kSrv:
            return "SRV";
        case type::kOpt:
            return "OPT";
        case type::kSvcb:
            return "SVCB";
        case type::kHttps:
            return "HTTPS";
        case type::kAny:
            return "ANY";
        default:
            return "TYPE" + std::to_string(record_type);
    }
}

std::string_view rcode_name(Rcode rcode) {
    switch (rcode) {
        case Rcode::NoError:
            return "NOERROR";
        case Rcode::FormErr:
            return "FORMERR";
        case Rcode::ServFail:
            return "SERVFAIL";
        case Rcode::NxDomain:
            return "NXDOMAIN";
        case Rcode::NotImp:
            return "NOTIMP";
        case Rcode::Refused:
            return "REFUSED";
    }
    return "UNKNOWN";
}

std::expected<Query, QueryRejection> parse_query(std::span<const std::uint8_t> message) {
    if (message.size() < kHeaderSize) {
        return drop("shorter than a DNS header");
    }
    const Header header = read_header(message);
    if (auto rejection = check_query_header(header)) {
        return std::move(*rejection);
    }
    Query query;
    query.id = header.id;
    query.recursion_desired = (header.flags & kFlagRd) != 0;
    query.checking_disabled = (header.flags & kFlagCd) != 0;
    const auto name_end = read_name(message, kHeaderSize, query.question.name);
    if (!name_end) {
        return reject(Rcode::FormErr, "question name: " + std::string(name_end.error()));
    }
    if (message.size() - *name_end < 4) {
        return reject(Rcode::FormErr, "question runs past the end of the message");
    }
    query.question.type = load_u16(message, *name_end);
    query.question.qclass = load_u16(message, *name_end + 2);
    std::size_t end = *name_end + 4;
    query.question_wire = message.subspan(kHeaderSize, end - kHeaderSize);
    if (header.additional_count == 1) {
        const auto opt = parse_opt(message, end);
        if (!opt) {
            return reject(Rcode::FormErr, opt.error());
        }
        query.edns_udp_size = opt->udp_size;
        end = opt->end;
    }
    if (end != message.size()) {
        return reject(Rcode::FormErr,
                      std::to_string(message.size() - end) + " bytes after the last record");
    }
    if (query.question.qclass != kClassIn) {
        return reject(Rcode::Refused,
                      "class " + std::to_string(query.question.qclass) + " (only IN is served)");
    }
    return query;
}

std::vector<std::uint8_t> error_response(std::span<const std::uint8_t> message, Rcode rcode) {
    if (message.size() < kHeaderSize) {
        return {};
    }
    const Header query = read_header(message);
    std::vector<std::uint8_t> out;
    out.reserve(kHeaderSize);
    append_header(out, Header{.id = query.id,
                              .flags = static_cast<std::uint16_t>(
                                  kFlagQr | (query.flags & (kOpcodeMask | kFlagRd)) | kFlagRa |
                                  static_cast<std::uint16_t>(rcode))});
    return out;
}

std::vector<std::uint8_t> synthesize_response(const Query& query, Rcode rcode,
                                              std::span<const SyntheticRecord> answers) {
    std::size_t size = kHeaderSize + query.question_wire.size();
    for (const SyntheticRecord& record : answers) {
        // NOLINTNEXTLINE(modernize-use-std-print): PW_ASSERT's fprintf (no <print> in GCC 12)
        PW_ASSERT(record.rdata.size() <= std::numeric_limits<std::uint16_t>::max());
        size += 2 + kRecordFixedSize + record.rdata.size();
    }
    size += query.edns_udp_size ? kOptRecordSize : 0;
    // NOLINTNEXTLINE(modernize-use-std-print): PW_ASSERT's fprintf (no <print> in GCC 12)
    PW_ASSERT(answers.size() <= std::numeric_limits<std::uint16_t>::max());

    std::vector<std::uint8_t> out;
    out.reserve(size);
    append_header(
        out,
        Header{.id = query.id,
               .flags = static_cast<std::uint16_t>(
                   kFlagQr | (query.recursion_desired ? kFlagRd : 0) | kFlagRa |
                   (query.checking_disabled ? kFlagCd : 0) | static_cast<std::uint16_t>(rcode)),
               .question_count = 1,
               .answer_count = static_cast<std::uint16_t>(answers.size()),
               .additional_count = static_cast<std::uint16_t>(query.edns_udp_size ? 1 : 0)});
    out.insert(out.end(), query.question_wire.begin(), query.question_wire.end());
    for (const SyntheticRecord& record : answers) {
        append_u16(out, kPointerToQuestion);
        append_u16(out, record.type);
        append_u16(out, query.question.qclass);
        append_u32(out, record.ttl);
        append_u16(out, static_cast<std::uint16_t>(record.rdata.size()));
        out.insert(out.end(), record.rdata.begin(), record.rdata.end());
    }
    if (query.edns_udp_size) {
        append_opt(out);
    }
    return out;
}

std::vector<std::uint8_t> build_upstream_query(std::uint16_t id, const Question& question) {
    std::vector<std::uint8_t> out;
    out.reserve(kHeaderSize + kMaxNameWireLength + 4 + kOptRecordSize);
    append_header(out,
                  Header{.id = id, .flags = kFlagRd, .question_count = 1, .additional_count = 1});
    if (!append_name_wire(question.name, out)) {
        return {};
    }
    append_u16(out, question.type);
    append_u16(out, question.qclass);
    append_opt(out);
    return out;
}

Result<UpstreamAnswer> analyze_upstream_response(std::span<const std::uint8_t> message,
                                                 const Question& question,
                                                 std::uint16_t expected_id) {
    auto checked = check_response_header(message, question, expected_id);
    if (!checked) {
        return std::unexpected(std::move(checked.error()));
    }
    UpstreamAnswer answer;
    answer.rcode = checked->rcode;
    if ((checked->header.flags & kFlagTc) != 0) {
        answer.truncated = true;
        return answer;
    }
    // Our own walk first: it refuses what ldns would accept but we cannot cache as it is.
    if (auto walk = walk_records(message, checked->header, checked->question_end); !walk) {
        return std::unexpected(std::move(walk.error()));
    }
    ldns_pkt* raw_packet = nullptr;
    const ldns_status status = ldns_wire2pkt(&raw_packet, message.data(), message.size());
    const LdnsPacket packet(raw_packet);
    if (status != LDNS_STATUS_OK || !packet) {
        return fail(std::string("malformed response: ") + ldns_get_errorstr_by_id(status));
    }
    follow_answer(*packet, checked->question_name, question.type, answer);

    // The records are cached as ldns writes them back, not as the upstream sent them: ldns
    // compresses names only against names it wrote itself, so no compression pointer can lead
    // into the header (whose ID and flags differ per client) or into the upstream's OPT record
    // (which we drop), and ldns writes OPT after the other additional records, where it can be
    // cut off without moving anything.
    auto canonical = encode(*packet);
    if (!canonical) {
        return std::unexpected(std::move(canonical.error()));
    }
    const std::span<const std::uint8_t> rewritten = *canonical;
    const std::size_t question_end = checked->question_end;
    if (rewritten.size() < question_end ||
        !std::ranges::equal(rewritten.subspan(kHeaderSize, question_end - kHeaderSize),
                            message.subspan(kHeaderSize, question_end - kHeaderSize))) {
        return fail("response question changed when re-encoded");
    }
    const Header rewritten_header = read_header(rewritten);
    auto layout = cacheable_layout(rewritten, rewritten_header, question_end);
    if (!layout) {
        return std::unexpected(std::move(layout.error()));
    }

    CachedAnswer& cached = answer.cached;
    cached.flags = static_cast<std::uint16_t>(checked->header.flags & ~kFlagTc);
    cached.answer_count = rewritten_header.answer_count;
    cached.authority_count = rewritten_header.authority_count;
    cached.additional_count = layout->additional_count;
    cached.question_size = static_cast<std::uint16_t>(question_end - kHeaderSize);
    cached.records.assign(rewritten.begin() + static_cast<std::ptrdiff_t>(layout->begin),
                          rewritten.begin() + static_cast<std::ptrdiff_t>(layout->end));
    cached.ttl_fields = std::move(layout->ttl_fields);
    return answer;
}

void render_cached_answer(const Query& query, const CachedAnswer& answer, std::uint32_t age_seconds,
                          std::size_t size_limit, std::vector<std::uint8_t>& out) {
    out.clear();
    const std::size_t opt_size = query.edns_udp_size ? kOptRecordSize : 0;
    const std::size_t full_size =
        kHeaderSize + query.question_wire.size() + answer.records.size() + opt_size;
    // Compression pointers in the records are offsets from the start of the message they were
    // written for, so they stay right only if the client's question has the cached question's
    // size, which equal questions always have (no compression in either). If a caller breaks
    // that precondition, the records cannot be used: answer SERVFAIL, not broken pointers.
    const bool usable = query.question_wire.size() == answer.question_size;
    const bool fits = full_size <= size_limit;
    const bool with_records = usable && fits;

    auto flags = static_cast<std::uint16_t>((answer.flags & ~(kFlagRd | kFlagCd | kFlagTc)) |
                                            kFlagQr | (query.recursion_desired ? kFlagRd : 0) |
                                            (query.checking_disabled ? kFlagCd : 0));
    if (!usable) {
        flags = static_cast<std::uint16_t>((flags & ~kRcodeMask) |
                                           static_cast<std::uint16_t>(Rcode::ServFail));
    } else if (!fits) {
        // RFC 2181 9: TC tells the client to ask again over TCP for the whole answer.
        flags |= kFlagTc;
    }
    out.reserve(with_records ? full_size : kHeaderSize + query.question_wire.size() + opt_size);
    append_header(
        out, Header{.id = query.id,
                    .flags = flags,
                    .question_count = 1,
                    .answer_count = with_records ? answer.answer_count : std::uint16_t{0},
                    .authority_count = with_records ? answer.authority_count : std::uint16_t{0},
                    .additional_count = static_cast<std::uint16_t>(
                        (with_records ? answer.additional_count : 0) + (opt_size != 0 ? 1 : 0))});
    out.insert(out.end(), query.question_wire.begin(), query.question_wire.end());
    if (with_records) {
        const std::size_t records_at = out.size();
        out.insert(out.end(), answer.records.begin(), answer.records.end());
        for (const CachedAnswer::TtlField& field : answer.ttl_fields) {
            if (field.offset > answer.records.size() || answer.records.size() - field.offset < 4) {
                continue; // not made by analyze_upstream_response(); leave the bytes alone
            }
            const std::uint32_t aged = field.ttl > age_seconds ? field.ttl - age_seconds : 0;
            store_u32(out.data() + records_at + field.offset, aged);
        }
    }
    if (opt_size != 0) {
        append_opt(out);
    }
}

CachedAnswer address_only_answer(const CachedAnswer& original, std::uint16_t question_type,
                                 std::span<const IpAddress> addresses, std::uint32_t ttl) {
    // The question name right after the 12-byte header (RFC 1035 section 4.1.4).
    constexpr std::uint16_t kPointerToQuestion = 0xC000U | kHeaderSize;
    constexpr std::size_t kTtlOffsetInRecord = 6; // pointer, type, class
    CachedAnswer answer;
    answer.flags = original.flags;
    answer.question_size = original.question_size;
    const bool aaaa = question_type == type::kAaaa;
    for (const IpAddress& address : addresses) {
        std::array<std::uint8_t, 16> rdata{};
        std::span<const std::uint8_t> bytes = address.bytes();
        if (aaaa && address.is_v4()) {
            rdata[10] = 0xff;
            rdata[11] = 0xff;
            std::ranges::copy(bytes, rdata.begin() + 12);
            bytes = rdata;
        } else if (aaaa == address.is_v4()) {
            continue; // a record of the other type: not part of this answer
        }
        const auto ttl_at = static_cast<std::uint32_t>(answer.records.size() + kTtlOffsetInRecord);
        append_u16(answer.records, kPointerToQuestion);
        append_u16(answer.records, question_type);
        append_u16(answer.records, kClassIn);
        append_u32(answer.records, ttl);
        append_u16(answer.records, static_cast<std::uint16_t>(bytes.size()));
        answer.records.insert(answer.records.end(), bytes.begin(), bytes.end());
        answer.ttl_fields.push_back({.offset = ttl_at, .ttl = ttl});
        ++answer.answer_count;
    }
    return answer;
}

} // namespace pw::dns
