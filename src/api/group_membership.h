#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pw::api {

// Whether a user belongs to a Unix group: the access policy's view of the user database.
// SystemGroupMembership asks NSS; tests use a table.
class GroupMembership {
public:
    virtual ~GroupMembership() = default;
    // True when `uid` has `group` as its primary or a supplementary group. An unknown user or an
    // unknown group is no membership.
    [[nodiscard]] virtual bool is_member(std::uint32_t uid, std::string_view group) = 0;
    // The login name of `uid`, for refusal messages; nullopt when unknown (the message then
    // shows the uid alone).
    [[nodiscard]] virtual std::optional<std::string> user_name(std::uint32_t /*uid*/) {
        return std::nullopt;
    }
};

// Group membership from the system's user database (getpwuid_r, getgrnam_r, getgrouplist:
// /etc/passwd and /etc/group, or whatever NSS is configured with). Asked once per API connection,
// not per request, so nothing is cached: a user added to the group can use the API on their next
// connection, and one removed from it is refused then. A slow NSS source (LDAP) would delay the
// event loop for that lookup; the daemon's hosts use files.
class SystemGroupMembership final : public GroupMembership {
public:
    // api::GroupMembership
    [[nodiscard]] bool is_member(std::uint32_t uid, std::string_view group) override;
    [[nodiscard]] std::optional<std::string> user_name(std::uint32_t uid) override;
};

} // namespace pw::api
