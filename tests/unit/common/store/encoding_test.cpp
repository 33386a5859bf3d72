// The stores' byte encodings (common/store/lmdb.hpp): big-endian integers whose byte order is
// their numeric order, and length-prefixed strings that read back exactly and refuse to read
// past the end.
#include "common/store/lmdb.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace vartalap {
namespace {

TEST(StoreEncodingTest, BigEndianIntegersSortByValue) {
    std::string a, b;
    lmdb::append_u64_be(a, 255);
    lmdb::append_u64_be(b, 256);
    EXPECT_LT(a, b);
    EXPECT_EQ(lmdb::read_u64_be(b), 256u);
    std::string bytes;
    lmdb::append_u16_be(bytes, 0x1234);
    lmdb::append_u32_be(bytes, 0x56789abc);
    EXPECT_EQ(bytes, std::string("\x12\x34\x56\x78\x9a\xbc", 6));
    EXPECT_EQ(lmdb::read_u16_be(bytes), 0x1234);
}

TEST(StoreEncodingTest, LengthPrefixedStringsReadBackAndRefuseShortInput) {
    std::string bytes;
    lmdb::append_length_prefixed(bytes, "alice");
    lmdb::append_length_prefixed(bytes, std::string_view("a\0b", 3));
    lmdb::append_length_prefixed(bytes, "");
    EXPECT_EQ(bytes.substr(0, 2), std::string("\x00\x05", 2));

    std::string_view in = bytes, out;
    ASSERT_TRUE(lmdb::read_length_prefixed(in, out));
    EXPECT_EQ(out, "alice");
    ASSERT_TRUE(lmdb::read_length_prefixed(in, out));
    EXPECT_EQ(out, std::string_view("a\0b", 3));
    ASSERT_TRUE(lmdb::read_length_prefixed(in, out));
    EXPECT_TRUE(out.empty());
    EXPECT_TRUE(in.empty());

    for (std::size_t cut = 0; cut < 7; ++cut) { // "alice" with its prefix is 7 bytes
        std::string_view short_input = std::string_view(bytes).substr(0, cut);
        const std::string_view before = short_input;
        EXPECT_FALSE(lmdb::read_length_prefixed(short_input, out)) << cut;
        EXPECT_EQ(short_input, before) << cut; // left unchanged
    }
}

} // namespace
} // namespace vartalap
