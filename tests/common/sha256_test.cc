#include "common/sha256.h"

#include <random>
#include <string>

#include <gtest/gtest.h>
#include <openssl/evp.h>

namespace pw {
namespace {

std::string hex(const Sha256Digest& digest) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string text;
    for (const std::uint8_t byte : digest) {
        text += kHex[byte >> 4U];
        text += kHex[byte & 0x0FU];
    }
    return text;
}

// The examples of FIPS 180-4 (NIST's "SHA256.pdf" examples) and the classic long message.
TEST(Sha256Test, KnownAnswers) {
    EXPECT_EQ(hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(hex(sha256("abc")),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    EXPECT_EQ(hex(sha256(std::string(1'000'000, 'a'))),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Every length around the block and padding boundaries, and random contents, against
// OpenSSL's: profile IDs made before this implementation must come out the same.
TEST(Sha256Test, AgreesWithOpenSslOnEveryLengthUpTo300) {
    std::mt19937 random(17); // NOLINT(cert-msc32-c,cert-msc51-cpp): reproducible on purpose
    for (std::size_t length = 0; length <= 300; ++length) {
        std::string bytes(length, '\0');
        for (char& byte : bytes) {
            byte = static_cast<char>(random() & 0xFFU);
        }
        Sha256Digest expected{};
        unsigned int size = 0;
        ASSERT_EQ(
            EVP_Digest(bytes.data(), bytes.size(), expected.data(), &size, EVP_sha256(), nullptr),
            1);
        ASSERT_EQ(size, expected.size());
        EXPECT_EQ(sha256(bytes), expected) << "length " << length;
    }
}

} // namespace
} // namespace pw
