// Sixteen bytes at a time for the word tokenizer's ASCII path: Swift has no spelling for a vector's byte mask.
#include <stdbool.h>
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
/// whitespace (U+0009...U+000D or U+0020). Every byte is also ORed into `*seen`, so that ``sluice_is_ascii`` can tell
/// at the end whether all of them were ASCII (bytes of 0x80 and above are left as they are).
static inline uint64_t sluice_ascii_scan64(uint8_t *bytes, sluice_bytes16 *seen) {
    uint64_t whitespace = 0;
    sluice_bytes16 all = *seen;
    for (int part = 0; part < 4; part++) {
        sluice_bytes16 chunk;
        memcpy(&chunk, bytes + 16 * part, 16);
        all |= chunk;
        sluice_mask16 isWhitespace = (chunk == 0x20) | ((chunk >= 0x09) & (chunk <= 0x0D));
        whitespace |= (uint64_t)sluice_bits16(isWhitespace) << (16 * part);
        sluice_mask16 isUpper = (chunk >= 0x41) & (chunk <= 0x5A);
        chunk |= (sluice_bytes16)isUpper & 0x20;
        memcpy(bytes + 16 * part, &chunk, 16);
    }
    *seen = all;
    return whitespace;
}

/// Whether every byte ORed into `seen` by ``sluice_ascii_scan64`` was below 0x80.
static inline bool sluice_is_ascii(sluice_bytes16 seen) {
    return sluice_bits16((sluice_mask16)(seen >= 0x80)) == 0;
}
