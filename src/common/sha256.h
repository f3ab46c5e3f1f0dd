#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace pw {

// SHA-256 (FIPS 180-4) of `bytes`. Profile IDs are derived with it (profile/fingerprint.h).
// Our own rather than libcrypto's: the first EVP digest initialises OpenSSL's providers and
// algorithm tables, which made ~2 MiB of libcrypto and a few hundred KiB of heap resident in a
// daemon that otherwise never touches OpenSSL (only DNS-over-TLS upstreams need it).
using Sha256Digest = std::array<std::uint8_t, 32>;
[[nodiscard]] Sha256Digest sha256(std::string_view bytes);

} // namespace pw
