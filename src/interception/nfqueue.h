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

struct mnl_socket;

namespace pw::interception {

// One packet handed over by the kernel, valid only during the handler call: `bytes` points
// into the receive buffer.
struct QueuedPacket {
    std::uint32_t packet_id = 0;
    std::span<const std::uint8_t> bytes; // from the IP header on, at most the copy range
    std::uint32_t original_length = 0;   // the packet's full length (bytes may be shorter)
};

struct MnlSocketDeleter {
    void operator()(mnl_socket* socket) const noexcept;
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlSocketDeleter>;

// One NFQUEUE queue bound through libmnl + libnetfilter_queue's message helpers. The daemon
// registers fd() with its event loop and calls drain() when it is readable. Verdicts are
// batched: all verdicts for one drain() go to the kernel in one sendto(). Runs on the
// event-loop thread only.
class NfQueue {
public:
    struct Options {
        std::uint16_t queue_number = 0;
        // Bytes of each packet copied to userspace; headers are what we need.
        std::uint32_t copy_range = 256;
        // Packets the kernel may hold for us before it drops new ones (fail-closed).
        std::uint32_t max_queue_length = 8192;
    };

    struct Counters {
        std::uint64_t packets = 0;
        std::uint64_t verdicts = 0;
        std::uint64_t receive_errors = 0; // ENOBUFS: the kernel dropped packets for us
        std::uint64_t truncated_messages = 0;
        std::uint64_t send_errors =
            0; // verdict batches the kernel refused // larger than a receive slot: left unanswered
    };

    // Returns the mark for the packet's NF_ACCEPT verdict now, or nullopt to answer later with
    // queue_verdict() (e.g. while attribution is in flight).
    using Handler = std::function<std::optional<std::uint32_t>(const QueuedPacket&)>;

    // Binds the queue; fails with a clear error when another process holds it or the kernel
    // lacks nfnetlink_queue.
    [[nodiscard]] static Result<std::unique_ptr<NfQueue>> open(const Options& options);

    NfQueue(const NfQueue&) = delete;
    NfQueue& operator=(const NfQueue&) = delete;
    NfQueue(NfQueue&&) = delete;
    NfQueue& operator=(NfQueue&&) = delete;
    ~NfQueue();

    [[nodiscard]] int fd() const;
    [[nodiscard]] std::uint16_t queue_number() const { return options_.queue_number; }
    [[nodiscard]] const Counters& counters() const { return counters_; }

    // Reads every packet waiting on the socket without blocking and answers them in one batch.
    // Returns the number of packets read.
    [[nodiscard]] Result<std::size_t> drain(const Handler& handler);

    // Adds a verdict (NF_ACCEPT + mark) to the pending batch; flush_verdicts() sends it.
    void queue_verdict(std::uint32_t packet_id, std::uint32_t mark);
    [[nodiscard]] Status flush_verdicts();

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
