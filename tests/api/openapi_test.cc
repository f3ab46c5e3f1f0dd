#include <set>
#include <string>
#include <utility>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "api/openapi_document.h"
#include "api/router.h"

// The OpenAPI document against the router: every route served is documented, and nothing is
// documented that is not served.
namespace pw::api {
namespace {

TEST(OpenApiDocument, ListsExactlyTheRoutesTheRouterServes) {
    const nlohmann::json document = nlohmann::json::parse(openapi_document());
    ASSERT_EQ(document.at("openapi"), "3.0.3");
    const std::string base = "/api/v1";
    ASSERT_EQ(document.at("servers").at(0).at("url"), "http://127.0.0.1:817" + base);
    std::set<std::pair<std::string, std::string>> documented;
    for (const auto& [path, operations] : document.at("paths").items()) {
        for (const auto& [method, operation] : operations.items()) {
            std::string upper = method;
            for (char& letter : upper) {
                letter = static_cast<char>(letter - 'a' + 'A');
            }
            documented.emplace(upper, base + path);
            EXPECT_TRUE(operation.contains("summary")) << method << " " << path;
            EXPECT_TRUE(operation.at("responses").is_object()) << method << " " << path;
        }
    }
    const auto table = route_table();
    const std::set<std::pair<std::string, std::string>> served(table.begin(), table.end());
    for (const auto& route : served) {
        EXPECT_TRUE(documented.contains(route))
            << "not documented: " << route.first << " " << route.second;
    }
    for (const auto& route : documented) {
        EXPECT_TRUE(served.contains(route))
            << "documented but not served: " << route.first << " " << route.second;
    }
}

TEST(OpenApiDocument, EveryReferenceResolves) {
    const nlohmann::json document = nlohmann::json::parse(openapi_document());
    const nlohmann::json& schemas = document.at("components").at("schemas");
    std::size_t references = 0;
    const auto check = [&](const auto& self, const nlohmann::json& node) -> void {
        if (node.is_object()) {
            if (const auto ref = node.find("$ref"); ref != node.end()) {
                const std::string target = ref->get<std::string>();
                const std::string prefix = "#/components/schemas/";
                ASSERT_TRUE(target.starts_with(prefix)) << target;
                EXPECT_TRUE(schemas.contains(target.substr(prefix.size()))) << target;
                ++references;
            }
            for (const auto& [name, child] : node.items()) {
                self(self, child);
            }
        } else if (node.is_array()) {
            for (const auto& child : node) {
                self(self, child);
            }
        }
    };
    check(check, document);
    EXPECT_GT(references, 20U);
}

} // namespace
} // namespace pw::api
