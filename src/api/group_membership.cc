#include "api/group_membership.h"

#include <grp.h>
#include <pwd.h>
#include <sys/types.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <string>
#include <vector>

namespace pw::api {
namespace {

// The reentrant lookups need a buffer for the strings of their answer; ERANGE asks for a bigger
// one. Beyond this size something is wrong with the database, and the answer is "unknown".
constexpr std::size_t kFirstBuffer = 1024;
constexpr std::size_t kMaxBuffer = std::size_t{1} << 20U;
// Supplementary groups of one user: NGROUPS_MAX is 65536 on Linux.
constexpr int kMaxGroups = 65536;

struct UserEntry {
    std::string name;
    gid_t primary_group = 0;
};

std::optional<UserEntry> find_user(std::uint32_t uid) {
    std::vector<char> buffer(kFirstBuffer);
    while (buffer.size() <= kMaxBuffer) {
        passwd entry{};
        passwd* found = nullptr;
        const int error = ::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found);
        if (error == ERANGE) {
            buffer.resize(buffer.size() * 2);
            continue;
        }
        if (error != 0 || found == nullptr) {
            return std::nullopt;
        }
        return UserEntry{.name = entry.pw_name, .primary_group = entry.pw_gid};
    }
    return std::nullopt;
}

std::optional<gid_t> find_group(const std::string& name) {
    std::vector<char> buffer(kFirstBuffer);
    while (buffer.size() <= kMaxBuffer) {
        group entry{};
        group* found = nullptr;
        const int error = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
        if (error == ERANGE) {
            buffer.resize(buffer.size() * 2);
            continue;
        }
        if (error != 0 || found == nullptr) {
            return std::nullopt;
        }
        return entry.gr_gid;
    }
    return std::nullopt;
}

// The user's primary group and every group that lists the user as a member.
std::vector<gid_t> groups_of(const UserEntry& user) {
    int count = 32;
    std::vector<gid_t> groups;
    while (count <= kMaxGroups) {
        groups.resize(static_cast<std::size_t>(count));
        int found = count;
        if (::getgrouplist(user.name.c_str(), user.primary_group, groups.data(), &found) >= 0) {
            groups.resize(static_cast<std::size_t>(found));
            return groups;
        }
        // -1: too small; `found` now holds the number needed (glibc), at least double anyway.
        count = std::max(found, count * 2);
    }
    return {user.primary_group};
}

} // namespace

bool SystemGroupMembership::is_member(std::uint32_t uid, std::string_view group) {
    const std::optional<gid_t> gid = find_group(std::string(group));
    if (!gid) {
        return false;
    }
    const std::optional<UserEntry> user = find_user(uid);
    if (!user) {
        return false;
    }
    const std::vector<gid_t> groups = groups_of(*user);
    return std::ranges::find(groups, *gid) != groups.end();
}

std::optional<std::string> SystemGroupMembership::user_name(std::uint32_t uid) {
    std::optional<UserEntry> user = find_user(uid);
    if (!user) {
        return std::nullopt;
    }
    return std::move(user->name);
}

} // namespace pw::api
