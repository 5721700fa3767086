// Integers as the conversions read and write them: 1 to 16 bytes or a bit-field, little-endian,
// held as 128 bits, checked against the width they go into, spelled in messages.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

namespace molt::transform {

// An integer of 1 to 16 bytes, little-endian, widened to 128 bits.
inline __int128 read_integer(const unsigned char *bytes, std::uint64_t size, bool is_signed_value)
{
    if (size == 16) {
        __int128 wide;
        std::memcpy(&wide, bytes, 16);
        return wide;  // an unsigned __int128 above the signed range reads negative; fits() then refuses it
    }
    std::uint64_t raw = 0;
    std::memcpy(&raw, bytes, std::min<std::uint64_t>(size, 8));
    if (is_signed_value && size < 8 && (raw >> (size * 8 - 1)) & 1)
        raw |= ~std::uint64_t{0} << (size * 8);
    return is_signed_value ? static_cast<__int128>(static_cast<std::int64_t>(raw)) : static_cast<__int128>(raw);
}

inline bool fits(__int128 value, std::uint64_t bits, bool is_signed_value)
{
    if (bits >= 64)
        return is_signed_value ? value >= INT64_MIN && value <= INT64_MAX : value >= 0 && value <= static_cast<__int128>(UINT64_MAX);
    __int128 span = static_cast<__int128>(1) << bits;
    return is_signed_value ? value >= -(span / 2) && value < span / 2 : value >= 0 && value < span;
}

inline std::string text(__int128 value)
{
    bool negative = value < 0;
    unsigned __int128 magnitude = negative ? -static_cast<unsigned __int128>(value) : static_cast<unsigned __int128>(value);
    std::string digits;
    do {
        digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(magnitude % 10)));
        magnitude /= 10;
    } while (magnitude);
    return negative ? "-" + digits : digits;
}

inline bool all_zero(const unsigned char *bytes, std::uint64_t size)
{
    for (std::uint64_t i = 0; i < size; ++i)
        if (bytes[i])
            return false;
    return true;
}

// Bits [offset, offset + width) of a bit-field, as an integer.
inline __int128 read_bits(const unsigned char *base, std::uint64_t offset, std::uint32_t width, bool is_signed_value)
{
    unsigned __int128 value = 0;
    for (std::uint32_t i = 0; i < width; ++i) {
        std::uint64_t bit = offset + i;
        if ((base[bit / 8] >> (bit % 8)) & 1)
            value |= static_cast<unsigned __int128>(1) << i;
    }
    if (is_signed_value && width && (value >> (width - 1)) & 1)
        value |= ~static_cast<unsigned __int128>(0) << width;
    return static_cast<__int128>(value);
}

inline void write_bits(unsigned char *base, std::uint64_t offset, std::uint32_t width, __int128 value)
{
    for (std::uint32_t i = 0; i < width; ++i) {
        std::uint64_t bit = offset + i;
        unsigned char mask = static_cast<unsigned char>(1u << (bit % 8));
        if ((static_cast<unsigned __int128>(value) >> i) & 1)
            base[bit / 8] |= mask;
        else
            base[bit / 8] &= static_cast<unsigned char>(~mask);
    }
}

}  // namespace molt::transform
