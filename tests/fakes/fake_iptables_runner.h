#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ip_address.h"
#include "common/result.h"
#include "interception/rule_set.h"

namespace pw::fakes {

// An IptablesRunner that hands out canned iptables-save output and records the scripts it is
// asked to restore. A family can be made to fail at save or at restore, and can show another
// save output once a restore succeeded (what the kernel holds then). Single-threaded.
class FakeIptablesRunner final : public interception::IptablesRunner {
public:
    struct Restore {
        IpFamily family = IpFamily::V4;
        std::string script;
    };

    void set_save_output(IpFamily family, std::string save) { saves_[family] = std::move(save); }
    // What save() returns after the next successful restore of `family`.
    void set_save_after_restore(IpFamily family, std::string save) {
        saves_after_restore_[family] = std::move(save);
    }
    void fail_save(IpFamily family, std::string what) { save_errors_[family] = std::move(what); }
    void succeed_save(IpFamily family) { save_errors_.erase(family); }
    void succeed_restore(IpFamily family) { restore_errors_.erase(family); }
    void fail_restore(IpFamily family, std::string what) {
        restore_errors_[family] = std::move(what);
    }
    [[nodiscard]] const std::vector<Restore>& restores() const { return restores_; }

    // interception::IptablesRunner
    [[nodiscard]] Result<std::string> save(IpFamily family) override {
        if (const auto error = save_errors_.find(family); error != save_errors_.end()) {
            return fail(error->second);
        }
        const auto save = saves_.find(family);
        return save == saves_.end() ? std::string{} : save->second;
    }
    [[nodiscard]] Status restore(IpFamily family, std::string_view script) override {
        if (const auto error = restore_errors_.find(family); error != restore_errors_.end()) {
            return fail(error->second);
        }
        restores_.push_back(Restore{.family = family, .script = std::string(script)});
        if (const auto next = saves_after_restore_.find(family);
            next != saves_after_restore_.end()) {
            saves_[family] = next->second;
        }
        return {};
    }

private:
    std::map<IpFamily, std::string> saves_;
    std::map<IpFamily, std::string> saves_after_restore_;
    std::map<IpFamily, std::string> save_errors_;
    std::map<IpFamily, std::string> restore_errors_;
    std::vector<Restore> restores_;
};

} // namespace pw::fakes
