#include "api/event_stream.h"

#include <algorithm>
#include <utility>

namespace pw::api {

EventHub::Subscription::~Subscription() {
    if (hub_ != nullptr) {
        hub_->unsubscribe(*this);
    }
}

EventHub::Message EventHub::Subscription::take() {
    Message message = std::move(queue_.front());
    queue_.pop_front();
    bytes_ -= message->size();
    return message;
}

EventHub::~EventHub() {
    // Subscriptions that outlive the hub (they should not) must not reach back into it.
    for (Subscription* subscription : subscriptions_) {
        subscription->hub_ = nullptr;
    }
}

Result<std::unique_ptr<EventHub::Subscription>> EventHub::subscribe(EventStreamClient& client) {
    if (full()) {
        ++counters_.refused;
        return fail("the event stream has its " + std::to_string(limits_.max_clients) +
                    " clients already: try again when one has left");
    }
    auto subscription = std::make_unique<Subscription>(*this, client);
    subscriptions_.push_back(subscription.get());
    ++counters_.subscriptions;
    return subscription;
}

void EventHub::unsubscribe(Subscription& subscription) {
    std::erase(subscriptions_, &subscription);
    subscription.hub_ = nullptr;
}

void EventHub::publish(std::string text) {
    if (subscriptions_.empty()) {
        return;
    }
    ++counters_.published;
    // Rendered once, shared by every queue.
    const auto message = std::make_shared<const std::string>(std::move(text));
    const std::size_t size = message->size();
    // The clients are told after the loop: their calls may not change the list, but a dropped
    // one leaves it here.
    std::vector<EventStreamClient*> ready;
    std::vector<std::pair<EventStreamClient*, std::string>> dropped;
    std::erase_if(subscriptions_, [&](Subscription* subscription) {
        if (subscription->queue_.size() + 1 > limits_.max_queued_messages ||
            subscription->bytes_ + size > limits_.max_queued_bytes) {
            const std::size_t not_taken = subscription->queue_.size() + 1;
            subscription->queue_.clear();
            subscription->bytes_ = 0;
            subscription->hub_ = nullptr;
            ++counters_.too_slow;
            dropped.emplace_back(&subscription->client_,
                                 "too slow: " + std::to_string(not_taken) + " events not taken");
            return true;
        }
        const bool was_empty = subscription->queue_.empty();
        subscription->queue_.push_back(message);
        subscription->bytes_ += size;
        if (was_empty) {
            ready.push_back(&subscription->client_);
        }
        return false;
    });
    for (EventStreamClient* client : ready) {
        client->events_ready();
    }
    for (auto& [client, reason] : dropped) {
        client->too_slow(std::move(reason));
    }
}

} // namespace pw::api
