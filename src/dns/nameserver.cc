#include "dns/nameserver.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <limits>
#include <list>
#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "dns/asio_address.h"
#include "dns/resolver.h"

namespace pw::dns {
namespace {

// Whether QueryHandler::review() has anything to look at (see there).
bool worth_reviewing(const Answer& answer) {
    return !answer.cname_chain.empty() || !answer.addresses.empty();
}

namespace asio = boost::asio;

// Datagrams read per recvmmsg() and the most reads per wake-up: enough to amortise the syscalls
// under load, few enough that a flood of queries does not starve the packet queues that share
// the event loop.
constexpr std::size_t kUdpBatch = 32;
constexpr int kMaxBatchesPerWakeup = 4;
// A query is small; a datagram bigger than this is not one we answer with anything but FORMERR.
constexpr std::size_t kMaxQueryDatagram = 4096;
constexpr std::size_t kTcpSizeLimit = 65535;
// How long accepting waits after running out of descriptors (or memory) with no idle connection
// to give one up: the connection waits in the backlog, and accepting again at once would fail at
// once, in a loop that starves everything else.
constexpr std::chrono::milliseconds kAcceptRetryPause{100};

// 0.0.0.17 and ::17: the addresses of a blocked name, which the firewall blocks in turn.
constexpr std::array<std::uint8_t, 4> kBlockedV4 = {0, 0, 0, 17};
constexpr std::array<std::uint8_t, 16> kBlockedV6 = {0, 0, 0, 0, 0, 0, 0, 0,
                                                     0, 0, 0, 0, 0, 0, 0, 0x17};
constexpr std::uint32_t kBlockedTtl = 1;

// The client of a datagram, from the kernel's sockaddr.
bool read_client(const sockaddr_storage& storage, IpAddress& address, std::uint16_t& port) {
    if (storage.ss_family == AF_INET) {
        sockaddr_in v4{};
        std::memcpy(&v4, &storage, sizeof(v4));
        std::array<std::uint8_t, 4> bytes{};
        std::memcpy(bytes.data(), &v4.sin_addr, bytes.size());
        address = IpAddress::from_v4_bytes(bytes);
        port = ntohs(v4.sin_port);
        return true;
    }
    if (storage.ss_family == AF_INET6) {
        sockaddr_in6 v6{};
        std::memcpy(&v6, &storage, sizeof(v6));
        std::array<std::uint8_t, 16> bytes{};
        std::memcpy(bytes.data(), &v6.sin6_addr, bytes.size());
        address = IpAddress::from_v6_bytes(bytes);
        port = ntohs(v6.sin6_port);
        return true;
    }
    return false;
}

std::vector<SyntheticRecord> blocked_records(std::uint16_t question_type) {
    if (question_type == type::kA) {
        return {{.type = type::kA,
                 .ttl = kBlockedTtl,
                 .rdata = {kBlockedV4.begin(), kBlockedV4.end()}}};
    }
    if (question_type == type::kAaaa) {
        return {{.type = type::kAaaa,
                 .ttl = kBlockedTtl,
                 .rdata = {kBlockedV6.begin(), kBlockedV6.end()}}};
    }
    return {}; // NOERROR without records: the name exists for nothing else
}

class NameserverImpl;
class TcpClient;

// Whom a TCP connection counts against for the per-client limit: the process when the handler
// named one (the address then stays unspecified: a process is one client from any address),
// else the source address (pid -1).
struct TcpClientKey {
    IpAddress address;
    std::int64_t pid = -1;
    bool operator==(const TcpClientKey&) const = default;
};

struct TcpClientKeyHash {
    std::size_t operator()(const TcpClientKey& key) const noexcept {
        return key.address.hash() ^ (std::hash<std::int64_t>{}(key.pid) << 1U);
    }
};

// The open connections, longest idle first: a connection moves to the back when a query
// arrives and when its answer is out. The list owns them (besides their pending handlers).
using TcpTable = std::list<std::shared_ptr<TcpClient>>;

// One TCP client connection: length-prefixed messages (RFC 1035 4.2.2, RFC 7766), answered one
// after the other. Idle while it waits for a query, busy from a whole query until its answer is
// written; the idle timer runs while idle, the lifetime timer from start() on.
class TcpClient : public std::enable_shared_from_this<TcpClient> {
public:
    TcpClient(NameserverImpl& server, asio::ip::tcp::socket socket, ListenEndpoint endpoint,
              IpAddress client_address, std::uint16_t client_port, TcpClientKey key)
        : server_(server),
          socket_(std::move(socket)),
          idle_timer_(socket_.get_executor()),
          lifetime_timer_(socket_.get_executor()),
          endpoint_(endpoint),
          client_address_(client_address),
          client_port_(client_port),
          key_(key) {}

    // Starts the lifetime and reads the first query; `position` is its place in the table.
    void start(TcpTable::iterator position);
    // Closes the socket and leaves the table; the caller counts why.
    void close();
    // Sends one answer (without its length prefix), then reads the next query.
    void send(std::vector<std::uint8_t> message);
    [[nodiscard]] bool open() const { return open_; }
    [[nodiscard]] bool busy() const { return busy_; }
    [[nodiscard]] const TcpClientKey& key() const { return key_; }
    [[nodiscard]] TcpTable::iterator position() const { return position_; }

private:
    void read_length();
    void read_message(std::size_t length);
    void arm_idle_timer();
    void arm_lifetime_timer(std::chrono::milliseconds after);
    void on_lifetime_over();

    NameserverImpl& server_;
    asio::ip::tcp::socket socket_;
    asio::steady_timer idle_timer_;
    asio::steady_timer lifetime_timer_;
    ListenEndpoint endpoint_;
    IpAddress client_address_;
    std::uint16_t client_port_ = 0;
    TcpClientKey key_;
    TcpTable::iterator position_;
    std::array<std::uint8_t, 2> length_{};
    std::vector<std::uint8_t> message_;
    std::vector<std::uint8_t> outgoing_;
    bool open_ = true;
    bool busy_ = false;
    bool lifetime_over_ = false; // closes once the answer in progress is out
};

// Where the answer to a query goes once the resolver has it.
struct ReplyRoute {
    ClientTransport transport = ClientTransport::Udp;
    std::size_t udp_listener = 0;
    sockaddr_storage client{};
    socklen_t client_length = 0;
    // Keeps the connection alive while the resolver works: nothing else refers to it then.
    std::shared_ptr<TcpClient> tcp;
};

struct UdpListener {
    UdpListener(asio::io_context& io, ListenEndpoint where, std::size_t position)
        : socket(io), endpoint(where), index(position) {}
    asio::ip::udp::socket socket;
    ListenEndpoint endpoint;
    std::size_t index; // in NameserverImpl::udp_, for answers sent later
    // recvmmsg()/sendmmsg() state, reused for every batch.
    std::array<std::array<std::uint8_t, kMaxQueryDatagram>, kUdpBatch> buffers{};
    std::array<sockaddr_storage, kUdpBatch> clients{};
    std::array<iovec, kUdpBatch> in_vectors{};
    std::array<mmsghdr, kUdpBatch> in_headers{};
    std::array<std::vector<std::uint8_t>, kUdpBatch> replies;
    std::array<iovec, kUdpBatch> out_vectors{};
    std::array<mmsghdr, kUdpBatch> out_headers{};
};

struct TcpListener {
    TcpListener(asio::io_context& io, ListenEndpoint where)
        : acceptor(io), retry(io), endpoint(where) {}
    asio::ip::tcp::acceptor acceptor;
    asio::steady_timer retry; // kAcceptRetryPause after running out of descriptors
    ListenEndpoint endpoint;
};

class NameserverImpl final : public Nameserver {
public:
    NameserverImpl(asio::io_context& io, Resolver& resolver, QueryHandler& handler,
                   const TcpLimits& limits)
        : io_(io), resolver_(resolver), handler_(handler), limits_(limits) {}
    // NOLINTNEXTLINE(bugprone-exception-escape): only bad_alloc, which ends the process anyway.
    ~NameserverImpl() override { stop(); }
    NameserverImpl(const NameserverImpl&) = delete;
    NameserverImpl& operator=(const NameserverImpl&) = delete;
    NameserverImpl(NameserverImpl&&) = delete;
    NameserverImpl& operator=(NameserverImpl&&) = delete;

    Status bind(std::span<const ListenEndpoint> endpoints);
    void serve();

    // dns::Nameserver
    void stop() override;
    [[nodiscard]] const Counters& counters() const override { return counters_; }
    [[nodiscard]] std::vector<ListenEndpoint> endpoints() const override {
        std::vector<ListenEndpoint> bound;
        bound.reserve(udp_.size());
        for (const auto& listener : udp_) {
            bound.push_back(listener->endpoint);
        }
        return bound;
    }

    enum class Answered : std::uint8_t {
        Now,     // `reply` holds the answer
        Nothing, // not a query we can answer (no readable header): drop it
        Later,   // the resolver was asked; the answer goes out through the route
    };

    // Answers one message; `reply` is cleared first.
    Answered answer(ClientTransport transport, const IpAddress& client_address,
                    std::uint16_t client_port, const ListenEndpoint& server,
                    std::span<const std::uint8_t> message, bool oversized,
                    std::vector<std::uint8_t>& reply, const std::function<ReplyRoute()>& route);

    // TcpClient's side of the table.
    void tcp_client_closed(const TcpClient& client);
    void tcp_client_active(const TcpClient& client) {
        tcp_table_.splice(tcp_table_.end(), tcp_table_, client.position());
    }
    [[nodiscard]] const TcpLimits& tcp_limits() const { return limits_; }
    void flush_handler() { handler_.flush(); }
    Counters& mutable_counters() { return counters_; }

private:
    struct Pending {
        std::vector<std::uint8_t> message;
        ClientTransport transport = ClientTransport::Udp;
        IpAddress client_address;
        std::uint16_t client_port = 0;
        ListenEndpoint server;
        QueryPlan plan;
        ReplyRoute route;
    };

    // Answers from the plan alone (Block, NxDomain, Refuse) and reports it.
    void answer_from_plan(const ClientQuery& client_query, const QueryPlan& plan,
                          std::vector<std::uint8_t>& reply);
    // Writes `answer` for `query`, without the addresses the plan removed for this client.
    void render_answer(const Query& query, const Answer& answer, const QueryPlan& plan,
                       std::uint32_t age_seconds, std::size_t size_limit,
                       std::vector<std::uint8_t>& reply);
    void wait_udp(UdpListener& listener);
    void on_udp_readable(UdpListener& listener);
    void accept_tcp(TcpListener& listener);
    void on_accept_error(TcpListener& listener, const boost::system::error_code& error);
    void admit_tcp(const TcpListener& listener, asio::ip::tcp::socket socket);
    // Closes the longest-idle connection (of `client` only, when given); false when every
    // candidate is busy.
    bool close_longest_idle(const TcpClientKey* client);
    // With every connection busy: closes the longest-held connection of the client that holds
    // the most, when it holds at least two more than `newcomer` (so that it still holds as
    // many as the newcomer afterwards); false otherwise.
    bool close_for_fair_share(const TcpClientKey& newcomer);
    void finish(Pending& pending, const Result<std::shared_ptr<const Answer>>& result);
    void send_later(const ReplyRoute& route, std::vector<std::uint8_t> reply);

    asio::io_context& io_;
    Resolver& resolver_;
    QueryHandler& handler_;
    std::vector<std::unique_ptr<UdpListener>> udp_;
    std::vector<std::unique_ptr<TcpListener>> tcp_;
    TcpLimits limits_;
    TcpTable tcp_table_;
    std::unordered_map<TcpClientKey, std::size_t, TcpClientKeyHash> tcp_per_client_;
    // Resolver callbacks check it: they may run after stop() (never after destruction: the
    // resolver is shut down first, and its callbacks only ever run from the io_context).
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    Counters counters_;
};

Status NameserverImpl::bind(std::span<const ListenEndpoint> endpoints) {
    for (ListenEndpoint endpoint : endpoints) {
        const asio::ip::address address = to_asio(endpoint.address);
        const std::string where = to_string(endpoint);
        auto udp = std::make_unique<UdpListener>(io_, endpoint, udp_.size());
        // Asio's error_code overloads return the error too: each chain stops at the first.
        boost::system::error_code error;
        const asio::ip::udp::endpoint udp_endpoint(address, endpoint.port);
        const bool v6 = address.is_v6();
        if (udp->socket.open(udp_endpoint.protocol(), error) ||
            (v6 && udp->socket.set_option(asio::ip::v6_only(true), error)) ||
            udp->socket.bind(udp_endpoint, error) || udp->socket.non_blocking(true, error)) {
            return fail("bind UDP " + where, error);
        }
        if (endpoint.port == 0) {
            // Tests ask for any free port: TCP takes the one UDP got.
            endpoint.port = udp->socket.local_endpoint(error).port();
            udp->endpoint = endpoint;
        }
        auto tcp = std::make_unique<TcpListener>(io_, endpoint);
        const asio::ip::tcp::endpoint tcp_endpoint(address, endpoint.port);
        if (tcp->acceptor.open(tcp_endpoint.protocol(), error) ||
            (v6 && tcp->acceptor.set_option(asio::ip::v6_only(true), error)) ||
            tcp->acceptor.set_option(asio::socket_base::reuse_address(true), error) ||
            tcp->acceptor.bind(tcp_endpoint, error) ||
            tcp->acceptor.listen(asio::socket_base::max_listen_connections, error)) {
            return fail("bind TCP " + to_string(endpoint), error);
        }
        udp_.push_back(std::move(udp));
        tcp_.push_back(std::move(tcp));
    }
    return {};
}

void NameserverImpl::serve() {
    for (auto& listener : udp_) {
        UdpListener& udp = *listener;
        for (std::size_t index = 0; index < kUdpBatch; ++index) {
            udp.in_vectors[index] = {.iov_base = udp.buffers[index].data(),
                                     .iov_len = udp.buffers[index].size()};
        }
        wait_udp(udp);
    }
    for (auto& listener : tcp_) {
        accept_tcp(*listener);
    }
}

void NameserverImpl::stop() {
    if (!*alive_) {
        return;
    }
    *alive_ = false;
    boost::system::error_code ignored; // closing cannot fail in a way we could act on
    for (auto& listener : udp_) {
        // NOLINTNEXTLINE(bugprone-unused-return-value): the error is in `ignored`, unused.
        listener->socket.close(ignored);
    }
    for (auto& listener : tcp_) {
        // NOLINTNEXTLINE(bugprone-unused-return-value): the error is in `ignored`, unused.
        listener->acceptor.close(ignored);
        listener->retry.cancel();
    }
    while (!tcp_table_.empty()) {
        tcp_table_.front()->close(); // leaves the table
    }
}

void NameserverImpl::wait_udp(UdpListener& listener) {
    listener.socket.async_wait(
        asio::ip::udp::socket::wait_read,
        [this, &listener, alive = alive_](const boost::system::error_code& error) {
            if (!error && *alive) {
                on_udp_readable(listener);
            }
        });
}

void NameserverImpl::on_udp_readable(UdpListener& listener) {
    const int fd = listener.socket.native_handle();
    for (int batch = 0; batch < kMaxBatchesPerWakeup; ++batch) {
        for (std::size_t index = 0; index < kUdpBatch; ++index) {
            listener.in_headers[index] = {};
            listener.in_headers[index].msg_hdr.msg_iov = &listener.in_vectors[index];
            listener.in_headers[index].msg_hdr.msg_iovlen = 1;
            listener.in_headers[index].msg_hdr.msg_name = &listener.clients[index];
            listener.in_headers[index].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
        }
        const int received =
            ::recvmmsg(fd, listener.in_headers.data(), kUdpBatch, MSG_DONTWAIT, nullptr);
        if (received <= 0) {
            break; // EAGAIN: drained; other errors (ICMP errors of earlier sends) are per socket
        }
        unsigned int replies = 0;
        for (int index = 0; index < received; ++index) {
            const auto slot = static_cast<std::size_t>(index);
            const mmsghdr& header = listener.in_headers[slot];
            IpAddress client_address;
            std::uint16_t client_port = 0;
            if (!read_client(listener.clients[slot], client_address, client_port)) {
                ++counters_.dropped;
                continue;
            }
            ++counters_.udp_queries;
            const bool oversized = (header.msg_hdr.msg_flags & MSG_TRUNC) != 0;
            const std::span<const std::uint8_t> message(
                listener.buffers[slot].data(),
                std::min<std::size_t>(header.msg_len, kMaxQueryDatagram));
            std::vector<std::uint8_t>& reply = listener.replies[replies];
            const Answered answered = answer(ClientTransport::Udp, client_address, client_port,
                                             listener.endpoint, message, oversized, reply, [&] {
                                                 ReplyRoute route;
                                                 route.transport = ClientTransport::Udp;
                                                 route.udp_listener = listener.index;
                                                 route.client = listener.clients[slot];
                                                 route.client_length = header.msg_hdr.msg_namelen;
                                                 return route;
                                             });
            if (answered != Answered::Now) {
                continue;
            }
            listener.out_vectors[replies] = {.iov_base = reply.data(), .iov_len = reply.size()};
            listener.out_headers[replies] = {};
            listener.out_headers[replies].msg_hdr.msg_iov = &listener.out_vectors[replies];
            listener.out_headers[replies].msg_hdr.msg_iovlen = 1;
            listener.out_headers[replies].msg_hdr.msg_name = &listener.clients[slot];
            listener.out_headers[replies].msg_hdr.msg_namelen = header.msg_hdr.msg_namelen;
            ++replies;
        }
        unsigned int sent = 0;
        while (sent < replies) {
            const int result =
                ::sendmmsg(fd, &listener.out_headers[sent], replies - sent, MSG_DONTWAIT);
            if (result <= 0) {
                // The socket buffer is full or a client vanished: UDP gives no second chance;
                // the client asks again.
                counters_.send_errors += replies - sent;
                break;
            }
            sent += static_cast<unsigned int>(result);
        }
        handler_.flush();
        if (static_cast<std::size_t>(received) < kUdpBatch) {
            break;
        }
    }
    wait_udp(listener);
}

NameserverImpl::Answered NameserverImpl::answer(
    ClientTransport transport, const IpAddress& client_address, std::uint16_t client_port,
    const ListenEndpoint& server, std::span<const std::uint8_t> message, bool oversized,
    std::vector<std::uint8_t>& reply, const std::function<ReplyRoute()>& route) {
    reply.clear();
    auto parsed = parse_query(message);
    if (oversized && parsed) {
        parsed = std::unexpected(QueryRejection{
            .rcode = Rcode::FormErr, .answerable = true, .reason = "datagram too large"});
    }
    if (!parsed) {
        if (!parsed.error().answerable) {
            ++counters_.dropped;
            return Answered::Nothing;
        }
        ++counters_.malformed;
        reply = error_response(message, parsed.error().rcode);
        return reply.empty() ? Answered::Nothing : Answered::Now;
    }
    const Query& query = *parsed;
    const ClientQuery client_query{.transport = transport,
                                   .client_address = client_address,
                                   .client_port = client_port,
                                   .server = server,
                                   .query = query};
    QueryPlan plan = handler_.plan(client_query);
    const std::size_t size_limit =
        transport == ClientTransport::Udp ? udp_size_limit(query) : kTcpSizeLimit;
    if (plan.action != QueryAction::Resolve) {
        answer_from_plan(client_query, plan, reply);
        return Answered::Now;
    }
    if (auto hit = resolver_.cached(query.question)) {
        if (worth_reviewing(*hit->answer)) {
            handler_.review(client_query, plan, *hit->answer);
            if (plan.action != QueryAction::Resolve) {
                answer_from_plan(client_query, plan, reply);
                return Answered::Now;
            }
        }
        render_answer(query, *hit->answer, plan, hit->age_seconds, size_limit, reply);
        ++counters_.cache_answers;
        handler_.answered(client_query, plan,
                          {.rcode = hit->answer->rcode,
                           .source = AnswerSource::Cache,
                           .answer = hit->answer.get(),
                           .age_seconds = hit->age_seconds,
                           .failure = {}});
        return Answered::Now;
    }
    auto pending = std::make_shared<Pending>();
    pending->message.assign(message.begin(), message.end());
    pending->transport = transport;
    pending->client_address = client_address;
    pending->client_port = client_port;
    pending->server = server;
    pending->plan = std::move(plan);
    pending->route = route();
    resolver_.resolve(query.question, [this, pending, alive = alive_](
                                          const Result<std::shared_ptr<const Answer>>& result) {
        if (*alive) {
            finish(*pending, result);
        }
    });
    return Answered::Later;
}

void NameserverImpl::render_answer(const Query& query, const Answer& answer, const QueryPlan& plan,
                                   std::uint32_t age_seconds, std::size_t size_limit,
                                   std::vector<std::uint8_t>& reply) {
    if (plan.removed_addresses.empty()) {
        render_cached_answer(query, answer.wire, age_seconds, size_limit, reply);
        return;
    }
    // Rare (an address the client may not see): worth an allocation or two.
    std::vector<IpAddress> kept;
    for (const IpAddress& address : answer.addresses) {
        if (std::ranges::find(plan.removed_addresses, address) == plan.removed_addresses.end()) {
            kept.push_back(address);
        }
    }
    // The records keep the lowest TTL of the original answer (render_cached_answer() ages it).
    std::uint32_t ttl = std::numeric_limits<std::uint32_t>::max();
    for (const CachedAnswer::TtlField& field : answer.wire.ttl_fields) {
        ttl = std::min(ttl, field.ttl);
    }
    if (answer.wire.ttl_fields.empty()) {
        ttl = 0;
    }
    const CachedAnswer filtered = address_only_answer(answer.wire, query.question.type, kept, ttl);
    render_cached_answer(query, filtered, age_seconds, size_limit, reply);
    ++counters_.filtered_answers;
}

void NameserverImpl::answer_from_plan(const ClientQuery& client_query, const QueryPlan& plan,
                                      std::vector<std::uint8_t>& reply) {
    const Query& query = client_query.query;
    Rcode rcode = Rcode::NoError;
    std::vector<SyntheticRecord> records;
    if (plan.action == QueryAction::Block) {
        records = blocked_records(query.question.type);
    } else {
        rcode = plan.action == QueryAction::NxDomain ? Rcode::NxDomain : Rcode::Refused;
    }
    reply = synthesize_response(query, rcode, records);
    ++counters_.policy_answers;
    handler_.answered(client_query, plan,
                      {.rcode = rcode,
                       .source = AnswerSource::Policy,
                       .answer = nullptr,
                       .age_seconds = 0,
                       .failure = {}});
}

void NameserverImpl::finish(Pending& pending, const Result<std::shared_ptr<const Answer>>& result) {
    const auto parsed = parse_query(pending.message);
    if (!parsed) {
        return; // cannot happen: it parsed when it came in
    }
    const Query& query = *parsed;
    const ClientQuery client_query{.transport = pending.transport,
                                   .client_address = pending.client_address,
                                   .client_port = pending.client_port,
                                   .server = pending.server,
                                   .query = query};
    std::vector<std::uint8_t> reply;
    if (result && worth_reviewing(**result)) {
        handler_.review(client_query, pending.plan, **result);
    }
    if (result && pending.plan.action != QueryAction::Resolve) {
        answer_from_plan(client_query, pending.plan, reply);
    } else if (result) {
        const Answer& answer = **result;
        const std::size_t size_limit =
            pending.transport == ClientTransport::Udp ? udp_size_limit(query) : kTcpSizeLimit;
        render_answer(query, answer, pending.plan, 0, size_limit, reply);
        ++counters_.upstream_answers;
        handler_.answered(client_query, pending.plan,
                          {.rcode = answer.rcode,
                           .source = AnswerSource::Upstream,
                           .answer = &answer,
                           .age_seconds = 0,
                           .failure = {}});
    } else {
        reply = synthesize_response(query, Rcode::ServFail);
        ++counters_.servfail;
        handler_.answered(client_query, pending.plan,
                          {.rcode = Rcode::ServFail,
                           .source = AnswerSource::Failure,
                           .answer = nullptr,
                           .age_seconds = 0,
                           .failure = result.error().what});
    }
    send_later(pending.route, std::move(reply));
    handler_.flush();
}

void NameserverImpl::send_later(const ReplyRoute& route, std::vector<std::uint8_t> reply) {
    if (route.transport == ClientTransport::Tcp) {
        if (route.tcp && route.tcp->open()) {
            route.tcp->send(std::move(reply));
        }
        return;
    }
    if (route.udp_listener >= udp_.size()) {
        return;
    }
    const int fd = udp_[route.udp_listener]->socket.native_handle();
    const ssize_t sent =
        ::sendto(fd, reply.data(), reply.size(), MSG_DONTWAIT,
                 reinterpret_cast<const sockaddr*>(&route.client), // NOLINT: the sockaddr API
                 route.client_length);
    if (sent < 0) {
        ++counters_.send_errors;
    }
}

void NameserverImpl::accept_tcp(TcpListener& listener) {
    listener.acceptor.async_accept(
        [this, &listener, alive = alive_](const boost::system::error_code& error,
                                          asio::ip::tcp::socket socket) {
            if (!*alive) {
                return;
            }
            if (error) {
                on_accept_error(listener, error);
                return;
            }
            admit_tcp(listener, std::move(socket));
            accept_tcp(listener);
        });
}

void NameserverImpl::on_accept_error(TcpListener& listener,
                                     const boost::system::error_code& error) {
    if (error == asio::error::connection_aborted) {
        accept_tcp(listener); // the client gave up before we accepted: nothing to wait for
        return;
    }
    const bool out_of_descriptors = error == boost::system::errc::too_many_files_open ||
                                    error == boost::system::errc::too_many_files_open_in_system;
    if (out_of_descriptors && close_longest_idle(nullptr)) {
        ++counters_.tcp_evictions;
        accept_tcp(listener);
        return;
    }
    listener.retry.expires_after(kAcceptRetryPause);
    listener.retry.async_wait(
        [this, &listener, alive = alive_](const boost::system::error_code& timer_error) {
            if (!timer_error && *alive) {
                accept_tcp(listener);
            }
        });
}

void NameserverImpl::admit_tcp(const TcpListener& listener, asio::ip::tcp::socket socket) {
    boost::system::error_code endpoint_error;
    const auto remote = socket.remote_endpoint(endpoint_error);
    if (endpoint_error) {
        return; // the client is gone already
    }
    const IpAddress address = from_asio(remote.address());
    const std::optional<std::int64_t> process = handler_.connection_process(
        {.client_address = address, .client_port = remote.port(), .server = listener.endpoint});
    const TcpClientKey key = process ? TcpClientKey{.address = {}, .pid = *process}
                                     : TcpClientKey{.address = address, .pid = -1};
    // Newcomers win over idle connections, which may be a flood holding the table: a client
    // that sends a query on a new connection expects an answer now, one that holds an idle
    // connection can connect again. The socket of a refused one closes as it goes out of scope.
    const auto held = tcp_per_client_.find(key);
    if (held != tcp_per_client_.end() && held->second >= limits_.max_per_client) {
        if (!close_longest_idle(&key)) {
            ++counters_.tcp_client_refused;
            return;
        }
        ++counters_.tcp_client_evictions;
    }
    if (tcp_table_.size() >= limits_.max_connections) {
        if (!close_longest_idle(nullptr) && !close_for_fair_share(key)) {
            ++counters_.tcp_refused;
            return;
        }
        ++counters_.tcp_evictions;
    }
    ++counters_.tcp_connections;
    ++tcp_per_client_[key];
    auto client = std::make_shared<TcpClient>(*this, std::move(socket), listener.endpoint, address,
                                              remote.port(), key);
    tcp_table_.push_back(client);
    client->start(std::prev(tcp_table_.end()));
}

bool NameserverImpl::close_longest_idle(const TcpClientKey* client) {
    const auto victim = std::ranges::find_if(tcp_table_, [client](const auto& connection) {
        return !connection->busy() && (client == nullptr || connection->key() == *client);
    });
    if (victim == tcp_table_.end()) {
        return false;
    }
    (*victim)->close(); // leaves the table (close() keeps the client alive until it returns)
    return true;
}

bool NameserverImpl::close_for_fair_share(const TcpClientKey& newcomer) {
    // Busy connections are not safe from a flood either: queries for names whose servers are
    // slow keep a connection busy for seconds, and enough of them would fill the table. Taking
    // from the biggest holder keeps every client's share bounded by everyone else's, while a
    // client that holds no more than others is never cut off for a newcomer. The answer in
    // progress is dropped (send_later() skips a closed connection); RFC 7766 clients must
    // expect the server to close and ask again.
    const auto held_by_newcomer = tcp_per_client_.find(newcomer);
    const std::size_t newcomer_holds =
        held_by_newcomer == tcp_per_client_.end() ? 0 : held_by_newcomer->second;
    const auto biggest = std::ranges::max_element(tcp_per_client_, {},
                                                  [](const auto& entry) { return entry.second; });
    if (biggest == tcp_per_client_.end() || biggest->second < newcomer_holds + 2) {
        return false;
    }
    const TcpClientKey holder = biggest->first; // a copy: closing may erase the map entry
    const auto victim = std::ranges::find_if(
        tcp_table_, [&holder](const auto& connection) { return connection->key() == holder; });
    if (victim == tcp_table_.end()) {
        return false; // cannot happen: the count says it holds some
    }
    (*victim)->close();
    return true;
}

void NameserverImpl::tcp_client_closed(const TcpClient& client) {
    const auto held = tcp_per_client_.find(client.key());
    if (held != tcp_per_client_.end() && --held->second == 0) {
        tcp_per_client_.erase(held);
    }
    tcp_table_.erase(client.position());
}

void TcpClient::start(TcpTable::iterator position) {
    position_ = position;
    arm_lifetime_timer(server_.tcp_limits().lifetime);
    read_length();
}

void TcpClient::close() {
    if (!open_) {
        return;
    }
    open_ = false;
    const auto keep = shared_from_this(); // the table's reference goes below
    boost::system::error_code ignored;
    idle_timer_.cancel();
    lifetime_timer_.cancel();
    // NOLINTNEXTLINE(bugprone-unused-return-value): the error is in `ignored`, unused.
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    // NOLINTNEXTLINE(bugprone-unused-return-value): the error is in `ignored`, unused.
    socket_.close(ignored);
    server_.tcp_client_closed(*this);
}

void TcpClient::arm_idle_timer() {
    idle_timer_.expires_after(server_.tcp_limits().idle_timeout);
    idle_timer_.async_wait([self = weak_from_this()](const boost::system::error_code& error) {
        if (error) {
            return;
        }
        auto client = self.lock();
        // Busy: a query arrived as the timer went off.
        if (client && client->open_ && !client->busy_) {
            ++client->server_.mutable_counters().tcp_idle_closes;
            client->close();
        }
    });
}

void TcpClient::arm_lifetime_timer(std::chrono::milliseconds after) {
    lifetime_timer_.expires_after(after);
    lifetime_timer_.async_wait([self = weak_from_this()](const boost::system::error_code& error) {
        if (error) {
            return;
        }
        if (auto client = self.lock()) {
            client->on_lifetime_over();
        }
    });
}

void TcpClient::on_lifetime_over() {
    if (!open_) {
        return;
    }
    if (busy_ && !lifetime_over_) {
        // RFC 7766 6.2.3: the answer in progress goes out first, then the connection closes.
        // A client that does not read it is given one idle timeout, no more.
        lifetime_over_ = true;
        arm_lifetime_timer(server_.tcp_limits().idle_timeout);
        return;
    }
    ++server_.mutable_counters().tcp_lifetime_closes;
    close();
}

void TcpClient::read_length() {
    if (!open_) {
        return;
    }
    arm_idle_timer();
    asio::async_read(
        socket_, asio::buffer(length_),
        [self = shared_from_this()](const boost::system::error_code& error, std::size_t /*bytes*/) {
            if (!self->open_) {
                return; // closed by us: the server may be gone
            }
            if (error) {
                self->close();
                return;
            }
            const std::size_t length = (std::size_t{self->length_[0]} << 8U) | self->length_[1];
            if (length == 0) {
                self->close(); // not a message: the stream is out of step
                return;
            }
            self->read_message(length);
        });
}

void TcpClient::read_message(std::size_t length) {
    message_.resize(length);
    asio::async_read(
        socket_, asio::buffer(message_),
        [self = shared_from_this()](const boost::system::error_code& error, std::size_t /*bytes*/) {
            if (!self->open_) {
                return; // closed by us: the server may be gone
            }
            if (error) {
                self->close();
                return;
            }
            self->idle_timer_.cancel();
            self->busy_ = true;
            self->server_.tcp_client_active(*self);
            ++self->server_.mutable_counters().tcp_queries;
            std::vector<std::uint8_t> reply;
            const auto answered = self->server_.answer(ClientTransport::Tcp, self->client_address_,
                                                       self->client_port_, self->endpoint_,
                                                       self->message_, false, reply, [&self] {
                                                           ReplyRoute route;
                                                           route.transport = ClientTransport::Tcp;
                                                           route.tcp = self;
                                                           return route;
                                                       });
            if (answered == NameserverImpl::Answered::Now) {
                self->send(std::move(reply));
                self->server_.flush_handler();
            } else if (answered == NameserverImpl::Answered::Nothing) {
                self->close(); // not even a query header: the stream is garbage
            }
            // Later: the resolver's answer comes through send().
        });
}

void TcpClient::send(std::vector<std::uint8_t> message) {
    if (!open_) {
        return;
    }
    if (message.empty() || message.size() > kTcpSizeLimit) {
        close();
        return;
    }
    outgoing_.resize(message.size() + 2);
    outgoing_[0] = static_cast<std::uint8_t>(message.size() >> 8U);
    outgoing_[1] = static_cast<std::uint8_t>(message.size() & 0xFFU);
    std::memcpy(outgoing_.data() + 2, message.data(), message.size());
    asio::async_write(
        socket_, asio::buffer(outgoing_),
        [self = shared_from_this()](const boost::system::error_code& error, std::size_t /*bytes*/) {
            if (!self->open_) {
                return; // closed by us: the server may be gone
            }
            if (error) {
                ++self->server_.mutable_counters().send_errors;
                self->close();
                return;
            }
            self->busy_ = false;
            if (self->lifetime_over_) {
                ++self->server_.mutable_counters().tcp_lifetime_closes;
                self->close();
                return;
            }
            self->server_.tcp_client_active(*self);
            self->read_length();
        });
}

} // namespace

std::string to_string(const ListenEndpoint& endpoint) {
    if (endpoint.address.is_v4()) {
        return endpoint.address.to_string() + ":" + std::to_string(endpoint.port);
    }
    return "[" + endpoint.address.to_string() + "]:" + std::to_string(endpoint.port);
}

Result<std::unique_ptr<Nameserver>> Nameserver::start(boost::asio::io_context& io,
                                                      std::span<const ListenEndpoint> endpoints,
                                                      Resolver& resolver, QueryHandler& handler,
                                                      const TcpLimits& limits) {
    if (limits.max_connections == 0 || limits.max_per_client == 0 ||
        limits.idle_timeout <= std::chrono::milliseconds::zero() ||
        limits.lifetime <= std::chrono::milliseconds::zero()) {
        return fail(
            "nameserver TCP limits: connections, connections per client, idle timeout "
            "and lifetime must all be above zero");
    }
    auto server = std::make_unique<NameserverImpl>(io, resolver, handler, limits);
    if (auto bound = server->bind(endpoints); !bound) {
        return std::unexpected(bound.error());
    }
    server->serve();
    return server;
}

} // namespace pw::dns
