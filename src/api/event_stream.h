#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace pw::api {

// The event stream's route: a WebSocket upgrade of GET (docs/api.md#event-stream).
inline constexpr std::string_view kEventStreamPath = "/api/v1/events";

// What one event-stream client may hold of the daemon (docs/api.md#event-stream).
struct EventStreamLimits {
    std::size_t max_clients = 16;
    // A client's queue: messages published but not yet written to its socket. Whichever bound
    // is reached first disconnects the client.
    std::size_t max_queued_messages = 1000;
    std::size_t max_queued_bytes = std::size_t{1} << 20U;
};

// One subscriber of the hub: the WebSocket session of a client (or a test's fake). The hub
// calls it from publish(), after its loop over the subscribers: it must not publish or
// subscribe from these calls (start a write, start the close). Dropping its subscription in
// too_slow() is fine: the hub has let go of it already.
class EventStreamClient {
public:
    virtual ~EventStreamClient() = default;
    // The queue was empty and holds a message now.
    virtual void events_ready() = 0;
    // The queue overflowed: the client is unsubscribed, its queue emptied, and it is to be
    // closed with `reason` ("too slow: 1001 events not taken"). Called once.
    virtual void too_slow(std::string reason) = 0;
};

// The API's event stream (issue 11 item 1): the daemon publishes each event as one JSON object
// (the `--events` line, rendered once) and the hub queues it for every subscribed client, each
// in a bounded queue of its own. A client that does not take its events fast enough is dropped
// (too_slow()) instead of holding memory or the event loop: publishing never blocks and never
// waits for a client. With nobody subscribed, active() is false and the daemon renders nothing.
// Runs on the event-loop thread only; outlives its subscriptions.
class EventHub {
public:
    using Message = std::shared_ptr<const std::string>;

    // A client's place in the hub and its queue; unsubscribes when destroyed.
    class Subscription {
    public:
        Subscription(EventHub& hub, EventStreamClient& client) : hub_(&hub), client_(client) {}
        ~Subscription();
        Subscription(const Subscription&) = delete;
        Subscription& operator=(const Subscription&) = delete;
        Subscription(Subscription&&) = delete;
        Subscription& operator=(Subscription&&) = delete;

        [[nodiscard]] bool empty() const { return queue_.empty(); }
        // The oldest message, out of the queue: the client keeps it while writing it (the
        // queue may be emptied meanwhile, if the client is dropped). Not empty() first.
        [[nodiscard]] Message take();
        [[nodiscard]] std::size_t queued() const { return queue_.size(); }
        [[nodiscard]] std::size_t queued_bytes() const { return bytes_; }

    private:
        friend class EventHub;
        EventHub* hub_; // nullptr once dropped (too slow)
        EventStreamClient& client_;
        std::deque<Message> queue_;
        std::size_t bytes_ = 0;
    };

    struct Counters {
        std::uint64_t published = 0;     // messages published while someone listened
        std::uint64_t subscriptions = 0; // clients subscribed, ever
        std::uint64_t refused = 0;       // subscriptions refused: max_clients reached
        std::uint64_t too_slow = 0;      // clients dropped for a full queue
    };

    explicit EventHub(EventStreamLimits limits = {}) : limits_(limits) {}
    ~EventHub();
    EventHub(const EventHub&) = delete;
    EventHub& operator=(const EventHub&) = delete;
    EventHub(EventHub&&) = delete;
    EventHub& operator=(EventHub&&) = delete;

    // Whether anyone listens: the publisher's check before rendering an event.
    [[nodiscard]] bool active() const { return !subscriptions_.empty(); }
    [[nodiscard]] bool full() const { return subscriptions_.size() >= limits_.max_clients; }
    [[nodiscard]] std::size_t subscriber_count() const { return subscriptions_.size(); }

    // Fails when max_clients are subscribed, saying so.
    [[nodiscard]] Result<std::unique_ptr<Subscription>> subscribe(EventStreamClient& client);

    // One JSON object, without a newline. Queued for every subscriber; a subscriber whose queue
    // would pass a bound is dropped instead (too_slow()).
    void publish(std::string text);

    [[nodiscard]] const EventStreamLimits& limits() const { return limits_; }
    [[nodiscard]] const Counters& counters() const { return counters_; }

private:
    void unsubscribe(Subscription& subscription);

    EventStreamLimits limits_;
    std::vector<Subscription*> subscriptions_;
    Counters counters_;
};

} // namespace pw::api
