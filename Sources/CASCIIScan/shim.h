// Sixteen bytes at a time for the word tokenizer's ASCII path: Swift has no spelling for a vector's byte mask.
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef uint8_t sluice_bytes16 __attribute__((ext_vector_type(16)));
typedef char sluice_mask16 __attribute__((ext_vector_type(16)));

/// Bit i set where byte i of `mask` is set (each byte is 0 or 0xFF).
static inline uint32_t sluice_bits16(sluice_mask16 mask) {
#if defined(__SSE2__)
    return (uint32_t)_mm_movemask_epi8((__m128i)mask);
#else
    const sluice_bytes16 weights = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    sluice_bytes16 weighted = (sluice_bytes16)mask & weights;
    return (uint32_t)__builtin_reduce_add(weighted.lo) | (uint32_t)__builtin_reduce_add(weighted.hi) << 8;
#endif
}

/// Lowercases A-Z in the 64 bytes at `bytes`, in place, and returns a mask with bit i set where byte i is
/// whitespace (U+0009...U+000D or U+0020). Bytes of 0x80 and above are left alone and ORed into `*nonASCII`, so
/// the caller can tell ASCII text at the end.
static inline uint64_t sluice_ascii_scan64(uint8_t *bytes, sluice_bytes16 *nonASCII) {
    uint64_t whitespace = 0;
    sluice_bytes16 seen = *nonASCII;
    for (int part = 0; part < 4; part++) {
        sluice_bytes16 chunk;
        memcpy(&chunk, bytes + 16 * part, 16);
        seen |= chunk;
        sluice_mask16 isWhitespace = (chunk == 0x20) | ((chunk >= 0x09) & (chunk <= 0x0D));
        whitespace |= (uint64_t)sluice_bits16(isWhitespace) << (16 * part);
        sluice_mask16 isUpper = (chunk >= 0x41) & (chunk <= 0x5A);
        chunk |= (sluice_bytes16)isUpper & 0x20;
        memcpy(bytes + 16 * part, &chunk, 16);
    }
    *nonASCII = seen;
    return whitespace;
}

/// Whether every byte ORed into `nonASCII` by ``sluice_ascii_scan64`` was below 0x80.
static inline int sluice_is_ascii(sluice_bytes16 nonASCII) {
    return sluice_bits16((sluice_mask16)(nonASCII >= 0x80)) == 0;
}
