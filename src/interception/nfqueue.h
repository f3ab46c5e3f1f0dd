#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "interception/packet_queue.h"

struct mnl_socket;

namespace pw::interception {

struct MnlSocketDeleter {
    void operator()(mnl_socket* socket) const noexcept;
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlSocketDeleter>;

// One NFQUEUE queue bound through libmnl + libnetfilter_queue's message helpers. The daemon
// registers fd() with its event loop and calls drain() when it is readable. Verdicts are
// batched: all verdicts for one drain() go to the kernel in one sendto(). Runs on the
// event-loop thread only.
class NfQueue final : public PacketQueue {
public:
    struct Options {
        std::uint16_t queue_number = 0;
        // Bytes of each packet copied to userspace; headers are what we need.
        std::uint32_t copy_range = 256;
        // Packets the kernel may hold for us before it drops new ones (fail-closed).
        std::uint32_t max_queue_length = 8192;
    };

    using Counters = QueueCounters;
    using Handler = PacketHandler;

    // Binds the queue; fails with a clear error when another process holds it or the kernel
    // lacks nfnetlink_queue.
    [[nodiscard]] static Result<std::unique_ptr<NfQueue>> open(const Options& options);

    NfQueue(const NfQueue&) = delete;
    NfQueue& operator=(const NfQueue&) = delete;
    NfQueue(NfQueue&&) = delete;
    NfQueue& operator=(NfQueue&&) = delete;
    ~NfQueue() override;

    // interception::PacketQueue
    [[nodiscard]] int fd() const override;
    [[nodiscard]] std::uint16_t queue_number() const override { return options_.queue_number; }
    [[nodiscard]] const Counters& counters() const override { return counters_; }
    [[nodiscard]] Result<std::size_t> drain(const Handler& handler) override;
    void queue_verdict(std::uint32_t packet_id, std::uint32_t mark) override;
    [[nodiscard]] Status flush_verdicts() override;

private:
    NfQueue(MnlSocket socket, const Options& options);
    [[nodiscard]] Status configure();
    [[nodiscard]] Status send_config_message(std::span<char> message);

    MnlSocket socket_;
    Options options_;
    std::uint32_t port_id_ = 0;
    std::uint32_t config_sequence_ = 0;
    Counters counters_;
    std::size_t receive_slot_size_ = 0;
    std::vector<char> receive_buffer_; // kReceiveSlots slots for one recvmmsg()
    std::vector<char> verdict_batch_;
    std::size_t verdict_batch_used_ = 0;
};

} // namespace pw::interception
