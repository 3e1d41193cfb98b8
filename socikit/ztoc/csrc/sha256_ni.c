/*
 * SHA-256 block compression with the x86 SHA extensions (SHA-NI), one lane or two.
 *
 * A single SHA-256 stream on SHA-NI waits on the latency of SHA256RNDS2: every pair of rounds
 * needs the state the previous pair produced. The hashing
 * thread hashes each compressed byte twice (the layer digest and the current span's digest), two
 * independent streams, so `sha256_ni_blocks2` runs their rounds side by side: while one lane's
 * SHA256RNDS2 is in flight the other lane's can issue.
 *
 * The block functions come in two builds of sha256_ni_rounds.h. Both take the rounds and the
 * sigma1 half of the message schedule from SHA256RNDS2 and SHA256MSG2. The plain build takes the
 * sigma0 half from SHA256MSG1; the AVX-512 build computes it with four AVX-512VL operations
 * (two rotates, a shift and a three-way XOR) instead, because on Ice Lake (the CPU this was measured on)
 * SHA256MSG1 and SHA256MSG2 issue only about once every six cycles and, not the round latency,
 * were what bounded the speed: two lanes gained nothing until MSG1 left the picture.
 *
 * Only those functions carry `target(...)` attributes, so the file needs no special compiler
 * flags; `sha256_ni_support` checks CPUID (and, for AVX-512, that the OS saves its registers)
 * before anyone calls them.
 *
 * Register layout, from the instruction definitions: SHA256RNDS2 takes the working variables as
 * two vectors, {A,B,E,F} and {C,D,G,H} (A and C in the top dword), and the two rounds' W+K in the
 * low two dwords of the third operand; it returns the new {A,B,E,F}, and the old {A,B,E,F} is the
 * new {C,D,G,H}. SHA256MSG1 adds sigma0 of the next word to four schedule words, SHA256MSG2
 * finishes four new words with sigma1 of the words two back.
 */
#include "engine.h"

#if defined(__x86_64__) || defined(__i386__)

#include <cpuid.h>
#include <immintrin.h>

int sha256_ni_support(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
        return 0;
    }
    int ssse3 = (ecx >> 9) & 1, sse41 = (ecx >> 19) & 1, osxsave = (ecx >> 27) & 1;
    if (__get_cpuid_max(0, NULL) < 7) {
        return 0;
    }
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    int sha = (ebx >> 29) & 1, avx512f = (ebx >> 16) & 1, avx512vl = (ebx >> 31) & 1;
    if (!(ssse3 && sse41 && sha)) {
        return 0;
    }
    int support = SHA_NI_BASE;
    if (avx512f && avx512vl && osxsave) {
        unsigned int xcr0_lo, xcr0_hi;
        __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
        (void)xcr0_hi;
        /* SSE, AVX, opmask, upper ZMM halves and ZMM16-31 state all enabled by the OS */
        if ((xcr0_lo & 0xE6) == 0xE6) {
            support |= SHA_NI_AVX512;
        }
    }
    return support;
}

/* Big-endian words to lanes: reverse the bytes of each dword. */
#define BSWAP_MASK _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL)

/* Four rounds with schedule words `w` and constants K[4g..4g+3]. */
#define ROUNDS4(abef, cdgh, w, g)                                                                  \
    do {                                                                                           \
        __m128i wk_ = _mm_add_epi32((w), _mm_loadu_si128((const __m128i *)&sha256_round_constants[4 * (g)])); \
        (cdgh) = _mm_sha256rnds2_epu32((cdgh), (abef), wk_);                                       \
        (abef) = _mm_sha256rnds2_epu32((abef), (cdgh), _mm_shuffle_epi32(wk_, 0x0E));              \
    } while (0)

#define NI_TARGET __attribute__((target("sha,sse4.1,ssse3")))
#define NI_NAME(name) name
#include "sha256_ni_rounds.h"
#undef NI_TARGET
#undef NI_NAME

#define NI_TARGET __attribute__((target("sha,sse4.1,ssse3,avx512f,avx512vl")))
#define NI_NAME(name) name##_avx512
#define NI_AVX512_SIGMA0 1
#include "sha256_ni_rounds.h"

#else /* not x86: never supported, never called */

int sha256_ni_support(void) { return 0; }
void sha256_ni_blocks(uint32_t h[8], const uint8_t *p, size_t n) { (void)h, (void)p, (void)n; }
void sha256_ni_blocks2(uint32_t ha[8], const uint8_t *pa, uint32_t hb[8], const uint8_t *pb, size_t n) {
    (void)ha, (void)pa, (void)hb, (void)pb, (void)n;
}
void sha256_ni_blocks_avx512(uint32_t h[8], const uint8_t *p, size_t n) { (void)h, (void)p, (void)n; }
void sha256_ni_blocks2_avx512(uint32_t ha[8], const uint8_t *pa, uint32_t hb[8], const uint8_t *pb, size_t n) {
    (void)ha, (void)pa, (void)hb, (void)pb, (void)n;
}

#endif
