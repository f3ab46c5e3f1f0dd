#include "api/caller.h"

namespace pw::api {

// Out of line so that the vtable has one home (pw_api) rather than one per user.
CallerLookup::~CallerLookup() = default;

} // namespace pw::api
