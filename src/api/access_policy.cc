#include "api/access_policy.h"

#include <string>
#include <utility>

namespace pw::api {

AccessPolicy::AccessPolicy(std::vector<std::string> groups, GroupMembership& membership)
    : groups_(std::move(groups)), membership_(membership) {}

bool AccessPolicy::allows(const std::optional<Caller>& caller) const {
    if (!caller) {
        return false;
    }
    if (caller->uid == 0) {
        return true;
    }
    for (const std::string& group : groups_) {
        if (membership_.is_member(caller->uid, group)) {
            return true;
        }
    }
    return false;
}

std::string AccessPolicy::refusal(const std::optional<Caller>& caller) const {
    if (!caller) {
        return "the process behind this connection could not be identified; the API answers only "
               "local processes it can name";
    }
    std::string who = "user ";
    const std::string uid = std::to_string(caller->uid);
    if (const std::optional<std::string> name = membership_.user_name(caller->uid)) {
        who += *name + " (uid " + uid + ")";
    } else {
        who += uid;
    }
    if (!caller->executable.empty()) {
        who += " running " + caller->executable;
    }
    if (groups_.empty()) {
        return who + " is not allowed to use the API: only root may use it";
    }
    std::string groups;
    for (const std::string& group : groups_) {
        groups += (groups.empty() ? "" : ", ") + group;
    }
    return who + " is not allowed to use the API: root or a member of group(s) " + groups +
           " may use it";
}

} // namespace pw::api
