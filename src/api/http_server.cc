#include "api/http_server.h"

#include <array>
#include <cstring>
#include <list>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>

#include "api/browser_guard.h"
#include "api/router.h"

namespace pw::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
using ErrorCode = boost::system::error_code;

// Room for a request's header and the part of a body read ahead of the parser. Beast reads at
// most 64 KiB at a time; bodies go to the request's string, bounded by max_body_bytes.
constexpr std::size_t kReadAhead = std::size_t{64} * 1024;
// How long a closing connection keeps reading (and discarding) what the client still sends, so
// that its unread data does not turn our last answer (a 413, say) into a reset before the client
// has read it.
constexpr std::chrono::seconds kLingerTime{2};
constexpr std::chrono::milliseconds kAcceptRetryPause{100};
// An event-stream client: its handshake (and its closing handshake) must be done within this,
// and a closing client within it too, even when it reads nothing (then its socket is closed).
constexpr std::chrono::seconds kStreamHandshakeTime{10};
// An event-stream client that sends nothing (not even a pong to our pings) for this long is gone.
constexpr std::chrono::seconds kStreamIdleTime{60};
// What an event-stream client may send: pings and closes only, so a data frame is small or wrong.
constexpr std::size_t kStreamMaxClientMessage = 1024;

asio::ip::address to_asio(const IpAddress& address) {
    if (address.is_v4()) {
        asio::ip::address_v4::bytes_type bytes{};
        std::memcpy(bytes.data(), address.bytes().data(), bytes.size());
        return asio::ip::address_v4(bytes);
    }
    asio::ip::address_v6::bytes_type bytes{};
    std::memcpy(bytes.data(), address.bytes().data(), bytes.size());
    return asio::ip::address_v6(bytes);
}

IpAddress from_asio(const asio::ip::address& address) {
    if (address.is_v4()) {
        const auto bytes = address.to_v4().to_bytes();
        return IpAddress::from_v4_bytes(std::span<const std::uint8_t, 4>(bytes));
    }
    const auto bytes = address.to_v6().to_bytes();
    return IpAddress::from_v6_bytes(std::span<const std::uint8_t, 16>(bytes));
}

std::string_view to_std(beast::string_view text) {
    return {text.data(), text.size()};
}

class Session;
using SessionTable = std::list<std::shared_ptr<Session>>;
class EventSession;
using EventSessionTable = std::list<std::shared_ptr<EventSession>>;

} // namespace

// Everything the connections share: limits, the seams, the router, the connection table. Owned
// by the HttpServer and by the pending handlers of its acceptors and connections, which may run
// (cancelled) after the server object is gone; after stop() none of them calls the seams again.
class HttpServer::Impl : public std::enable_shared_from_this<HttpServer::Impl> {
public:
    Impl(asio::io_context& io, ServerLimits limits, CallerLookup& callers, AccessPolicy& access,
         Backend& backend, EventHub* events)
        : io_(io),
          limits_(limits),
          callers_(callers),
          access_(access),
          router_(backend),
          events_(events) {}

    Status bind(const std::vector<ListenEndpoint>& endpoints);
    void serve();
    void stop();

    // A connection saw a whole request: it moves to the back of the idle order.
    void session_active(const Session& session);
    void session_closed(const Session& session);
    // A request passed the checks and asks for the event stream: the connection leaves the
    // table of HTTP sessions for the event session (which answers the handshake).
    void upgrade(const Session& session, beast::tcp_stream stream,
                 http::request<http::string_body> request);
    void event_session_closed(const EventSession& session);
    [[nodiscard]] EventHub* events() { return events_; }
    [[nodiscard]] std::size_t event_stream_count() const { return event_sessions_.size(); }

    [[nodiscard]] const ServerLimits& limits() const { return limits_; }
    [[nodiscard]] Router& router() { return router_; }
    [[nodiscard]] const AccessPolicy& access() const { return access_; }
    [[nodiscard]] Counters& counters() { return counters_; }
    [[nodiscard]] const Counters& counters() const { return counters_; }
    [[nodiscard]] std::size_t connection_count() const { return sessions_.size(); }
    [[nodiscard]] std::vector<ListenEndpoint> endpoints() const;

private:
    struct Listener {
        Listener(asio::io_context& io, ListenEndpoint where)
            : acceptor(io), retry(io), endpoint(where) {}
        asio::ip::tcp::acceptor acceptor;
        asio::steady_timer retry;
        ListenEndpoint endpoint;
    };

    void accept(Listener& listener);
    void on_accept_error(Listener& listener, const ErrorCode& error);
    void admit(asio::ip::tcp::socket socket);
    bool close_longest_idle();

    asio::io_context& io_;
    ServerLimits limits_;
    CallerLookup& callers_;
    AccessPolicy& access_;
    Router router_;
    std::vector<std::unique_ptr<Listener>> listeners_;
    // Open connections, longest idle first. The table owns them (besides their handlers).
    SessionTable sessions_;
    EventHub* events_;
    EventSessionTable event_sessions_;
    Counters counters_;
    bool stopped_ = false;
};

namespace {

// One client connection: reads a request, answers it (now or when the backend calls back),
// reads the next. While the backend works, it keeps reading (into the buffer, for the next
// request) only to notice a client that leaves.
class Session : public std::enable_shared_from_this<Session> {
public:
    Session(std::shared_ptr<HttpServer::Impl> server, asio::ip::tcp::socket socket,
            ServerAddress local, std::optional<Caller> caller, bool allowed)
        : server_(std::move(server)),
          stream_(std::move(socket)),
          buffer_(server_->limits().max_header_bytes + kReadAhead),
          answer_timer_(stream_.get_executor()),
          local_(local),
          caller_(std::move(caller)),
          allowed_(allowed) {}

    void start(SessionTable::iterator position) {
        position_ = position;
        read_request();
    }
    void close();
    // Waiting for a request (or lingering before close): nothing is lost by closing it.
    [[nodiscard]] bool idle() const { return state_ == State::Reading || state_ == State::Closing; }
    [[nodiscard]] SessionTable::iterator position() const { return position_; }

private:
    enum class State : std::uint8_t { Reading, Waiting, Writing, Closing, Closed };
    // Whether the connection stays open after an answer.
    enum class After : std::uint8_t { KeepAlive, Close };

    void read_request();
    void on_read(const ErrorCode& error);
    void process();
    void on_answer(std::uint64_t request, Reply reply);
    void watch_peer();
    void on_watch(const ErrorCode& error, std::size_t bytes);
    void write(Reply reply, After after);
    void on_write(const ErrorCode& error);
    void linger();
    void upgrade();

    std::shared_ptr<HttpServer::Impl> server_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    http::response<http::string_body> response_;
    asio::steady_timer answer_timer_;
    ServerAddress local_;
    std::optional<Caller> caller_;
    bool allowed_ = false;
    SessionTable::iterator position_;
    State state_ = State::Reading;
    std::uint64_t request_ = 0;  // numbers the requests, so a late answer finds no match
    bool watching_ = false;      // a read is pending while the backend works
    std::optional<Reply> ready_; // the answer that came while that read was pending
    bool request_keep_alive_ = true;
    std::array<char, 4096> discard_{}; // what a closing connection still receives
};

void Session::read_request() {
    state_ = State::Reading;
    parser_.emplace();
    parser_->body_limit(server_->limits().max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(server_->limits().max_header_bytes));
    stream_.expires_after(server_->limits().idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](const ErrorCode& error, std::size_t /*bytes*/) {
                         self->on_read(error);
                     });
}

void Session::on_read(const ErrorCode& error) {
    if (state_ == State::Closed) {
        return;
    }
    HttpServer::Counters& counters = server_->counters();
    if (!error) {
        ++counters.requests;
        server_->session_active(*this);
        process();
        return;
    }
    if (error == http::error::body_limit) {
        ++counters.malformed;
        write(error_reply(413, "the body is larger than " +
                                   std::to_string(server_->limits().max_body_bytes) + " bytes"),
              After::Close);
        return;
    }
    if (error == http::error::header_limit || error == http::error::buffer_overflow) {
        ++counters.malformed;
        write(error_reply(431, "the request's header is larger than " +
                                   std::to_string(server_->limits().max_header_bytes) + " bytes"),
              After::Close);
        return;
    }
    const bool http_error =
        error.category() == http::make_error_code(http::error::bad_target).category();
    if (http_error && error != http::error::end_of_stream &&
        error != http::error::partial_message) {
        ++counters.malformed;
        write(error_reply(400, "malformed HTTP request: " + error.message()), After::Close);
        return;
    }
    if (error == beast::error::timeout) {
        ++counters.timeouts;
    }
    close(); // the client left, or sent nothing whole in time
}

void Session::process() {
    if (!parser_) {
        close(); // cannot happen: read_request() made it, on_read() saw it complete
        return;
    }
    const http::request<http::string_body>& request = parser_->get();
    request_keep_alive_ = request.keep_alive();
    HttpServer::Counters& counters = server_->counters();
    // First, the Host: exactly one, naming this server (RFC 9112 3.2: 400 when missing or
    // repeated).
    if (request.count(http::field::host) != 1) {
        ++counters.malformed;
        write(error_reply(400, "a request must have exactly one Host header"), After::Close);
        return;
    }
    if (auto refusal = host_refusal(to_std(request[http::field::host]), local_)) {
        ++counters.host_refusals;
        write(error_reply(403, std::move(*refusal)), After::KeepAlive);
        return;
    }
    // Second, a browser's page of another site.
    if (const std::size_t origins = request.count(http::field::origin); origins != 0) {
        std::optional<std::string> refusal =
            origins == 1 ? origin_refusal(to_std(request[http::field::origin]), local_)
                         : std::optional<std::string>(
                               "a request must not have more than one "
                               "Origin header");
        if (refusal) {
            ++counters.origin_refusals;
            write(error_reply(403, std::move(*refusal)), After::KeepAlive);
            return;
        }
    }
    // Third, who the caller is. A refused caller's connection closes: it has nothing else to
    // do here, and its slot is free for others.
    if (!allowed_) {
        ++counters.access_refusals;
        write(error_reply(403, server_->access().refusal(caller_)), After::Close);
        return;
    }
    // The event stream is a WebSocket: its upgrade is answered here, not by the router (which
    // answers a plain GET of the route with a 400 saying so).
    if (websocket::is_upgrade(request) &&
        to_std(request.target()).substr(0, to_std(request.target()).find('?')) ==
            kEventStreamPath) {
        upgrade();
        return;
    }
    // Last, the route. The backend may answer now (inside handle()) or later.
    state_ = State::Waiting;
    const std::uint64_t number = ++request_;
    answer_timer_.expires_after(server_->limits().answer_timeout);
    answer_timer_.async_wait([weak = weak_from_this(), number](const ErrorCode& error) {
        const auto self = weak.lock();
        if (error || !self) {
            return;
        }
        ++self->server_->counters().answer_timeouts;
        self->on_answer(number, error_reply(503,
                                            "the daemon did not answer in time; the change "
                                            "may still be made: check before trying again"));
    });
    const auto content_type = request.find(http::field::content_type);
    server_->router().handle(
        Request{.method = to_std(request.method_string()),
                .target = to_std(request.target()),
                .content_type = content_type == request.end() ? std::nullopt
                                                              : std::optional<std::string_view>(
                                                                    to_std(content_type->value())),
                .body = request.body()},
        // The connection may be gone when the answer comes: a weak reference, checked then.
        [weak = weak_from_this(), number](Reply reply) {
            if (const auto self = weak.lock()) {
                self->on_answer(number, std::move(reply));
            }
        });
    if (state_ == State::Waiting && !watching_) {
        watch_peer();
    }
}

void Session::on_answer(std::uint64_t request, Reply reply) {
    if (state_ != State::Waiting || request != request_) {
        return; // late (after a timeout), twice, or the connection is closing
    }
    answer_timer_.cancel();
    if (watching_) {
        // The pending read must finish before the answer goes out; its handler sends it.
        ready_ = std::move(reply);
        state_ = State::Writing;
        stream_.socket().cancel();
        return;
    }
    write(std::move(reply), After::KeepAlive);
}

void Session::watch_peer() {
    if (buffer_.size() >= buffer_.max_size()) {
        return; // a full buffer of pipelined requests: stop reading until this one is answered
    }
    watching_ = true;
    stream_.expires_never(); // the answer timer bounds the wait
    const std::size_t room = std::min(buffer_.max_size() - buffer_.size(), kReadAhead);
    stream_.async_read_some(buffer_.prepare(room),
                            [self = shared_from_this()](const ErrorCode& error, std::size_t bytes) {
                                self->on_watch(error, bytes);
                            });
}

void Session::on_watch(const ErrorCode& error, std::size_t bytes) {
    watching_ = false;
    if (state_ == State::Closed) {
        return;
    }
    if (!error) {
        buffer_.commit(bytes);
    }
    if (ready_) {
        Reply reply = std::move(*ready_);
        ready_.reset();
        write(std::move(reply), After::KeepAlive);
        return;
    }
    if (error) {
        // The client closed (or reset) the connection before its answer: nobody is left to read
        // it. The backend's answer, when it comes, finds the connection gone.
        ++server_->counters().abandoned;
        close();
        return;
    }
    watch_peer();
}

void Session::write(Reply reply, After after) {
    if (reply.status < 100 || reply.status > 599) {
        reply = error_reply(500, "internal error: the daemon answered with HTTP status " +
                                     std::to_string(reply.status));
    }
    response_ = {};
    response_.version(11);
    response_.result(static_cast<unsigned>(reply.status));
    response_.set(http::field::server, "portwarden");
    response_.set(http::field::cache_control, "no-store");
    response_.set("X-Content-Type-Options", "nosniff");
    if (!reply.allow.empty()) {
        std::string allow;
        for (const std::string& method : reply.allow) {
            allow += (allow.empty() ? "" : ", ") + method;
        }
        response_.set(http::field::allow, allow);
    }
    if (!reply.body.is_null()) {
        response_.set(http::field::content_type, "application/json");
        // Invalid UTF-8 (a percent-decoded ID quoted in an error) is replaced, not thrown.
        response_.body() =
            reply.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    response_.keep_alive(after == After::KeepAlive && request_keep_alive_);
    response_.prepare_payload();
    state_ = State::Writing;
    stream_.expires_after(server_->limits().idle_timeout);
    http::async_write(stream_, response_,
                      [self = shared_from_this()](const ErrorCode& error, std::size_t /*bytes*/) {
                          self->on_write(error);
                      });
}

void Session::on_write(const ErrorCode& error) {
    if (state_ == State::Closed) {
        return;
    }
    if (error) {
        close();
        return;
    }
    if (!response_.keep_alive()) {
        linger();
        return;
    }
    read_request();
}

void Session::linger() {
    if (state_ != State::Closing) {
        state_ = State::Closing;
        ErrorCode ignored;
        // NOLINTNEXTLINE(bugprone-unused-return-value): the error is in `ignored`, unused.
        stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
        stream_.expires_after(kLingerTime);
    }
    stream_.async_read_some(
        asio::buffer(discard_), [self = shared_from_this()](const ErrorCode& error, std::size_t) {
            if (self->state_ == State::Closed) {
                return;
            }
            if (error) {
                self->close(); // the client closed its side too, or the linger time is over
                return;
            }
            self->linger();
        });
}

void Session::upgrade() {
    if (!parser_) {
        close(); // cannot happen: process() saw the request
        return;
    }
    EventHub* hub = server_->events();
    if (hub == nullptr || hub->full()) {
        ++server_->counters().event_streams_refused;
        write(
            error_reply(503, hub == nullptr ? std::string("this server has no event stream")
                                            : "the event stream has its " +
                                                  std::to_string(hub->limits().max_clients) +
                                                  " clients already: try again when one has left"),
            After::KeepAlive);
        return;
    }
    ++server_->counters().event_streams;
    // The socket is the event session's from now on: this session ends without closing it.
    state_ = State::Closed;
    const auto keep = shared_from_this(); // the table's reference goes below
    answer_timer_.cancel();
    http::request<http::string_body> request = parser_->release();
    parser_.reset();
    server_->upgrade(*this, std::move(stream_), std::move(request));
}

void Session::close() {
    if (state_ == State::Closed) {
        return;
    }
    state_ = State::Closed;
    const auto keep = shared_from_this(); // the table's reference goes below
    answer_timer_.cancel();
    ErrorCode ignored;
    // NOLINTNEXTLINE(bugprone-unused-return-value): the error is in `ignored`, unused.
    stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    stream_.close();
    server_->session_closed(*this);
}

// One event-stream client (docs/api.md#event-stream): a WebSocket that the server writes the
// hub's messages to, one text message per event, in order, and that the client only closes or
// pings. Its queue is the hub's Subscription; the hub drops a client that falls behind
// (too_slow()), which is then closed with 1008 and the reason. Nothing here waits for the
// client: a write in flight that the client does not take is bounded by the close deadline.
class EventSession final : public std::enable_shared_from_this<EventSession>,
                           public EventStreamClient {
public:
    EventSession(std::shared_ptr<HttpServer::Impl> server, beast::tcp_stream stream,
                 http::request<http::string_body> request)
        : server_(std::move(server)),
          ws_(std::move(stream)),
          request_(std::move(request)),
          close_deadline_(ws_.get_executor()) {}

    // Subscribes to the hub and answers the handshake.
    void start(EventHub& hub, EventSessionTable::iterator position);
    // The server stops: the socket closes now, without a closing handshake.
    void close_now() { finish(); }
    [[nodiscard]] EventSessionTable::iterator position() const { return position_; }

    // EventStreamClient
    void events_ready() override {
        if (state_ == State::Open && !writing_) {
            write_next();
        }
    }
    void too_slow(std::string reason) override {
        begin_close(websocket::close_code::policy_error, reason);
    }

private:
    enum class State : std::uint8_t { Handshake, Open, Closing, Closed };

    void on_accept(const ErrorCode& error);
    void read();
    void on_read(const ErrorCode& error);
    void write_next();
    void on_write(const ErrorCode& error);
    void begin_close(websocket::close_code code, const std::string& reason);
    void send_close();
    void finish();

    std::shared_ptr<HttpServer::Impl> server_;
    websocket::stream<beast::tcp_stream> ws_;
    http::request<http::string_body> request_; // the upgrade, until the handshake is answered
    beast::flat_buffer incoming_;
    std::unique_ptr<EventHub::Subscription> subscription_;
    EventHub::Message in_flight_; // the message being written: the queue may be emptied meanwhile
    asio::steady_timer close_deadline_;
    std::optional<websocket::close_reason> close_;
    EventSessionTable::iterator position_;
    State state_ = State::Handshake;
    bool writing_ = false;
};

void EventSession::start(EventHub& hub, EventSessionTable::iterator position) {
    position_ = position;
    auto subscription = hub.subscribe(*this);
    if (!subscription) {
        finish(); // cannot happen: the session checked that the hub has room
        return;
    }
    subscription_ = std::move(*subscription);
    // The WebSocket's own timers from now on; the HTTP deadline would cut an idle stream.
    beast::get_lowest_layer(ws_).expires_never();
    ws_.set_option(websocket::stream_base::timeout{.handshake_timeout = kStreamHandshakeTime,
                                                   .idle_timeout = kStreamIdleTime,
                                                   .keep_alive_pings = true});
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& response) {
        response.set(http::field::server, "portwarden");
    }));
    ws_.read_message_max(kStreamMaxClientMessage);
    ws_.text(true);
    // One frame per event: simple clients (a script reading raw frames) need no reassembly.
    ws_.auto_fragment(false);
    ws_.async_accept(
        request_, [self = shared_from_this()](const ErrorCode& error) { self->on_accept(error); });
}

void EventSession::on_accept(const ErrorCode& error) {
    request_ = {};
    if (state_ == State::Closed) {
        return;
    }
    if (error) {
        finish(); // a malformed handshake (Beast answered it) or a client gone
        return;
    }
    read();
    if (state_ == State::Closing) {
        send_close(); // dropped (too slow) during the handshake
        return;
    }
    state_ = State::Open;
    if (!subscription_->empty()) {
        write_next();
    }
}

void EventSession::read() {
    ws_.async_read(incoming_, [self = shared_from_this()](const ErrorCode& error, std::size_t) {
        self->on_read(error);
    });
}

void EventSession::on_read(const ErrorCode& error) {
    if (state_ == State::Closed) {
        return;
    }
    if (error) {
        // The client closed (Beast answered its close frame), went silent or broke the
        // protocol; or our own close is done.
        finish();
        return;
    }
    incoming_.clear();
    if (state_ == State::Open) {
        begin_close(websocket::close_code::unknown_data,
                    "the event stream takes no messages: send only ping and close");
    }
    read(); // until the closing handshake ends
}

void EventSession::write_next() {
    in_flight_ = subscription_->take();
    writing_ = true;
    ws_.async_write(asio::buffer(*in_flight_),
                    [self = shared_from_this()](const ErrorCode& error, std::size_t /*bytes*/) {
                        self->on_write(error);
                    });
}

void EventSession::on_write(const ErrorCode& error) {
    writing_ = false;
    in_flight_.reset();
    if (state_ == State::Closed) {
        return;
    }
    if (error) {
        finish();
        return;
    }
    if (state_ == State::Closing) {
        send_close();
        return;
    }
    if (!subscription_->empty()) {
        write_next();
    }
}

void EventSession::begin_close(websocket::close_code code, const std::string& reason) {
    if (state_ == State::Closing || state_ == State::Closed) {
        return;
    }
    const bool handshake_done = state_ == State::Open;
    state_ = State::Closing;
    subscription_.reset(); // nothing more to send; the hub has room for another client
    close_ = websocket::close_reason(code, reason);
    // A client that reads nothing takes neither the write in flight nor the close frame: its
    // socket closes at this deadline instead.
    close_deadline_.expires_after(kStreamHandshakeTime);
    close_deadline_.async_wait([weak = weak_from_this()](const ErrorCode& error) {
        if (const auto self = weak.lock(); self && !error) {
            self->finish();
        }
    });
    if (handshake_done && !writing_) {
        send_close();
    }
}

void EventSession::send_close() {
    if (!close_) {
        finish(); // cannot happen: begin_close() set the reason
        return;
    }
    ws_.async_close(*close_, [self = shared_from_this()](const ErrorCode& /*error*/) {
        self->finish(); // the closing handshake is over, or failed: either way, done
    });
}

void EventSession::finish() {
    if (state_ == State::Closed) {
        return;
    }
    state_ = State::Closed;
    const auto keep = shared_from_this(); // the table's reference goes below
    close_deadline_.cancel();
    subscription_.reset();
    ErrorCode ignored;
    auto& socket = beast::get_lowest_layer(ws_).socket();
    // NOLINTNEXTLINE(bugprone-unused-return-value): the error is in `ignored`, unused.
    socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(ws_).close();
    server_->event_session_closed(*this);
}

} // namespace

Status HttpServer::Impl::bind(const std::vector<ListenEndpoint>& endpoints) {
    for (ListenEndpoint endpoint : endpoints) {
        auto listener = std::make_unique<Listener>(io_, endpoint);
        const asio::ip::tcp::endpoint where(to_asio(endpoint.address), endpoint.port);
        ErrorCode error;
        // Asio's error_code overloads return the error too: the chain stops at the first.
        if (listener->acceptor.open(where.protocol(), error) ||
            (where.address().is_v6() &&
             listener->acceptor.set_option(asio::ip::v6_only(true), error)) ||
            listener->acceptor.set_option(asio::socket_base::reuse_address(true), error) ||
            listener->acceptor.bind(where, error) ||
            listener->acceptor.listen(asio::socket_base::max_listen_connections, error)) {
            return fail(to_string(endpoint), error);
        }
        if (endpoint.port == 0) {
            listener->endpoint.port = listener->acceptor.local_endpoint(error).port();
        }
        listeners_.push_back(std::move(listener));
    }
    return {};
}

void HttpServer::Impl::serve() {
    for (auto& listener : listeners_) {
        accept(*listener);
    }
}

void HttpServer::Impl::accept(Listener& listener) {
    listener.acceptor.async_accept([self = shared_from_this(), &listener](
                                       const ErrorCode& error, asio::ip::tcp::socket socket) {
        if (self->stopped_) {
            return;
        }
        if (error) {
            self->on_accept_error(listener, error);
            return;
        }
        self->admit(std::move(socket));
        self->accept(listener);
    });
}

void HttpServer::Impl::on_accept_error(Listener& listener, const ErrorCode& error) {
    if (error == asio::error::connection_aborted) {
        accept(listener); // the client gave up before we accepted: nothing to wait for
        return;
    }
    // Out of descriptors (or memory): give up an idle connection for the waiting one, else wait
    // a little, since accepting again at once would fail at once, in a loop.
    const bool out_of_descriptors = error == boost::system::errc::too_many_files_open ||
                                    error == boost::system::errc::too_many_files_open_in_system;
    if (out_of_descriptors && close_longest_idle()) {
        ++counters_.evictions;
        accept(listener);
        return;
    }
    listener.retry.expires_after(kAcceptRetryPause);
    listener.retry.async_wait([self = shared_from_this(), &listener](const ErrorCode& timer_error) {
        if (!timer_error && !self->stopped_) {
            self->accept(listener);
        }
    });
}

void HttpServer::Impl::admit(asio::ip::tcp::socket socket) {
    ErrorCode error;
    const asio::ip::tcp::endpoint local = socket.local_endpoint(error);
    const asio::ip::tcp::endpoint peer =
        error ? asio::ip::tcp::endpoint() : socket.remote_endpoint(error);
    if (error) {
        return; // the client is gone already
    }
    // A newcomer wins over an idle connection, which may be one of many held open to keep
    // others out; the holder of an idle connection can connect again.
    if (sessions_.size() >= limits_.max_connections) {
        if (!close_longest_idle()) {
            ++counters_.connections_refused;
            return; // the socket closes as it goes out of scope
        }
        ++counters_.evictions;
    }
    // Who is calling is a property of the connection's socket: looked up once, here.
    const ConnectionEndpoints endpoints{.local_address = from_asio(local.address()),
                                        .local_port = local.port(),
                                        .peer_address = from_asio(peer.address()),
                                        .peer_port = peer.port()};
    std::optional<Caller> caller = callers_.find_caller(endpoints);
    const bool allowed = access_.allows(caller);
    ++counters_.connections;
    auto session = std::make_shared<Session>(
        shared_from_this(), std::move(socket),
        ServerAddress{.address = endpoints.local_address, .port = endpoints.local_port},
        std::move(caller), allowed);
    sessions_.push_back(session);
    session->start(std::prev(sessions_.end()));
}

bool HttpServer::Impl::close_longest_idle() {
    const auto victim =
        std::ranges::find_if(sessions_, [](const auto& session) { return session->idle(); });
    if (victim == sessions_.end()) {
        return false;
    }
    (*victim)->close(); // leaves the table
    return true;
}

void HttpServer::Impl::session_active(const Session& session) {
    sessions_.splice(sessions_.end(), sessions_, session.position());
}

void HttpServer::Impl::session_closed(const Session& session) {
    sessions_.erase(session.position());
}

void HttpServer::Impl::upgrade(const Session& session, beast::tcp_stream stream,
                               http::request<http::string_body> request) {
    sessions_.erase(session.position());
    auto event_session =
        std::make_shared<EventSession>(shared_from_this(), std::move(stream), std::move(request));
    event_sessions_.push_back(event_session);
    event_session->start(*events_, std::prev(event_sessions_.end()));
}

void HttpServer::Impl::event_session_closed(const EventSession& session) {
    event_sessions_.erase(session.position());
}

void HttpServer::Impl::stop() {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    ErrorCode ignored;
    for (auto& listener : listeners_) {
        listener->retry.cancel();
        // NOLINTNEXTLINE(bugprone-unused-return-value): the error is in `ignored`, unused.
        listener->acceptor.close(ignored);
    }
    while (!sessions_.empty()) {
        sessions_.front()->close(); // leaves the table
    }
    while (!event_sessions_.empty()) {
        event_sessions_.front()->close_now(); // leaves the table
    }
}

std::vector<ListenEndpoint> HttpServer::Impl::endpoints() const {
    std::vector<ListenEndpoint> out;
    out.reserve(listeners_.size());
    for (const auto& listener : listeners_) {
        out.push_back(listener->endpoint);
    }
    return out;
}

std::string to_string(const ListenEndpoint& endpoint) {
    if (endpoint.address.is_v4()) {
        return endpoint.address.to_string() + ":" + std::to_string(endpoint.port);
    }
    return "[" + endpoint.address.to_string() + "]:" + std::to_string(endpoint.port);
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(asio::io_context& io,
                                                      const std::vector<ListenEndpoint>& endpoints,
                                                      ServerLimits limits, CallerLookup& callers,
                                                      AccessPolicy& access, Backend& backend,
                                                      EventHub* events) {
    if (limits.max_connections == 0 || limits.idle_timeout <= std::chrono::seconds::zero() ||
        limits.answer_timeout <= std::chrono::seconds::zero() || limits.max_header_bytes == 0) {
        return fail("API server limits: connections, header size and timeouts must be above zero");
    }
    auto impl = std::make_shared<Impl>(io, limits, callers, access, backend, events);
    if (auto bound = impl->bind(endpoints); !bound) {
        impl->stop();
        return std::unexpected(bound.error());
    }
    impl->serve();
    // NOLINTNEXTLINE(cppcoreguidelines-owning-memory): the constructor is private.
    return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

// NOLINTNEXTLINE(bugprone-exception-escape): only bad_alloc, which ends the process anyway.
HttpServer::~HttpServer() {
    stop();
}

void HttpServer::stop() {
    impl_->stop();
}

std::vector<ListenEndpoint> HttpServer::endpoints() const {
    return impl_->endpoints();
}

const HttpServer::Counters& HttpServer::counters() const {
    return impl_->counters();
}

std::size_t HttpServer::connection_count() const {
    return impl_->connection_count();
}

std::size_t HttpServer::event_stream_count() const {
    return impl_->event_stream_count();
}

} // namespace pw::api
