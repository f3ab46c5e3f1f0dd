#include "interception/conntrack.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

#include "common/log.h"

namespace pw::interception {
namespace {

struct NfctHandleDeleter {
    void operator()(nfct_handle* handle) const noexcept { nfct_close(handle); }
};
using NfctHandle = std::unique_ptr<nfct_handle, NfctHandleDeleter>;

struct ConntrackDeleter {
    void operator()(nf_conntrack* entry) const noexcept { nfct_destroy(entry); }
};
using Conntrack = std::unique_ptr<nf_conntrack, ConntrackDeleter>;

Result<NfctHandle> open_conntrack() {
    NfctHandle handle(nfct_open(CONNTRACK, 0));
    if (!handle) {
        return fail_errno("open conntrack netlink socket", errno);
    }
    return handle;
}

// What the dump callback collects: copies of the entries to delete. The entries the library
// passes to the callback live only during the call.
struct DumpState {
    std::span<const std::uint32_t> marks;
    std::vector<Conntrack> matches;
};

// Called by libnetfilter_conntrack for every entry of the dump. noexcept: an exception must not
// unwind through C frames, and bad_alloc ends the process anyway (CONVENTIONS rule 11).
int collect_marked(nf_conntrack_msg_type /*type*/, nf_conntrack* entry, void* data) noexcept {
    auto& state = *static_cast<DumpState*>(data);
    const std::uint32_t mark = nfct_get_attr_u32(entry, ATTR_MARK);
    if (std::ranges::find(state.marks, mark) != state.marks.end()) {
        if (Conntrack copy(nfct_clone(entry)); copy) {
            state.matches.push_back(std::move(copy));
        }
    }
    return NFCT_CB_CONTINUE;
}

std::string_view family_name(std::uint32_t family) {
    return family == AF_INET ? "IPv4" : "IPv6";
}

Result<std::vector<Conntrack>> dump_marked(std::span<const std::uint32_t> marks,
                                           std::uint32_t family) {
    auto handle = open_conntrack();
    if (!handle) {
        return std::unexpected(handle.error());
    }
    DumpState state{.marks = marks, .matches = {}};
    if (nfct_callback_register(handle->get(), NFCT_T_ALL, collect_marked, &state) != 0) {
        return fail_errno("register conntrack dump callback", errno);
    }
    if (nfct_query(handle->get(), NFCT_Q_DUMP, &family) != 0) {
        return fail_errno("dump " + std::string(family_name(family)) + " conntrack table", errno);
    }
    return std::move(state.matches);
}

// Deletes the entries on a second handle: the dump's handle is busy until the dump ends, and
// deleting afterwards keeps the dump consistent.
Result<std::size_t> destroy_all(const std::vector<Conntrack>& entries) {
    if (entries.empty()) {
        return std::size_t{0};
    }
    auto handle = open_conntrack();
    if (!handle) {
        return std::unexpected(handle.error());
    }
    std::size_t deleted = 0;
    for (const auto& entry : entries) {
        if (nfct_query(handle->get(), NFCT_Q_DESTROY, entry.get()) == 0) {
            ++deleted;
        } else if (errno != ENOENT) { // ENOENT: the entry expired since the dump
            return fail_errno("delete conntrack entry", errno);
        }
    }
    return deleted;
}

} // namespace

Result<std::size_t> delete_conntrack_entries_with_marks(std::span<const std::uint32_t> marks) {
    if (marks.empty()) {
        return std::size_t{0};
    }
    std::size_t deleted = 0;
    for (const std::uint32_t family : {std::uint32_t{AF_INET}, std::uint32_t{AF_INET6}}) {
        auto matches = dump_marked(marks, family);
        if (!matches) {
            return std::unexpected(matches.error());
        }
        auto count = destroy_all(*matches);
        if (!count) {
            return std::unexpected(count.error());
        }
        deleted += *count;
    }
    log::get("conntrack")->debug("conntrack_deleted entries={}", deleted);
    return deleted;
}

} // namespace pw::interception
