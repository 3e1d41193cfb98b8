/*
 * The SHA-NI block functions, included twice by sha256_ni.c: NI_TARGET is the target attribute,
 * NI_NAME(name) the exported name, and NI_AVX512_SIGMA0 (when defined) computes sigma0 of the
 * message schedule with AVX-512VL instead of SHA256MSG1. Not a header for anyone else.
 */

/* h[0..7] = a..h  ->  {A,B,E,F} and {C,D,G,H} */
static inline NI_TARGET void NI_NAME(state_load)(const uint32_t h[8], __m128i *abef, __m128i *cdgh) {
    __m128i dcba = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h), 0x1B);
    __m128i hgfe = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(h + 4)), 0x1B);
    *abef = _mm_unpackhi_epi64(hgfe, dcba); /* f e b a, dword 0 first */
    *cdgh = _mm_unpacklo_epi64(hgfe, dcba); /* h g d c */
}

static inline NI_TARGET void NI_NAME(state_store)(uint32_t h[8], __m128i abef, __m128i cdgh) {
    __m128i dcba = _mm_unpackhi_epi64(cdgh, abef);
    __m128i hgfe = _mm_unpacklo_epi64(cdgh, abef);
    _mm_storeu_si128((__m128i *)h, _mm_shuffle_epi32(dcba, 0x1B));
    _mm_storeu_si128((__m128i *)(h + 4), _mm_shuffle_epi32(hgfe, 0x1B));
}

static inline NI_TARGET __m128i NI_NAME(load_words)(const uint8_t *p, __m128i mask) {
    return _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), mask);
}

/* W[4g..4g+3] from the four groups before: `w0` (W[4g-16..4g-13]) is replaced by them; `w1`,
 * `w2`, `w3` are the groups 3, 2 and 1 back. W[t-15] straddles w0 and w1, W[t-7] w2 and w3. */
static inline NI_TARGET __m128i NI_NAME(next_words)(__m128i w0, __m128i w1, __m128i w2, __m128i w3) {
#ifdef NI_AVX512_SIGMA0
    __m128i x = _mm_alignr_epi8(w1, w0, 4);
    __m128i sigma0 = _mm_ternarylogic_epi32(_mm_ror_epi32(x, 7), _mm_ror_epi32(x, 18), _mm_srli_epi32(x, 3), 0x96);
    __m128i partial = _mm_add_epi32(w0, sigma0);
#else
    __m128i partial = _mm_sha256msg1_epu32(w0, w1);
#endif
    return _mm_sha256msg2_epu32(_mm_add_epi32(partial, _mm_alignr_epi8(w3, w2, 4)), w3);
}

#define SCHEDULE(w0, w1, w2, w3) (w0) = NI_NAME(next_words)((w0), (w1), (w2), (w3))

NI_TARGET void NI_NAME(sha256_ni_blocks)(uint32_t h[8], const uint8_t *p, size_t n) {
    const __m128i mask = BSWAP_MASK;
    __m128i abef, cdgh;
    NI_NAME(state_load)(h, &abef, &cdgh);
    for (; n; n--, p += 64) {
        __m128i abef0 = abef, cdgh0 = cdgh;
        __m128i w0 = NI_NAME(load_words)(p, mask), w1 = NI_NAME(load_words)(p + 16, mask);
        __m128i w2 = NI_NAME(load_words)(p + 32, mask), w3 = NI_NAME(load_words)(p + 48, mask);
        ROUNDS4(abef, cdgh, w0, 0);
        ROUNDS4(abef, cdgh, w1, 1);
        ROUNDS4(abef, cdgh, w2, 2);
        ROUNDS4(abef, cdgh, w3, 3);
        for (int g = 4; g < 16; g += 4) {
            SCHEDULE(w0, w1, w2, w3);
            ROUNDS4(abef, cdgh, w0, g);
            SCHEDULE(w1, w2, w3, w0);
            ROUNDS4(abef, cdgh, w1, g + 1);
            SCHEDULE(w2, w3, w0, w1);
            ROUNDS4(abef, cdgh, w2, g + 2);
            SCHEDULE(w3, w0, w1, w2);
            ROUNDS4(abef, cdgh, w3, g + 3);
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    NI_NAME(state_store)(h, abef, cdgh);
}

/* Lane A and lane B each as above, their steps alternating so the two dependency chains overlap. */
NI_TARGET void NI_NAME(sha256_ni_blocks2)(uint32_t ha[8], const uint8_t *pa, uint32_t hb[8], const uint8_t *pb,
                                          size_t n) {
    const __m128i mask = BSWAP_MASK;
    __m128i abef_a, cdgh_a, abef_b, cdgh_b;
    NI_NAME(state_load)(ha, &abef_a, &cdgh_a);
    NI_NAME(state_load)(hb, &abef_b, &cdgh_b);
    for (; n; n--, pa += 64, pb += 64) {
        __m128i abef_a0 = abef_a, cdgh_a0 = cdgh_a, abef_b0 = abef_b, cdgh_b0 = cdgh_b;
        __m128i a0 = NI_NAME(load_words)(pa, mask), a1 = NI_NAME(load_words)(pa + 16, mask);
        __m128i a2 = NI_NAME(load_words)(pa + 32, mask), a3 = NI_NAME(load_words)(pa + 48, mask);
        __m128i b0 = NI_NAME(load_words)(pb, mask), b1 = NI_NAME(load_words)(pb + 16, mask);
        __m128i b2 = NI_NAME(load_words)(pb + 32, mask), b3 = NI_NAME(load_words)(pb + 48, mask);
        ROUNDS4(abef_a, cdgh_a, a0, 0);
        ROUNDS4(abef_b, cdgh_b, b0, 0);
        ROUNDS4(abef_a, cdgh_a, a1, 1);
        ROUNDS4(abef_b, cdgh_b, b1, 1);
        ROUNDS4(abef_a, cdgh_a, a2, 2);
        ROUNDS4(abef_b, cdgh_b, b2, 2);
        ROUNDS4(abef_a, cdgh_a, a3, 3);
        ROUNDS4(abef_b, cdgh_b, b3, 3);
        for (int g = 4; g < 16; g += 4) {
            SCHEDULE(a0, a1, a2, a3);
            SCHEDULE(b0, b1, b2, b3);
            ROUNDS4(abef_a, cdgh_a, a0, g);
            ROUNDS4(abef_b, cdgh_b, b0, g);
            SCHEDULE(a1, a2, a3, a0);
            SCHEDULE(b1, b2, b3, b0);
            ROUNDS4(abef_a, cdgh_a, a1, g + 1);
            ROUNDS4(abef_b, cdgh_b, b1, g + 1);
            SCHEDULE(a2, a3, a0, a1);
            SCHEDULE(b2, b3, b0, b1);
            ROUNDS4(abef_a, cdgh_a, a2, g + 2);
            ROUNDS4(abef_b, cdgh_b, b2, g + 2);
            SCHEDULE(a3, a0, a1, a2);
            SCHEDULE(b3, b0, b1, b2);
            ROUNDS4(abef_a, cdgh_a, a3, g + 3);
            ROUNDS4(abef_b, cdgh_b, b3, g + 3);
        }
        abef_a = _mm_add_epi32(abef_a, abef_a0);
        cdgh_a = _mm_add_epi32(cdgh_a, cdgh_a0);
        abef_b = _mm_add_epi32(abef_b, abef_b0);
        cdgh_b = _mm_add_epi32(cdgh_b, cdgh_b0);
    }
    NI_NAME(state_store)(ha, abef_a, cdgh_a);
    NI_NAME(state_store)(hb, abef_b, cdgh_b);
}

#undef SCHEDULE
