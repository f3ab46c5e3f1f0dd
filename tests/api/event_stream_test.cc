#include "api/event_stream.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include "api/access_policy.h"
#include "api/caller.h"
#include "api/fake_backend.h"
#include "api/group_membership.h"
#include "api/http_server.h"
#include "common/unique_fd.h"

// The event hub alone (fan-out, the bounded queues), then the event stream over real WebSockets
// on 127.0.0.1 (port 0, no root), the server's loop on a thread of its own as in the daemon and
// the test as a plain-socket WebSocket client.

namespace pw::api {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr auto kPatience = 5s;

// A subscriber that takes messages only when the test says so.
class FakeClient final : public EventStreamClient {
public:
    void events_ready() override { ++ready_calls; }
    void too_slow(std::string reason) override { dropped = std::move(reason); }

    [[nodiscard]] std::vector<std::string> take_all() const {
        std::vector<std::string> out;
        while (!subscription->empty()) {
            out.push_back(*subscription->take());
        }
        return out;
    }

    std::unique_ptr<EventHub::Subscription> subscription;
    int ready_calls = 0;
    std::optional<std::string> dropped;
};

void subscribe(EventHub& hub, FakeClient& client) {
    auto subscription = hub.subscribe(client);
    ASSERT_TRUE(subscription.has_value());
    client.subscription = std::move(*subscription);
}

TEST(EventHub, IsInactiveWithoutSubscribers) {
    EventHub hub;
    EXPECT_FALSE(hub.active());
    hub.publish(R"({"event":"new"})");
    EXPECT_EQ(hub.counters().published, 0U); // nobody listened: nothing was kept
    {
        FakeClient client;
        subscribe(hub, client);
        EXPECT_TRUE(hub.active());
    }
    EXPECT_FALSE(hub.active()); // the subscription left with its client
}

TEST(EventHub, FansOutToEverySubscriberInOrder) {
    EventHub hub;
    FakeClient first;
    FakeClient second;
    subscribe(hub, first);
    subscribe(hub, second);
    hub.publish("1");
    hub.publish("2");
    EXPECT_EQ(first.ready_calls, 1); // told when its queue stopped being empty, not per message
    EXPECT_EQ(first.take_all(), (std::vector<std::string>{"1", "2"}));
    hub.publish("3");
    EXPECT_EQ(first.ready_calls, 2);
    EXPECT_EQ(first.take_all(), (std::vector<std::string>{"3"}));
    EXPECT_EQ(second.take_all(), (std::vector<std::string>{"1", "2", "3"}));
    EXPECT_EQ(hub.counters().published, 3U);
}

TEST(EventHub, DropsAClientWhoseQueueIsFullAndKeepsTheOthers) {
    EventHub hub({.max_clients = 4, .max_queued_messages = 3, .max_queued_bytes = 1000});
    FakeClient slow;
    FakeClient fast;
    subscribe(hub, slow);
    subscribe(hub, fast);
    for (int index = 0; index < 3; ++index) {
        hub.publish(std::to_string(index));
        EXPECT_EQ(fast.take_all().size(), 1U);
    }
    EXPECT_FALSE(slow.dropped);
    hub.publish("3");
    ASSERT_TRUE(slow.dropped.has_value());
    EXPECT_EQ(*slow.dropped, "too slow: 4 events not taken");
    EXPECT_TRUE(slow.subscription->empty()); // its memory is given back at once
    EXPECT_EQ(hub.subscriber_count(), 1U);
    EXPECT_EQ(hub.counters().too_slow, 1U);
    EXPECT_EQ(fast.take_all(), (std::vector<std::string>{"3"}));
    hub.publish("4");
    EXPECT_TRUE(slow.subscription->empty());
    EXPECT_EQ(fast.take_all(), (std::vector<std::string>{"4"}));
    slow.subscription.reset(); // after being dropped: harmless
    EXPECT_EQ(hub.subscriber_count(), 1U);
}

TEST(EventHub, BoundsTheQueueInBytesToo) {
    EventHub hub({.max_clients = 4, .max_queued_messages = 100, .max_queued_bytes = 10});
    FakeClient client;
    subscribe(hub, client);
    hub.publish("12345");
    hub.publish("12345");
    EXPECT_FALSE(client.dropped);
    hub.publish("1");
    EXPECT_EQ(client.dropped, "too slow: 3 events not taken");
}

TEST(EventHub, RefusesClientsBeyondTheLimit) {
    EventHub hub({.max_clients = 1, .max_queued_messages = 10, .max_queued_bytes = 100});
    FakeClient first;
    FakeClient second;
    subscribe(hub, first);
    EXPECT_TRUE(hub.full());
    const auto refused = hub.subscribe(second);
    ASSERT_FALSE(refused.has_value());
    EXPECT_NE(refused.error().message().find("1 clients already"), std::string::npos);
    EXPECT_EQ(hub.counters().refused, 1U);
    first.subscription.reset();
    EXPECT_TRUE(hub.subscribe(second).has_value());
}

// --- Over real sockets. ---

class AnyCaller final : public CallerLookup {
public:
    std::optional<Caller> find_caller(const ConnectionEndpoints& /*endpoints*/) override {
        return Caller{.uid = 0, .pid = 1234, .executable = "/usr/bin/websocat"};
    }
};

class NoGroups final : public GroupMembership {
public:
    bool is_member(std::uint32_t /*uid*/, std::string_view /*group*/) override { return false; }
    std::optional<std::string> user_name(std::uint32_t /*uid*/) override { return std::nullopt; }
};

struct Frame {
    int opcode = -1; // 1 text, 8 close; -1: none (closed or timed out)
    std::string payload;

    [[nodiscard]] int close_code() const {
        return payload.size() >= 2 ? (static_cast<unsigned char>(payload[0]) << 8U) |
                                         static_cast<unsigned char>(payload[1])
                                   : -1;
    }
    [[nodiscard]] std::string close_reason() const {
        return payload.size() > 2 ? payload.substr(2) : "";
    }
};

// A WebSocket client (RFC 6455) over a blocking socket: enough of the protocol for the tests.
class WsClient {
public:
    // `receive_buffer`: SO_RCVBUF before connecting (a small one makes a slow reader quickly).
    explicit WsClient(std::uint16_t port, int receive_buffer = 0)
        : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        EXPECT_TRUE(fd_.valid());
        timeval timeout{.tv_sec = 0, .tv_usec = 100'000};
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
        if (receive_buffer > 0) {
            ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
        }
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockaddr API
        EXPECT_EQ(
            ::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
    }

    void send(std::string_view bytes) const {
        while (!bytes.empty()) {
            const ssize_t sent = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (sent <= 0) {
                return;
            }
            bytes.remove_prefix(static_cast<std::size_t>(sent));
        }
    }

    // Sends the upgrade and reads the answer's head (and body, for a refusal): its status.
    int handshake(const std::string& host, std::string_view extra = "",
                  std::string_view target = "/api/v1/events") {
        send("GET " + std::string(target) + " HTTP/1.1\r\nHost: " + host +
             "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
             std::string(extra) + "\r\n");
        return read_answer();
    }

    // Reads an HTTP answer's head (and body, unless it is a 101): its status, 0 for none.
    int read_answer() {
        const auto deadline = std::chrono::steady_clock::now() + kPatience;
        std::size_t end = std::string::npos;
        while ((end = pending_.find("\r\n\r\n")) == std::string::npos) {
            if (std::chrono::steady_clock::now() > deadline || !read_more()) {
                return 0;
            }
        }
        head = pending_.substr(0, end);
        pending_.erase(0, end + 4);
        const int status = std::stoi(head.substr(head.find(' ') + 1, 3));
        if (status != 101) {
            const std::size_t length_at = head.find("Content-Length: ");
            const std::size_t length =
                length_at == std::string::npos ? 0 : std::stoul(head.substr(length_at + 16));
            while (pending_.size() < length && std::chrono::steady_clock::now() < deadline &&
                   read_more()) {
            }
            body = pending_.substr(0, length);
        }
        return status;
    }

    // The next frame, or opcode -1 when the connection closed or nothing came in time.
    Frame receive(std::chrono::milliseconds patience = kPatience) {
        const auto deadline = std::chrono::steady_clock::now() + patience;
        while (true) {
            if (auto frame = take_frame()) {
                return *frame;
            }
            if (std::chrono::steady_clock::now() > deadline || !read_more()) {
                return take_frame().value_or(Frame{});
            }
        }
    }

    // A masked frame from the client (RFC 6455 5.3), payloads under 126 bytes.
    void send_frame(int opcode, std::string_view payload) const {
        std::string frame;
        frame += static_cast<char>(0x80 | opcode);
        frame += static_cast<char>(0x80 | payload.size());
        frame += std::string(4, '\0'); // the mask 0: the payload as is
        frame += payload;
        send(frame);
    }

    void close() { fd_ = UniqueFd(); }

    std::string head;
    std::string body;

private:
    bool read_more() {
        std::array<char, 65536> chunk{};
        const ssize_t received = ::recv(fd_.get(), chunk.data(), chunk.size(), 0);
        if (received > 0) {
            pending_.append(chunk.data(), static_cast<std::size_t>(received));
            return true;
        }
        return received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    }

    std::optional<Frame> take_frame() {
        if (pending_.size() < 2) {
            return std::nullopt;
        }
        const auto byte = [this](std::size_t index) {
            return static_cast<std::uint64_t>(static_cast<unsigned char>(pending_[index]));
        };
        std::uint64_t length = byte(1) & 0x7FU;
        std::size_t offset = 2;
        if (length == 126) {
            if (pending_.size() < 4) {
                return std::nullopt;
            }
            length = (byte(2) << 8U) | byte(3);
            offset = 4;
        } else if (length == 127) {
            if (pending_.size() < 10) {
                return std::nullopt;
            }
            length = 0;
            for (std::size_t index = 2; index < 10; ++index) {
                length = (length << 8U) | byte(index);
            }
            offset = 10;
        }
        if (pending_.size() < offset + length) {
            return std::nullopt;
        }
        Frame frame{.opcode = static_cast<int>(byte(0) & 0x0FU),
                    .payload = pending_.substr(offset, length)};
        pending_.erase(0, offset + length);
        return frame;
    }

    UniqueFd fd_;
    std::string pending_;
};

class EventStreamServerTest : public ::testing::Test {
protected:
    void TearDown() override {
        if (loop_.joinable()) {
            on_loop([this] { server_.reset(); });
            work_.reset();
            loop_.join();
        }
    }

    void start(EventStreamLimits limits = {}) {
        hub_.emplace(limits);
        const ListenEndpoint loopback{.address = IpAddress::parse("127.0.0.1").value(), .port = 0};
        auto started = HttpServer::start(io_, {loopback}, {}, callers_, access_, backend_, &*hub_);
        ASSERT_TRUE(started.has_value()) << started.error().message();
        server_ = std::move(*started);
        port_ = server_->endpoints().at(0).port;
        loop_ = std::thread([this] { io_.run(); });
    }

    template <typename Function>
    std::invoke_result_t<Function> on_loop(Function function) {
        std::packaged_task<decltype(function())()> task(std::move(function));
        auto result = task.get_future();
        asio::post(io_, [&task] { task(); });
        return result.get();
    }

    static bool eventually(const std::function<bool()>& ready) {
        const auto deadline = std::chrono::steady_clock::now() + kPatience;
        while (!ready()) {
            if (std::chrono::steady_clock::now() > deadline) {
                return false;
            }
            std::this_thread::sleep_for(1ms);
        }
        return true;
    }

    std::size_t subscribers() {
        return on_loop([this] { return hub_->subscriber_count(); });
    }
    void publish(const std::string& text) {
        on_loop([this, text] { hub_->publish(text); });
    }

    [[nodiscard]] std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
    [[nodiscard]] std::string same_origin() const {
        return "Origin: http://127.0.0.1:" + std::to_string(port_) + "\r\n";
    }

    // A status request on a connection of its own: the event loop answers.
    [[nodiscard]] int status_code() const {
        WsClient client(port_);
        client.send("GET /api/v1/status HTTP/1.1\r\nHost: " + host() + "\r\n\r\n");
        return client.read_answer();
    }

    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
    FakeBackend backend_;
    AnyCaller callers_;
    NoGroups groups_;
    AccessPolicy access_{{"portwarden"}, groups_};
    std::optional<EventHub> hub_;
    std::unique_ptr<HttpServer> server_;
    std::uint16_t port_ = 0;
    std::thread loop_;
};

TEST_F(EventStreamServerTest, PlainGetIsToldToUseAWebSocket) {
    start();
    WsClient client(port_);
    client.send("GET /api/v1/events HTTP/1.1\r\nHost: " + host() + "\r\n\r\n");
    EXPECT_EQ(client.read_answer(), 400);
    EXPECT_NE(client.body.find("WebSocket"), std::string::npos) << client.body;
}

TEST_F(EventStreamServerTest, RefusesAForeignOriginBeforeTheHandshake) {
    start();
    WsClient client(port_);
    EXPECT_EQ(client.handshake(host(), "Origin: http://evil.example\r\n"), 403);
    EXPECT_NE(client.body.find("evil.example"), std::string::npos) << client.body;
    EXPECT_EQ(subscribers(), 0U);
    EXPECT_EQ(on_loop([this] { return server_->counters().event_streams; }), 0U);
}

TEST_F(EventStreamServerTest, RefusesAWrongHost) {
    start();
    WsClient client(port_);
    EXPECT_EQ(client.handshake("evil.example:" + std::to_string(port_)), 403);
    EXPECT_EQ(subscribers(), 0U);
}

TEST_F(EventStreamServerTest, SendsEventsInOrder) {
    start();
    WsClient client(port_);
    ASSERT_EQ(client.handshake(host(), same_origin()), 101) << client.head;
    EXPECT_NE(client.head.find("Server: portwarden"), std::string::npos) << client.head;
    ASSERT_TRUE(eventually([this] { return subscribers() == 1; }));
    for (int index = 0; index < 5; ++index) {
        publish(R"({"event":"new","id":)" + std::to_string(index) + "}");
    }
    for (int index = 0; index < 5; ++index) {
        const Frame frame = client.receive();
        ASSERT_EQ(frame.opcode, 1);
        EXPECT_EQ(frame.payload, R"({"event":"new","id":)" + std::to_string(index) + "}");
    }
}

TEST_F(EventStreamServerTest, ClosesAClientThatSendsData) {
    start();
    WsClient client(port_);
    ASSERT_EQ(client.handshake(host()), 101);
    client.send_frame(1, "hello");
    const Frame frame = client.receive();
    ASSERT_EQ(frame.opcode, 8);
    EXPECT_EQ(frame.close_code(), 1003);
    EXPECT_NE(frame.close_reason().find("takes no messages"), std::string::npos);
    EXPECT_TRUE(eventually([this] { return subscribers() == 0; }));
}

TEST_F(EventStreamServerTest, RefusesClientsBeyondTheLimit) {
    start({.max_clients = 1, .max_queued_messages = 10, .max_queued_bytes = 1000});
    WsClient first(port_);
    ASSERT_EQ(first.handshake(host()), 101);
    WsClient second(port_);
    EXPECT_EQ(second.handshake(host()), 503);
    EXPECT_NE(second.body.find("1 clients already"), std::string::npos) << second.body;
}

// The slow reader stops reading: once the kernel's buffers are full its queue fills and it is
// dropped, while the other reader gets every event and the loop keeps answering requests. When
// it reads again, it finds what was sent before and the close with the reason.
TEST_F(EventStreamServerTest, DisconnectsASlowReaderWithTheReasonAndKeepsTheOthers) {
    start({.max_clients = 4, .max_queued_messages = 20, .max_queued_bytes = 1U << 20U});
    WsClient slow(port_, 4096);
    ASSERT_EQ(slow.handshake(host()), 101);
    WsClient fast(port_);
    ASSERT_EQ(fast.handshake(host()), 101);
    ASSERT_TRUE(eventually([this] { return subscribers() == 2; }));
    const std::string big(std::size_t{64} * 1024, 'x');
    int sent = 0;
    bool dropped = false;
    while (!dropped && sent < 2000) {
        for (int index = 0; index < 10; ++index) {
            publish(R"({"event":"dns","n":)" + std::to_string(sent++) + R"(,"pad":")" + big +
                    R"("})");
        }
        for (int index = 0; index < 10; ++index) {
            ASSERT_EQ(fast.receive().opcode, 1) << "after " << sent;
        }
        dropped = on_loop([this] { return hub_->counters().too_slow; }) > 0;
        if (!dropped && sent == 100) {
            EXPECT_EQ(status_code(), 200); // the slow reader holds nothing up
        }
    }
    ASSERT_TRUE(dropped) << "never dropped after " << sent << " events";
    EXPECT_EQ(subscribers(), 1U);
    EXPECT_EQ(status_code(), 200);
    publish(R"({"event":"after"})");
    const Frame after = fast.receive();
    EXPECT_EQ(after.payload, R"({"event":"after"})");

    Frame frame;
    int taken = 0;
    do {
        frame = slow.receive();
        ++taken;
    } while (frame.opcode == 1);
    ASSERT_EQ(frame.opcode, 8) << "after " << taken << " frames";
    EXPECT_EQ(frame.close_code(), 1008);
    EXPECT_TRUE(frame.close_reason().starts_with("too slow: ")) << frame.close_reason();
    EXPECT_TRUE(frame.close_reason().ends_with(" events not taken")) << frame.close_reason();
    // The client's half of the closing handshake; the server then waits for the TCP close.
    slow.send_frame(8, frame.payload.substr(0, 2));
    slow.close();
    EXPECT_TRUE(eventually(
        [this] { return on_loop([this] { return server_->event_stream_count(); }) == 1; }));
}

} // namespace
} // namespace pw::api
