// QueueKeeper with a real NFQUEUE socket that dies (issue 10 item 9), in a private network
// namespace: the socket is replaced under the queue (dup2 of /dev/null over its fd, so the
// kernel releases it and unbinds the queue, as when a socket breaks), and the keeper must bind
// the queue again so that packets are answered once more. Root; skips otherwise. main() is in
// rule_set_netns_test.cc.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "common/unique_fd.h"
#include "fakes/private_network_namespace.h"
#include "interception/nfqueue.h"
#include "interception/queue_keeper.h"
#include "interception/rule_set.h"

namespace pw::interception {
namespace {

constexpr std::uint16_t kQueue = 17999;
constexpr std::uint16_t kPort = 9411;

bool loopback_up() {
    const UniqueFd control(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq request{};
    std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
    if (!control.valid() || ::ioctl(control.get(), SIOCGIFFLAGS, &request) != 0) {
        return false;
    }
    request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
    return ::ioctl(control.get(), SIOCSIFFLAGS, &request) == 0;
}

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

template <typename Address>
sockaddr* as_sockaddr(Address& address) {
    return reinterpret_cast<sockaddr*>(&address); // NOLINT: the BSD socket API's calling convention
}

Result<std::unique_ptr<PacketQueue>> open_queue() {
    auto queue = NfQueue::open({.queue_number = kQueue});
    if (!queue) {
        return std::unexpected(queue.error());
    }
    return std::move(*queue);
}

bool readable(int fd, std::chrono::milliseconds timeout) {
    pollfd wait{.fd = fd, .events = POLLIN, .revents = 0};
    return ::poll(&wait, 1, static_cast<int>(timeout.count())) == 1;
}

class QueueKeeperNetnsTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (const auto reason = testing::PrivateNetworkNamespace::enter()) {
            GTEST_SKIP() << *reason;
        }
        // Only ever reached inside the private namespace: UDP to kPort goes to the queue.
        ASSERT_TRUE(loopback_up());
        IptablesBinaryRunner runner;
        const auto restored = runner.restore(
            IpFamily::V4, "*mangle\n-A OUTPUT -p udp --dport " + std::to_string(kPort) +
                              " -j NFQUEUE --queue-num " + std::to_string(kQueue) + "\nCOMMIT\n");
        ASSERT_TRUE(restored) << restored.error().message();
        receiver_ = UniqueFd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        sockaddr_in address = loopback(kPort);
        ASSERT_EQ(::bind(receiver_.get(), as_sockaddr(address), sizeof(address)), 0);
        sender_ = UniqueFd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        auto first = open_queue();
        ASSERT_TRUE(first) << first.error().message();
        keeper_.emplace(kQueue, std::move(*first), open_queue);
    }

    // Sends one datagram, answers what the queue hands over (accept), and says whether it
    // arrived.
    bool passes() {
        sockaddr_in address = loopback(kPort);
        const char byte = 'x';
        if (::sendto(sender_.get(), &byte, 1, 0, as_sockaddr(address), sizeof(address)) != 1) {
            return false;
        }
        PacketQueue* queue = keeper_->queue();
        if (queue == nullptr || !readable(queue->fd(), std::chrono::milliseconds(1000))) {
            return false;
        }
        const auto drained = queue->drain([](const QueuedPacket&) { return 1700U; });
        if (!drained || *drained == 0) {
            return false;
        }
        char received = 0;
        return readable(receiver_.get(), std::chrono::milliseconds(1000)) &&
               ::recv(receiver_.get(), &received, 1, 0) == 1;
    }

    // The socket dies: /dev/null takes its fd (the NfQueue closes /dev/null later, once). Then
    // its failed drains go to the keeper as the daemon reports them; returns the last outcome.
    QueueKeeper::Outcome kill_socket_and_report_failures() {
        const UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        const int fd = keeper_->queue()->fd();
        if (!null.valid() || ::dup2(null.get(), fd) != fd) {
            return QueueKeeper::Outcome::Retry;
        }
        QueueKeeper::Outcome outcome = QueueKeeper::Outcome::Retry;
        for (int attempt = 0; attempt < QueueKeeper::kFailuresBeforeReopen; ++attempt) {
            const auto drained = keeper_->queue()->drain([](const QueuedPacket&) { return 1700U; });
            if (drained) {
                return QueueKeeper::Outcome::Retry; // a dead socket must fail to receive
            }
            outcome = keeper_->queue_failed(drained.error(), [this] { ++before_close_; });
        }
        return outcome;
    }

    UniqueFd receiver_;
    UniqueFd sender_;
    std::optional<QueueKeeper> keeper_;
    int before_close_ = 0;
};

TEST_F(QueueKeeperNetnsTest, ADeadQueueSocketIsReplacedAndPacketsAreAnsweredAgain) {
    ASSERT_TRUE(passes());
    const auto outcome = kill_socket_and_report_failures();
    EXPECT_EQ(outcome, QueueKeeper::Outcome::Reopened) << keeper_->last_error();
    EXPECT_EQ(before_close_, 1);
    EXPECT_EQ(keeper_->counters().reopened, 1U);
    EXPECT_TRUE(passes()) << "the queue bound again answers packets";
}

} // namespace
} // namespace pw::interception
