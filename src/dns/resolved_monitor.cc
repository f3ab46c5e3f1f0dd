#include "dns/resolved_monitor.h"

#include <sys/un.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>

#include "dns/message.h"

namespace pw::dns {
namespace {

namespace asio = boost::asio;
using Json = nlohmann::json;
using std::string_view_literals::operator""sv;

// The varlink call (https://varlink.org/Method-Call): "more" asks for a stream of replies, one per
// lookup resolved completes. Every varlink message ends with a NUL byte, this one included.
constexpr std::string_view kSubscribeRequest =
    R"({"method":"io.systemd.Resolve.Monitor.SubscribeQueryResults","parameters":{},"more":true})"
    "\0"sv;

// resolved's replies are a few KiB; a DNS answer cannot exceed 64 KiB on the wire, and its JSON
// form is a small multiple of that. Anything bigger is not resolved talking.
constexpr std::size_t kMaxMessageSize = std::size_t{1} << 20;
// resolved nests five levels deep (message, parameters, answer array, item, rr, key). The cap
// keeps hostile nesting away from the JSON library.
constexpr int kMaxJsonDepth = 32;
// More records than fit into a 64 KiB DNS message.
constexpr std::size_t kMaxArrayElements = 8192;
// As for upstream answers (message.h): at most 16 CNAME hops from the question name.
constexpr std::size_t kMaxCnameHops = 16;
// RFC 1035 2.3.4.
constexpr std::size_t kMaxLabelLength = 63;
constexpr std::size_t kMaxNameWireLength = 255;

// ---------------------------------------------------------------------------------------------
// Pure helpers for parse_monitor_message.

// One varlink reply, as far as the monitor cares.
struct Reply {
    std::optional<MonitoredAnswer> answer;
    bool continues = false; // false on the call's last reply: the subscription is over
    std::string error;      // the varlink error name ("io.systemd.System"); empty if none
};

// One answer record we can use (A, AAAA or CNAME of class IN).
struct Record {
    std::string owner;
    std::uint16_t type = 0;
    std::optional<IpAddress> address; // A and AAAA
    std::string target;               // CNAME
    std::optional<std::uint32_t> ttl; // from the record's wire form, when resolved sent it
};

const Json* member(const Json::object_t& object, const char* key) {
    const auto found = object.find(key);
    return found == object.end() ? nullptr : &found->second;
}

std::optional<std::uint64_t> as_unsigned(const Json& value) {
    // nlohmann stores every non-negative integer literal as number_unsigned; negative ones and
    // fractions are other types and therefore refused here.
    const auto* number = value.get_ptr<const Json::number_unsigned_t*>();
    if (number == nullptr) {
        return std::nullopt;
    }
    return *number;
}

// True when `text` never nests arrays and objects deeper than `limit`. Counts brackets outside
// strings only; whether the text is JSON at all is the parser's business.
bool nesting_within(std::string_view text, int limit) {
    int depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (const char c : text) {
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit) {
                return false;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return true;
}

// RFC 4648 section 4, padding optional; nullopt on any other character.
std::optional<std::vector<std::uint8_t>> decode_base64(std::string_view text) {
    while (!text.empty() && text.back() == '=') {
        text.remove_suffix(1);
    }
    const auto value_of = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') {
            return c - 'A';
        }
        if (c >= 'a' && c <= 'z') {
            return c - 'a' + 26;
        }
        if (c >= '0' && c <= '9') {
            return c - '0' + 52;
        }
        if (c == '+') {
            return 62;
        }
        if (c == '/') {
            return 63;
        }
        return -1;
    };
    std::vector<std::uint8_t> out;
    out.reserve(text.size() / 4 * 3 + 2);
    std::uint32_t bits = 0;
    int bit_count = 0;
    for (const char c : text) {
        const int value = value_of(c);
        if (value < 0) {
            return std::nullopt;
        }
        bits = (bits << 6U) | static_cast<std::uint32_t>(value);
        bit_count += 6;
        if (bit_count >= 8) {
            bit_count -= 8;
            out.push_back(static_cast<std::uint8_t>(bits >> static_cast<unsigned>(bit_count)));
        }
    }
    return out;
}

// resolved's JSON form of a record has no TTL (systemd 252-256 at least), but each answer item
// carries "raw": the record in wire format (owner name uncompressed, type, class, TTL, rdata),
// base64. Returns its TTL when `raw` is such a record of `expected_type`.
std::optional<std::uint32_t> ttl_from_raw(std::string_view raw, std::uint16_t expected_type) {
    const auto wire = decode_base64(raw);
    if (!wire) {
        return std::nullopt;
    }
    const std::vector<std::uint8_t>& bytes = *wire;
    std::size_t position = 0;
    while (true) {
        if (position >= bytes.size() || position >= kMaxNameWireLength) {
            return std::nullopt;
        }
        const std::size_t length = bytes[position];
        if (length == 0) {
            ++position;
            break;
        }
        if (length > kMaxLabelLength) {
            return std::nullopt; // compression pointers and extended label types included
        }
        position += 1 + length;
    }
    constexpr std::size_t kFixedFields = 10; // type, class, TTL, rdata length
    if (bytes.size() - position < kFixedFields) {
        return std::nullopt;
    }
    const auto byte = [&](std::size_t offset) -> std::uint32_t {
        return bytes[position + offset];
    };
    const auto type = static_cast<std::uint16_t>(byte(0) << 8U | byte(1));
    if (type != expected_type) {
        return std::nullopt;
    }
    const std::uint32_t ttl = byte(4) << 24U | byte(5) << 16U | byte(6) << 8U | byte(7);
    // RFC 2181 section 8: a TTL with the top bit set counts as zero.
    return ttl > 0x7fffffffU ? 0 : ttl;
}

Result<IpAddress> parse_address(const Json& value, std::size_t length) {
    const auto* array = value.get_ptr<const Json::array_t*>();
    if (array == nullptr || array->size() != length) {
        return fail("rr.address: not an array of " + std::to_string(length) + " bytes");
    }
    std::array<std::uint8_t, 16> bytes{};
    for (std::size_t i = 0; i < length; ++i) {
        const auto byte = as_unsigned((*array)[i]);
        if (!byte || *byte > 255) {
            return fail("rr.address: element " + std::to_string(i) + " is not a byte");
        }
        bytes[i] = static_cast<std::uint8_t>(*byte);
    }
    if (length == 4) {
        return IpAddress::from_v4_bytes(std::span<const std::uint8_t, 4>(bytes.data(), 4));
    }
    return IpAddress::from_v6_bytes(std::span<const std::uint8_t, 16>(bytes.data(), 16));
}

Result<std::string> parse_name(const Json* value, std::string_view what) {
    const auto* text = value == nullptr ? nullptr : value->get_ptr<const Json::string_t*>();
    if (text == nullptr) {
        return fail(std::string(what) + ": not a string");
    }
    // The one normal form, as for names in client queries (dns/message.h).
    auto name = normalize_name(*text);
    if (!name) {
        return fail(std::string(what) + ": not a domain name");
    }
    return std::move(*name);
}

// The type-specific part of parse_record: the address or the CNAME target.
Status parse_record_data(const Json::object_t& rr, Record& record) {
    if (record.type == type::kCname) {
        auto target = parse_name(member(rr, "name"), "rr.name");
        if (!target) {
            return std::unexpected(std::move(target.error()));
        }
        record.target = std::move(*target);
        return {};
    }
    const Json* address = member(rr, "address");
    if (address == nullptr) {
        return fail("rr.address: missing");
    }
    auto parsed = parse_address(*address, record.type == type::kA ? 4 : 16);
    if (!parsed) {
        return std::unexpected(std::move(parsed.error()));
    }
    record.address = *parsed;
    return {};
}

// One element of "answer". nullopt for records we do not use: other types and classes, and
// records resolved could not break down (no "rr").
Result<std::optional<Record>> parse_record(const Json& item) {
    const auto* object = item.get_ptr<const Json::object_t*>();
    if (object == nullptr) {
        return fail("answer: element is not an object");
    }
    if (const Json* raw = member(*object, "raw"); raw != nullptr && !raw->is_string()) {
        return fail("answer.raw: not a string");
    }
    const Json* rr_value = member(*object, "rr");
    if (rr_value == nullptr || rr_value->is_null()) {
        return std::nullopt;
    }
    const auto* rr = rr_value->get_ptr<const Json::object_t*>();
    const Json* key_value = rr == nullptr ? nullptr : member(*rr, "key");
    const auto* key = key_value == nullptr ? nullptr : key_value->get_ptr<const Json::object_t*>();
    if (key == nullptr) {
        return fail("answer.rr.key: not an object");
    }
    const Json* type_value = member(*key, "type");
    const auto type = type_value == nullptr ? std::nullopt : as_unsigned(*type_value);
    if (!type || *type > 0xffff) {
        return fail("answer.rr.key.type: not a record type");
    }
    std::optional<std::uint64_t> record_class = kClassIn;
    if (const Json* class_value = member(*key, "class"); class_value != nullptr) {
        record_class = as_unsigned(*class_value);
    }
    if (!record_class || *record_class > 0xffff) {
        return fail("answer.rr.key.class: not a record class");
    }
    auto owner = parse_name(member(*key, "name"), "answer.rr.key.name");
    if (!owner) {
        return std::unexpected(std::move(owner.error()));
    }
    const bool wanted = *type == type::kA || *type == type::kAaaa || *type == type::kCname;
    if (!wanted || *record_class != kClassIn) {
        return std::nullopt;
    }
    Record record;
    record.owner = std::move(*owner);
    record.type = static_cast<std::uint16_t>(*type);
    if (const auto status = parse_record_data(*rr, record); !status) {
        return std::unexpected(status.error());
    }
    if (const Json* raw = member(*object, "raw"); raw != nullptr) {
        record.ttl = ttl_from_raw(raw->get_ref<const Json::string_t&>(), record.type);
    }
    return record;
}

Result<std::vector<Record>> parse_answer_records(const Json::object_t& parameters) {
    std::vector<Record> records;
    const Json* answer = member(parameters, "answer");
    if (answer == nullptr) {
        return records;
    }
    const auto* items = answer->get_ptr<const Json::array_t*>();
    if (items == nullptr) {
        return fail("answer: not an array");
    }
    if (items->size() > kMaxArrayElements) {
        return fail("answer: more than " + std::to_string(kMaxArrayElements) + " records");
    }
    for (const Json& item : *items) {
        auto record = parse_record(item);
        if (!record) {
            return std::unexpected(std::move(record.error()));
        }
        if (std::optional<Record>& usable = *record; usable.has_value()) {
            records.push_back(std::move(*usable));
        }
    }
    return records;
}

// The names in a "question" or "collectedQuestions" array (each element a ResourceKey).
Result<std::vector<std::string>> parse_question_names(const Json::object_t& parameters,
                                                      const char* field) {
    std::vector<std::string> names;
    const Json* value = member(parameters, field);
    if (value == nullptr) {
        return names;
    }
    const auto* keys = value->get_ptr<const Json::array_t*>();
    if (keys == nullptr || keys->size() > kMaxArrayElements) {
        return fail(std::string(field) + ": not an array of resource keys");
    }
    for (const Json& key_value : *keys) {
        const auto* key = key_value.get_ptr<const Json::object_t*>();
        if (key == nullptr) {
            return fail(std::string(field) + ": element is not an object");
        }
        auto name = parse_name(member(*key, "name"), std::string(field) + ".name");
        if (!name) {
            return std::unexpected(std::move(name.error()));
        }
        names.push_back(std::move(*name));
    }
    return names;
}

// The name the client asked for. When resolved follows a CNAME it asks again for the target:
// "question" then holds the last name of the chain and "collectedQuestions" the ones before it,
// the client's own first (systemd's dns_query_cname_redirect). The answer keeps the records of
// every step, so the chain can be followed from the client's name.
Result<std::string> asked_name(const Json::object_t& parameters) {
    auto collected = parse_question_names(parameters, "collectedQuestions");
    if (!collected) {
        return std::unexpected(std::move(collected.error()));
    }
    auto question = parse_question_names(parameters, "question");
    if (!question) {
        return std::unexpected(std::move(question.error()));
    }
    if (!collected->empty()) {
        return std::move(collected->front());
    }
    if (!question->empty()) {
        return std::move(question->front());
    }
    return fail("question: missing or empty");
}

// Follows the CNAME chain from `name` through `records` and collects the addresses at its end.
std::optional<MonitoredAnswer> follow_chain(std::string name, const std::vector<Record>& records) {
    MonitoredAnswer answer;
    answer.name = std::move(name);
    std::optional<std::uint32_t> ttl;
    const auto use_ttl = [&ttl](const Record& record) {
        if (record.ttl && (!ttl || *record.ttl < *ttl)) {
            ttl = record.ttl;
        }
    };
    const std::string* current = &answer.name;
    for (std::size_t hops = 0;; ++hops) {
        const auto cname = std::ranges::find_if(records, [&](const Record& record) {
            return record.type == type::kCname && record.owner == *current;
        });
        if (cname == records.end()) {
            break;
        }
        if (hops == kMaxCnameHops) {
            return std::nullopt; // a loop, or a chain longer than we follow anywhere else
        }
        use_ttl(*cname);
        answer.cname_chain.push_back(cname->target);
        current = &cname->target;
    }
    for (const Record& record : records) {
        if (!record.address || record.owner != *current) {
            continue;
        }
        use_ttl(record);
        // resolved merges the answers of its A and AAAA transactions, which may repeat records.
        if (std::ranges::find(answer.addresses, *record.address) == answer.addresses.end()) {
            answer.addresses.push_back(*record.address);
        }
    }
    if (answer.addresses.empty()) {
        return std::nullopt;
    }
    answer.ttl = ttl.value_or(0);
    return answer;
}

Result<std::optional<MonitoredAnswer>> parse_parameters(const Json::object_t& parameters) {
    const Json* state_value = member(parameters, "state");
    if (state_value == nullptr) {
        return std::nullopt; // {"ready":true}, the subscription's first reply
    }
    const auto* state = state_value->get_ptr<const Json::string_t*>();
    if (state == nullptr) {
        return fail("state: not a string");
    }
    if (*state != "success") {
        return std::nullopt; // "rcode-failure", "errno", "no-servers", "timeout", ...
    }
    auto name = asked_name(parameters);
    if (!name) {
        return std::unexpected(std::move(name.error()));
    }
    auto records = parse_answer_records(parameters);
    if (!records) {
        return std::unexpected(std::move(records.error()));
    }
    return follow_chain(std::move(*name), *records);
}

Result<Reply> parse_reply(std::string_view text) {
    if (text.size() > kMaxMessageSize) {
        return fail("message larger than 1 MiB");
    }
    // Varlink ends every message with a NUL, so one inside means two messages run together (and
    // nlohmann's parser would quietly stop at it).
    if (text.find('\0') != std::string_view::npos) {
        return fail("NUL byte inside the message");
    }
    if (!nesting_within(text, kMaxJsonDepth)) {
        return fail("JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    }
    const Json document =
        Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (document.is_discarded()) {
        return fail("not JSON");
    }
    const auto* message = document.get_ptr<const Json::object_t*>();
    if (message == nullptr) {
        return fail("not a JSON object");
    }
    Reply reply;
    if (const Json* continues = member(*message, "continues"); continues != nullptr) {
        const auto* flag = continues->get_ptr<const Json::boolean_t*>();
        if (flag == nullptr) {
            return fail("continues: not a boolean");
        }
        reply.continues = *flag;
    }
    if (const Json* error = member(*message, "error"); error != nullptr) {
        const auto* name = error->get_ptr<const Json::string_t*>();
        if (name == nullptr || name->empty()) {
            return fail("error: not an error name");
        }
        reply.error = *name;
        return reply;
    }
    const Json* parameters_value = member(*message, "parameters");
    if (parameters_value == nullptr) {
        return reply; // varlink may leave out empty parameters
    }
    const auto* parameters = parameters_value->get_ptr<const Json::object_t*>();
    if (parameters == nullptr) {
        return fail("parameters: not an object");
    }
    auto answer = parse_parameters(*parameters);
    if (!answer) {
        return std::unexpected(std::move(answer.error()));
    }
    reply.answer = std::move(*answer);
    return reply;
}

} // namespace

Result<std::optional<MonitoredAnswer>> parse_monitor_message(std::string_view text) {
    auto reply = parse_reply(text);
    if (!reply) {
        return std::unexpected(std::move(reply.error()));
    }
    if (!reply->error.empty()) {
        return fail("varlink error reply: " + reply->error);
    }
    return std::move(reply->answer);
}

// ---------------------------------------------------------------------------------------------
// The connection.

namespace {

// Closing fails only for a socket that is not open, which leaves nothing to do either way.
void close_quietly(asio::local::stream_protocol::socket& socket) {
    boost::system::error_code ignored;
    // NOLINTNEXTLINE(bugprone-unused-return-value): the same error is in `ignored`, unused.
    socket.close(ignored);
}

} // namespace

// Everything the monitor's asynchronous operations touch. Handlers hold it by shared_ptr, so
// that stop() and ~ResolvedMonitor can return while operations are still pending: the handlers
// run later (aborted), find `generation` moved on and return without touching anything else.
struct ResolvedMonitor::State : std::enable_shared_from_this<ResolvedMonitor::State> {
    State(asio::io_context& io, std::filesystem::path path, OnAnswer callback,
          std::chrono::milliseconds interval)
        : socket_path(std::move(path)),
          on_answer(std::move(callback)),
          reconnect_interval(interval),
          socket(io),
          reconnect_timer(io) {}

    // What to do after one message.
    enum class Next : std::uint8_t { KeepReading, Reconnect };

    void connect();
    void on_connected(const boost::system::error_code& error);
    void on_subscribed(const boost::system::error_code& error);
    void read();
    void on_read(std::uint64_t read_generation, const boost::system::error_code& error,
                 std::size_t size);
    Next handle_message(std::string_view text);
    void lose_connection();
    void schedule_reconnect();
    void stop();

    // A handler for an operation of the current connection: it runs only if the connection is
    // still the one that started the operation.
    template <typename Function>
    auto if_current(Function function) {
        return [self = shared_from_this(), expected = generation,
                function = std::move(function)](auto&&... arguments) {
            if (self->running && self->generation == expected) {
                function(*self, std::forward<decltype(arguments)>(arguments)...);
            }
        };
    }

    std::filesystem::path socket_path;
    OnAnswer on_answer;
    std::chrono::milliseconds reconnect_interval;
    asio::local::stream_protocol::socket socket;
    asio::steady_timer reconnect_timer;
    std::array<char, std::size_t{64} * 1024> chunk{};
    std::string pending;          // received bytes after the last NUL
    std::size_t scanned = 0;      // the leading part of `pending` known to hold no NUL
    std::uint64_t generation = 0; // moves on with every connection attempt and with stop()
    bool running = false;
    bool connected = false;
    Counters counters;
};

void ResolvedMonitor::State::connect() {
    ++generation;
    close_quietly(socket);
    pending.clear();
    scanned = 0;
    connected = false;
    // asio's endpoint throws on a path longer than sun_path; such a socket cannot exist, so it is
    // treated like an absent one.
    if (socket_path.native().size() >= sizeof(sockaddr_un::sun_path)) {
        schedule_reconnect();
        return;
    }
    socket.async_connect(asio::local::stream_protocol::endpoint(socket_path.native()),
                         if_current([](State& self, const boost::system::error_code& error) {
                             self.on_connected(error);
                         }));
}

void ResolvedMonitor::State::on_connected(const boost::system::error_code& error) {
    if (error) {
        // ENOENT or ECONNREFUSED: resolved is not running (yet). Normal; try again later.
        schedule_reconnect();
        return;
    }
    connected = true;
    asio::async_write(socket, asio::buffer(kSubscribeRequest.data(), kSubscribeRequest.size()),
                      if_current([](State& self, const boost::system::error_code& write_error,
                                    std::size_t /*written*/) { self.on_subscribed(write_error); }));
}

void ResolvedMonitor::State::on_subscribed(const boost::system::error_code& error) {
    if (error) {
        lose_connection();
        return;
    }
    ++counters.connections;
    read();
}

void ResolvedMonitor::State::read() {
    socket.async_read_some(asio::buffer(chunk),
                           [self = shared_from_this(), expected = generation](
                               const boost::system::error_code& error, std::size_t size) {
                               self->on_read(expected, error, size);
                           });
}

void ResolvedMonitor::State::on_read(std::uint64_t read_generation,
                                     const boost::system::error_code& error, std::size_t size) {
    if (!running || generation != read_generation) {
        return;
    }
    if (error) {
        lose_connection(); // EOF included: resolved restarted or went away
        return;
    }
    pending.append(chunk.data(), size);
    std::size_t start = 0;
    while (true) {
        const std::size_t nul = pending.find('\0', scanned);
        if (nul == std::string::npos) {
            break;
        }
        const Next next = handle_message(std::string_view(pending).substr(start, nul - start));
        // on_answer may have called stop() (and even start()): then this connection is over, and
        // `pending` belongs to the next one.
        if (!running || generation != read_generation) {
            return;
        }
        if (next == Next::Reconnect) {
            lose_connection();
            return;
        }
        start = nul + 1;
        scanned = start;
    }
    pending.erase(0, start);
    scanned = pending.size();
    if (pending.size() > kMaxMessageSize) {
        // No NUL within the limit: not resolved, and the message boundaries are lost.
        ++counters.malformed;
        lose_connection();
        return;
    }
    read();
}

ResolvedMonitor::State::Next ResolvedMonitor::State::handle_message(std::string_view text) {
    auto reply = parse_reply(text);
    if (!reply) {
        // One bad message does not lose the stream: the NUL framing still holds.
        ++counters.malformed;
        return Next::KeepReading;
    }
    if (!reply->error.empty()) {
        // resolved refused or ended the subscription (not root, shutting down). Not malformed.
        return Next::Reconnect;
    }
    if (const std::optional<MonitoredAnswer>& answer = reply->answer; answer.has_value()) {
        ++counters.answers;
        on_answer(*answer);
    }
    // A reply without "continues" is the call's last one: nothing more will come.
    return reply->continues ? Next::KeepReading : Next::Reconnect;
}

void ResolvedMonitor::State::lose_connection() {
    ++generation;
    connected = false;
    close_quietly(socket);
    schedule_reconnect();
}

void ResolvedMonitor::State::schedule_reconnect() {
    reconnect_timer.expires_after(reconnect_interval);
    reconnect_timer.async_wait(if_current([](State& self, const boost::system::error_code& error) {
        if (!error) {
            self.connect();
        }
    }));
}

void ResolvedMonitor::State::stop() {
    running = false;
    ++generation;
    connected = false;
    close_quietly(socket);
    reconnect_timer.cancel();
}

ResolvedMonitor::ResolvedMonitor(boost::asio::io_context& io, std::filesystem::path socket_path,
                                 OnAnswer on_answer, std::chrono::milliseconds reconnect_interval)
    : state_(std::make_shared<State>(io, std::move(socket_path), std::move(on_answer),
                                     reconnect_interval)) {}

// stop() cannot throw: steady_timer::cancel() throws only the error asio's timer service sets,
// and that service never sets one.
// NOLINTNEXTLINE(bugprone-exception-escape): see above
ResolvedMonitor::~ResolvedMonitor() {
    stop();
}

void ResolvedMonitor::start() {
    if (state_->running) {
        return;
    }
    state_->running = true;
    state_->connect();
}

void ResolvedMonitor::stop() {
    state_->stop();
}

bool ResolvedMonitor::connected() const {
    return state_->connected;
}

const ResolvedMonitor::Counters& ResolvedMonitor::counters() const {
    return state_->counters;
}

} // namespace pw::dns
