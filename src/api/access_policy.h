#pragma once

#include <optional>
#include <string>
#include <vector>

#include "api/caller.h"
#include "api/group_membership.h"

namespace pw::api {

// Who may use the API (issue 11 item 2): root, and members of the configured groups
// (`core/apiGroups`, default "portwarden"). A caller nobody could name is refused: the API
// changes the firewall's rules, so "we do not know who you are" must not mean "anyone".
// Runs on the event-loop thread; `membership` must outlive the policy.
class AccessPolicy {
public:
    AccessPolicy(std::vector<std::string> groups, GroupMembership& membership);

    // First, an unknown caller is refused. Second, root (uid 0) is allowed. Third, a member of
    // any of the groups is allowed. Everyone else is refused.
    [[nodiscard]] bool allows(const std::optional<Caller>& caller) const;

    // Why allows() said no, for the 403 body: "user alice (uid 1000) is not allowed to use the
    // API: root or a member of group(s) portwarden may use it".
    [[nodiscard]] std::string refusal(const std::optional<Caller>& caller) const;

    [[nodiscard]] const std::vector<std::string>& groups() const { return groups_; }

private:
    std::vector<std::string> groups_;
    GroupMembership& membership_;
};

} // namespace pw::api
