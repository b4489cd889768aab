// CRC-32C with the processor's own instruction (SSE 4.2 on x86-64, the CRC extension on 64-bit Arm).
#include <stddef.h>
#include <stdint.h>

/// Whether this processor has the instruction; if not, `sluice_crc32c_update` must not be called.
int sluice_crc32c_hardware_available(void);

/// Advances the CRC-32C register `crc` (not inverted at either end) over `count` bytes at `bytes`.
uint32_t sluice_crc32c_update(uint32_t crc, const void *bytes, size_t count);
