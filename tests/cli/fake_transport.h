#pragma once

#include <deque>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/api_client.h"

namespace pw::cli::testing {

// Records every request and answers from a queue of canned answers, in order; with the queue
// empty, 200 and an empty object. Single-threaded, like the commands.
class FakeTransport final : public ApiTransport {
public:
    ApiResult send(const ApiRequest& request) override {
        requests.push_back(request);
        if (answers.empty()) {
            return ApiResponse{.status = 200, .body = nlohmann::json::object()};
        }
        ApiResult next = std::move(answers.front());
        answers.pop_front();
        return next;
    }

    void answer(int status, nlohmann::json body) {
        answers.emplace_back(ApiResponse{.status = status, .body = std::move(body)});
    }
    void fail(ClientFailure failure, std::string what) {
        answers.emplace_back(std::unexpected(ClientError{
            .failure = failure, .error = Error{.what = std::move(what), .reason = {}}}));
    }

    std::vector<ApiRequest> requests;
    std::deque<ApiResult> answers;
};

} // namespace pw::cli::testing
