#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>

#include "common/result.h"

namespace pw::interception {

// One packet handed over by the kernel, valid only during the handler call: `bytes` points
// into the receive buffer.
struct QueuedPacket {
    std::uint32_t packet_id = 0;
    std::span<const std::uint8_t> bytes; // from the IP header on, at most the copy range
    std::uint32_t original_length = 0;   // the packet's full length (bytes may be shorter)
};

struct QueueCounters {
    std::uint64_t packets = 0;
    std::uint64_t verdicts = 0;
    std::uint64_t receive_errors = 0;     // ENOBUFS: the kernel dropped packets for us
    std::uint64_t truncated_messages = 0; // larger than a receive slot: left unanswered
    std::uint64_t send_errors = 0;        // verdict batches the kernel refused
};

// Returns the mark for the packet's NF_ACCEPT verdict now, or nullopt to answer later with
// queue_verdict() (e.g. while attribution is in flight).
using PacketHandler = std::function<std::optional<std::uint32_t>(const QueuedPacket&)>;

// A bound packet queue: NfQueue in the daemon; tests of what is built on it (QueueKeeper) use
// fakes. Runs on the event-loop thread only.
class PacketQueue {
public:
    virtual ~PacketQueue() = default;

    // The socket to wait on for packets.
    [[nodiscard]] virtual int fd() const = 0;
    [[nodiscard]] virtual std::uint16_t queue_number() const = 0;
    [[nodiscard]] virtual const QueueCounters& counters() const = 0;
    // Reads every packet waiting without blocking and answers them in one batch; returns how
    // many it read. An error means the socket itself failed (not a kernel overflow, which is
    // counted in receive_errors).
    [[nodiscard]] virtual Result<std::size_t> drain(const PacketHandler& handler) = 0;
    // Adds a verdict (NF_ACCEPT + mark) to the pending batch; flush_verdicts() sends it.
    virtual void queue_verdict(std::uint32_t packet_id, std::uint32_t mark) = 0;
    [[nodiscard]] virtual Status flush_verdicts() = 0;
};

} // namespace pw::interception
