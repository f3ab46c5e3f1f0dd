#pragma once

#include <string_view>

namespace pw::api {

// The OpenAPI 3 document of the API (in openapi_document.cc), served at
// GET /api/v1/openapi.json. tests/api/openapi_test.cc checks that it lists exactly the routes
// the router serves.
[[nodiscard]] std::string_view openapi_document();

} // namespace pw::api
