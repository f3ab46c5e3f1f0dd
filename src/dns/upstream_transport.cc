#include "dns/upstream_transport.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "dns/asio_address.h"

namespace pw::dns {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using TlsStream = asio::ssl::stream<tcp::socket>;

constexpr std::size_t kHeaderSize = 12;
constexpr std::size_t kMaxMessageSize = 65535;
// Random IDs to try before giving up on a socket that has nearly every ID in flight.
constexpr int kIdAttempts = 64;

// Closing fails only for a socket that is not open, which leaves nothing to do either way.
template <typename Socket>
void close_quietly(Socket& socket) {
    boost::system::error_code ignored;
    // NOLINTNEXTLINE(bugprone-unused-return-value): the error is in `ignored`, unused.
    socket.close(ignored);
}

std::unexpected<Error> network_error(std::string what, const boost::system::error_code& error) {
    // boost::system::error_code converts to std::error_code for system errors, which keeps
    // Error::message() as "what: Connection refused".
    return fail(std::move(what), std::error_code(error));
}

std::unexpected<Error> unusable_answer(const Error& error) {
    return fail("sent an unusable answer: " + error.message());
}

} // namespace

// -----------------------------------------------------------------------------------------------
// TLS context.

Result<std::shared_ptr<asio::ssl::context>> make_tls_context(const Upstream& upstream) {
    auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    // RFC 8310 section 9: nothing older than TLS 1.2.
    if (SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION) != 1) {
        return fail("dns/nameservers: cannot require TLS 1.2 for '" + upstream.url + "'");
    }
    boost::system::error_code error;
    // NOLINTNEXTLINE(bugprone-unused-return-value): the error is in `error`.
    context->set_verify_mode(asio::ssl::verify_peer, error);
    if (error) {
        return network_error(
            "dns/nameservers: cannot enable certificate verification for '" + upstream.url + "'",
            error);
    }
    if (upstream.ca_file) {
        const std::string what = "dns/nameservers: cannot load the CA file '" +
                                 upstream.ca_file->string() + "' given as verify= in '" +
                                 upstream.url + "'";
        // The OS's reason first ("No such file or directory"): OpenSSL's says less.
        if (::access(upstream.ca_file->c_str(), R_OK) != 0) {
            return fail_errno(what, errno);
        }
        // NOLINTNEXTLINE(bugprone-unused-return-value): the error is in `error`.
        context->load_verify_file(upstream.ca_file->string(), error);
        if (error) {
            // Boost's message carries OpenSSL's reason ("no certificate or crl found").
            return fail(what + ": " + error.message());
        }
    } else {
        // NOLINTNEXTLINE(bugprone-unused-return-value): the error is in `error`.
        context->set_default_verify_paths(error);
        if (error) {
            return network_error("dns/nameservers: cannot load the system's CA certificates for '" +
                                     upstream.url + "'",
                                 error);
        }
    }
    return context;
}

// -----------------------------------------------------------------------------------------------
// UDP.

// One connected UDP socket and the questions waiting for an answer on it. Shared between the
// UdpUpstream and its pending receive handler, so that closing it while a datagram is being
// handed over cannot free the buffer under the handler.
class UdpUpstream::Socket : public std::enable_shared_from_this<UdpUpstream::Socket> {
public:
    Socket(asio::io_context& io, std::uint64_t& mismatched)
        : socket_(io), mismatched_(mismatched) {}

    Status open(const udp::endpoint& upstream) {
        boost::system::error_code error;
        // NOLINTNEXTLINE(bugprone-unused-return-value): the error is in `error`.
        socket_.open(upstream.protocol(), error);
        if (!error) {
            // A connect() on UDP only sets the peer (and binds a random port); it does not block.
            // NOLINTNEXTLINE(bugprone-unused-return-value): the error is in `error`.
            socket_.connect(upstream, error);
        }
        if (error) {
            close_quietly(socket_);
            return network_error("could not open a UDP socket", error);
        }
        receive();
        return {};
    }

    [[nodiscard]] bool is_open() const { return socket_.is_open(); }

    // Registers `question` under a fresh ID and sends it.
    Result<std::unique_ptr<PendingExchange>> send(const Question& question, ExchangeCallback done,
                                                  std::mt19937& random);

    // Forgets a waiting question unless it already has been answered (and its ID reused).
    void forget(std::uint16_t id, std::uint64_t serial) {
        const auto waiter = waiters_.find(id);
        if (waiter != waiters_.end() && waiter->second.serial == serial) {
            waiters_.erase(waiter);
        }
    }

    void close() {
        waiters_.clear();
        close_quietly(socket_);
    }

private:
    struct Waiter {
        Question question;
        ExchangeCallback done;
        std::uint64_t serial = 0;
    };

    void receive() {
        socket_.async_receive(
            asio::buffer(buffer_),
            [self = shared_from_this()](const boost::system::error_code& error, std::size_t size) {
                self->on_receive(error, size);
            });
    }

    void on_receive(const boost::system::error_code& error, std::size_t size) {
        // Closed: the waiters are gone, and so may be the resolver that counts mismatches.
        if (error == asio::error::operation_aborted || !socket_.is_open()) {
            return;
        }
        if (error) {
            // An ICMP error (port or host unreachable) for the peer: it concerns every question
            // on this socket, since they all went to that peer. The socket itself stays usable.
            fail_all(network_error("network error", error));
        } else {
            deliver({buffer_.data(), size});
        }
        if (socket_.is_open()) {
            receive();
        }
    }

    void deliver(std::span<const std::uint8_t> datagram) {
        if (datagram.size() < kHeaderSize) {
            ++mismatched_;
            return;
        }
        const auto id = static_cast<std::uint16_t>((datagram[0] << 8) | datagram[1]);
        const auto waiter = waiters_.find(id);
        if (waiter == waiters_.end()) {
            ++mismatched_;
            return;
        }
        auto answer = analyze_upstream_response(datagram, waiter->second.question, id);
        if (!answer) {
            ++mismatched_;
            return;
        }
        // Take the callback out first: what it sets off may change waiters_.
        ExchangeCallback done = std::move(waiter->second.done);
        waiters_.erase(waiter);
        done(std::move(answer));
    }

    void fail_in_send(std::uint16_t id, std::uint64_t serial,
                      const boost::system::error_code& error) {
        const auto waiter = waiters_.find(id);
        if (waiter == waiters_.end() || waiter->second.serial != serial) {
            return;
        }
        ExchangeCallback done = std::move(waiter->second.done);
        waiters_.erase(waiter);
        done(network_error("network error", error));
    }

    void fail_all(const std::unexpected<Error>& error) {
        auto waiters = std::move(waiters_);
        waiters_.clear();
        for (auto& [id, waiter] : waiters) {
            waiter.done(error);
        }
    }

    udp::socket socket_;
    std::uint64_t& mismatched_;
    std::unordered_map<std::uint16_t, Waiter> waiters_;
    std::uint64_t next_serial_ = 0;
    std::array<std::uint8_t, kMaxMessageSize> buffer_{};
};

namespace {

// Abandons a UDP question by taking it off its socket's list.
class UdpExchange final : public PendingExchange {
public:
    UdpExchange(std::weak_ptr<UdpUpstream::Socket> socket, std::uint16_t id, std::uint64_t serial)
        : socket_(std::move(socket)), id_(id), serial_(serial) {}
    ~UdpExchange() override;
    UdpExchange(const UdpExchange&) = delete;
    UdpExchange& operator=(const UdpExchange&) = delete;
    UdpExchange(UdpExchange&&) = delete;
    UdpExchange& operator=(UdpExchange&&) = delete;

private:
    std::weak_ptr<UdpUpstream::Socket> socket_;
    std::uint16_t id_;
    std::uint64_t serial_;
};

} // namespace

Result<std::unique_ptr<PendingExchange>> UdpUpstream::Socket::send(const Question& question,
                                                                   ExchangeCallback done,
                                                                   std::mt19937& random) {
    std::uniform_int_distribution<std::uint16_t> any_id;
    std::optional<std::uint16_t> id;
    for (int attempt = 0; attempt < kIdAttempts && !id; ++attempt) {
        const std::uint16_t candidate = any_id(random);
        if (!waiters_.contains(candidate)) {
            id = candidate;
        }
    }
    if (!id) {
        return fail("has too many questions in flight");
    }
    auto query =
        std::make_shared<const std::vector<std::uint8_t>>(build_upstream_query(*id, question));
    if (query->empty()) {
        return fail("cannot be asked for an invalid name");
    }
    const std::uint64_t serial = ++next_serial_;
    waiters_.emplace(*id, Waiter{.question = question, .done = std::move(done), .serial = serial});
    socket_.async_send(asio::buffer(*query),
                       [self = shared_from_this(), query, id = *id, serial](
                           const boost::system::error_code& error, std::size_t /*sent*/) {
                           if (error && self->is_open()) {
                               self->fail_in_send(id, serial, error);
                           }
                       });
    return std::make_unique<UdpExchange>(weak_from_this(), *id, serial);
}

UdpExchange::~UdpExchange() {
    if (const auto socket = socket_.lock()) {
        socket->forget(id_, serial_);
    }
}

UdpUpstream::UdpUpstream(asio::io_context& io, Upstream upstream, std::mt19937& random,
                         std::uint64_t& mismatched)
    : io_(io), upstream_(std::move(upstream)), random_(random), mismatched_(mismatched) {}

UdpUpstream::~UdpUpstream() {
    close();
}

Result<std::unique_ptr<PendingExchange>> UdpUpstream::send(const Question& question,
                                                           ExchangeCallback done) {
    // Round robin over the pool; a socket closed by an error is opened again when its turn comes.
    std::shared_ptr<Socket>& socket = sockets_[next_socket_];
    next_socket_ = (next_socket_ + 1) % kSockets;
    if (!socket || !socket->is_open()) {
        auto fresh = std::make_shared<Socket>(io_, mismatched_);
        if (auto opened = fresh->open(udp::endpoint(to_asio(upstream_.address), upstream_.port));
            !opened) {
            return std::unexpected(opened.error());
        }
        socket = std::move(fresh);
    }
    return socket->send(question, std::move(done), random_);
}

void UdpUpstream::close() {
    for (auto& socket : sockets_) {
        if (socket) {
            socket->close();
            socket.reset();
        }
    }
}

// -----------------------------------------------------------------------------------------------
// TCP and TLS.

namespace {

class Abandonable {
public:
    virtual ~Abandonable() = default;
    virtual void abandon() = 0;
};

// One question over one connection: connect, [TLS handshake], write, read the length, read the
// answer. Shared between the handle the resolver holds and the handler in progress, which keeps
// the stream alive until the operation it started has completed, even after abandon().
template <typename Stream>
class StreamExchange final : public Abandonable,
                             public std::enable_shared_from_this<StreamExchange<Stream>> {
public:
    static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

    // `tls` is null for plain TCP.
    StreamExchange(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls,
                   const Upstream& upstream, std::uint16_t id, Question question,
                   ExchangeCallback done)
        : tls_(std::move(tls)),
          stream_(make_stream(io, tls_.get())),
          endpoint_(to_asio(upstream.address), upstream.port),
          tls_name_(upstream.tls_name),
          id_(id),
          question_(std::move(question)),
          done_(std::move(done)) {}

    Status start();

    // abandon
    void abandon() override {
        done_ = nullptr;
        close();
    }

private:
    static Stream make_stream(asio::io_context& io, asio::ssl::context* tls) {
        if constexpr (kTls) {
            return Stream(io, *tls);
        } else {
            return Stream(io);
        }
    }

    void on_connect(const boost::system::error_code& error);
    void on_handshake(const boost::system::error_code& error);
    void on_length(const boost::system::error_code& error);
    void on_message(const boost::system::error_code& error);
    void send_query();

    // Whether the exchange is still wanted after an operation completed with `error`; reports
    // `error` as `what` when it is.
    bool still_wanted(const boost::system::error_code& error, const char* what) {
        if (!done_) {
            return false;
        }
        if (error == asio::error::eof) {
            finish(fail("closed the connection without answering"));
            return false;
        }
        if (error) {
            finish(network_error(what, error));
            return false;
        }
        return true;
    }

    void finish(Result<UpstreamAnswer> result) {
        ExchangeCallback done = std::move(done_);
        done_ = nullptr;
        close();
        if (done) {
            done(std::move(result));
        }
    }

    void close() { close_quietly(stream_.lowest_layer()); }

    auto handler(void (StreamExchange::*member)(const boost::system::error_code&)) {
        return [self = this->shared_from_this(), member](const boost::system::error_code& error,
                                                         auto&&... /*ignored*/) {
            ((*self).*member)(error);
        };
    }

    // The connection's SSL object refers to the context, so it lives as long as the stream.
    std::shared_ptr<asio::ssl::context> tls_;
    Stream stream_;
    tcp::endpoint endpoint_;
    std::string tls_name_;
    std::uint16_t id_;
    Question question_;
    ExchangeCallback done_;
    std::vector<std::uint8_t> query_;
    std::array<std::uint8_t, 2> length_{};
    std::vector<std::uint8_t> answer_;
};

template <typename Stream>
Status StreamExchange<Stream>::start() {
    const std::vector<std::uint8_t> message = build_upstream_query(id_, question_);
    if (message.empty()) {
        return fail("cannot be asked for an invalid name");
    }
    query_.reserve(2 + message.size());
    query_.push_back(static_cast<std::uint8_t>(message.size() >> 8));
    query_.push_back(static_cast<std::uint8_t>(message.size() & 0xff));
    query_.insert(query_.end(), message.begin(), message.end());
    if constexpr (kTls) {
        // SNI is for names only (RFC 6066 section 3); an address is checked against the
        // certificate's IP entries by host_name_verification.
        // SSL_set_tlsext_host_name() is a macro with a C cast; this is what it expands to.
        if (!IpAddress::parse(tls_name_) &&
            SSL_ctrl(stream_.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                     TLSEXT_NAMETYPE_host_name, const_cast<char*>(tls_name_.c_str())) != 1) {
            return fail("could not set the TLS server name '" + tls_name_ + "'");
        }
        stream_.set_verify_callback([verify = asio::ssl::host_name_verification(tls_name_)](
                                        bool preverified, asio::ssl::verify_context& context) {
            const bool verified = verify(preverified, context);
            // host_name_verification just says no; record why, for the error message.
            if (preverified && !verified) {
                X509_STORE_CTX_set_error(context.native_handle(), X509_V_ERR_HOSTNAME_MISMATCH);
            }
            return verified;
        });
    }
    stream_.lowest_layer().async_connect(endpoint_, handler(&StreamExchange::on_connect));
    return {};
}

template <typename Stream>
void StreamExchange<Stream>::on_connect(const boost::system::error_code& error) {
    if (!still_wanted(error, "could not connect")) {
        return;
    }
    if constexpr (kTls) {
        stream_.async_handshake(asio::ssl::stream_base::client,
                                handler(&StreamExchange::on_handshake));
    } else {
        send_query();
    }
}

template <typename Stream>
void StreamExchange<Stream>::on_handshake(const boost::system::error_code& error) {
    if (!done_) {
        return;
    }
    if (error) {
        if constexpr (kTls) {
            const long verify_result = SSL_get_verify_result(stream_.native_handle());
            if (verify_result != X509_V_OK) {
                finish(fail(std::string("certificate verification failed: ") +
                            X509_verify_cert_error_string(verify_result)));
                return;
            }
        }
        finish(fail("TLS handshake failed: " + error.message()));
        return;
    }
    send_query();
}

template <typename Stream>
void StreamExchange<Stream>::send_query() {
    asio::async_write(stream_, asio::buffer(query_),
                      [self = this->shared_from_this()](const boost::system::error_code& error,
                                                        std::size_t /*written*/) {
                          if (!self->still_wanted(error, "could not send the query")) {
                              return;
                          }
                          asio::async_read(self->stream_, asio::buffer(self->length_),
                                           self->handler(&StreamExchange::on_length));
                      });
}

template <typename Stream>
void StreamExchange<Stream>::on_length(const boost::system::error_code& error) {
    if (!still_wanted(error, "could not read the answer")) {
        return;
    }
    const std::size_t length = (std::size_t{length_[0]} << 8) | length_[1];
    if (length < kHeaderSize) {
        finish(fail("sent an unusable answer: " + std::to_string(length) + " bytes"));
        return;
    }
    answer_.resize(length);
    asio::async_read(stream_, asio::buffer(answer_), handler(&StreamExchange::on_message));
}

template <typename Stream>
void StreamExchange<Stream>::on_message(const boost::system::error_code& error) {
    if (!still_wanted(error, "could not read the answer")) {
        return;
    }
    // One question per connection, so anything but its answer is a broken upstream.
    auto answer = analyze_upstream_response(answer_, question_, id_);
    if (!answer) {
        finish(unusable_answer(answer.error()));
        return;
    }
    finish(std::move(answer));
}

// What the resolver holds: letting go of it abandons the exchange.
class StreamExchangeHandle final : public PendingExchange {
public:
    explicit StreamExchangeHandle(std::shared_ptr<Abandonable> exchange)
        : exchange_(std::move(exchange)) {}
    ~StreamExchangeHandle() override { exchange_->abandon(); }
    StreamExchangeHandle(const StreamExchangeHandle&) = delete;
    StreamExchangeHandle& operator=(const StreamExchangeHandle&) = delete;
    StreamExchangeHandle(StreamExchangeHandle&&) = delete;
    StreamExchangeHandle& operator=(StreamExchangeHandle&&) = delete;

private:
    std::shared_ptr<Abandonable> exchange_;
};

template <typename Stream>
Result<std::unique_ptr<PendingExchange>> start_exchange(asio::io_context& io,
                                                        std::shared_ptr<asio::ssl::context> tls,
                                                        const Upstream& upstream, std::uint16_t id,
                                                        const Question& question,
                                                        ExchangeCallback done) {
    auto exchange = std::make_shared<StreamExchange<Stream>>(io, std::move(tls), upstream, id,
                                                             question, std::move(done));
    if (auto started = exchange->start(); !started) {
        return std::unexpected(started.error());
    }
    return std::make_unique<StreamExchangeHandle>(std::move(exchange));
}

} // namespace

Result<std::unique_ptr<PendingExchange>> exchange_over_stream(
    asio::io_context& io, const Upstream& upstream, std::shared_ptr<asio::ssl::context> tls,
    std::uint16_t id, const Question& question, ExchangeCallback done) {
    if (!tls) {
        return start_exchange<tcp::socket>(io, nullptr, upstream, id, question, std::move(done));
    }
    return start_exchange<TlsStream>(io, std::move(tls), upstream, id, question, std::move(done));
}

} // namespace pw::dns
