#include "api/access_policy.h"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include <gtest/gtest.h>

#include "api/group_membership.h"

namespace pw::api {
namespace {

// A user database in a table: uid -> name and groups.
class TableGroupMembership final : public GroupMembership {
public:
    void add_user(std::uint32_t uid, std::string name, std::set<std::string, std::less<>> groups) {
        users_[uid] = User{.name = std::move(name), .groups = std::move(groups)};
    }
    bool is_member(std::uint32_t uid, std::string_view group) override {
        ++lookups;
        const auto user = users_.find(uid);
        return user != users_.end() && user->second.groups.contains(group);
    }
    std::optional<std::string> user_name(std::uint32_t uid) override {
        const auto user = users_.find(uid);
        if (user == users_.end()) {
            return std::nullopt;
        }
        return user->second.name;
    }
    int lookups = 0;

private:
    struct User {
        std::string name;
        std::set<std::string, std::less<>> groups;
    };
    std::map<std::uint32_t, User> users_;
};

Caller caller(std::uint32_t uid, std::string executable = "/usr/bin/curl") {
    return Caller{.uid = uid, .pid = 4242, .executable = std::move(executable)};
}

class AccessPolicyTest : public ::testing::Test {
protected:
    void SetUp() override {
        users_.add_user(1000, "alice", {"alice", "portwarden"});
        users_.add_user(1001, "bob", {"bob", "audio"});
        users_.add_user(1002, "carol", {"carol", "admins"});
    }
    TableGroupMembership users_;
};

TEST_F(AccessPolicyTest, RootIsAlwaysAllowedWithoutAskingTheGroups) {
    const AccessPolicy policy({"portwarden"}, users_);
    EXPECT_TRUE(policy.allows(caller(0)));
    EXPECT_EQ(users_.lookups, 0);
    const AccessPolicy nobody_else({}, users_);
    EXPECT_TRUE(nobody_else.allows(caller(0)));
}

TEST_F(AccessPolicyTest, MembersOfAnyConfiguredGroupAreAllowed) {
    const AccessPolicy policy({"portwarden", "admins"}, users_);
    EXPECT_TRUE(policy.allows(caller(1000)));
    EXPECT_TRUE(policy.allows(caller(1002)));
    EXPECT_FALSE(policy.allows(caller(1001)));
}

TEST_F(AccessPolicyTest, UnknownUsersAndUnknownCallersAreRefused) {
    const AccessPolicy policy({"portwarden"}, users_);
    EXPECT_FALSE(policy.allows(caller(5000)));
    EXPECT_FALSE(policy.allows(std::nullopt));
}

TEST_F(AccessPolicyTest, WithoutGroupsOnlyRootIsAllowed) {
    const AccessPolicy policy({}, users_);
    EXPECT_FALSE(policy.allows(caller(1000)));
    EXPECT_EQ(policy.refusal(caller(1000)),
              "user alice (uid 1000) running /usr/bin/curl is not allowed to use the API: only "
              "root may use it");
}

TEST_F(AccessPolicyTest, RefusalNamesTheUserAndWhoMayUseTheApi) {
    const AccessPolicy policy({"portwarden", "admins"}, users_);
    EXPECT_EQ(policy.refusal(caller(1001)),
              "user bob (uid 1001) running /usr/bin/curl is not allowed to use the API: root or a "
              "member of group(s) portwarden, admins may use it");
    EXPECT_EQ(policy.refusal(caller(5000, "")),
              "user 5000 is not allowed to use the API: root or a member of group(s) portwarden, "
              "admins may use it");
    EXPECT_NE(policy.refusal(std::nullopt).find("could not be identified"), std::string::npos);
}

// The real user database: root exists everywhere, is in group "root" (gid 0), and is named.
TEST(SystemGroupMembership, ReadsTheSystemUserDatabase) {
    SystemGroupMembership system;
    EXPECT_TRUE(system.is_member(0, "root"));
    EXPECT_EQ(system.user_name(0), "root");
    EXPECT_FALSE(system.is_member(0, "no-such-group-portwarden-test"));
    // An unassigned uid is nobody's member and has no name.
    EXPECT_FALSE(system.is_member(3999999999U, "root"));
    EXPECT_EQ(system.user_name(3999999999U), std::nullopt);
}

} // namespace
} // namespace pw::api
