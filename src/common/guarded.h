#pragma once

#include <mutex>
#include <utility>

namespace pw {

// Data that more than one thread touches. The only way to reach the value is with_lock(),
// so "which mutex protects this?" is answered by the type.
template <typename T>
class Guarded {
public:
    template <typename... Args>
    explicit Guarded(Args&&... args) : value_(std::forward<Args>(args)...) {}

    template <typename Function>
    decltype(auto) with_lock(Function&& function) {
        const std::scoped_lock lock(mutex_);
        return std::forward<Function>(function)(value_);
    }

private:
    std::mutex mutex_;
    T value_;
};

} // namespace pw
