/*
 * SHA-256 for the hashing thread: SHA-NI blocks (sha256_ni.c, with AVX-512VL help when the CPU
 * has it) under our own context when the CPU has the SHA extensions, so two contexts fed the same
 * bytes can be compressed as two interleaved lanes; else libcrypto (the library Python's hashlib uses), looked up once with
 * dlopen; else a portable FIPS 180-4 implementation. None touches Python, so the hashing thread
 * never needs the GIL.
 */
#include "engine.h"

#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

typedef int (*sha_init_fn)(void *ctx);
typedef int (*sha_update_fn)(void *ctx, const void *data, size_t len);
typedef int (*sha_final_fn)(unsigned char *md, void *ctx);

/* The backends; a context's byte MARK records which one owns it. */
enum { BACKEND_LIBCRYPTO, BACKEND_PORTABLE, BACKEND_SHANI, BACKEND_SHANI_AVX512, BACKEND_COUNT, BACKEND_AUTO = -1 };

static sha_init_fn crypto_init;
static sha_update_fn crypto_update;
static sha_final_fn crypto_final;
static int shani_support;
static int forced_backend = BACKEND_AUTO;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

static void probe(void) {
    shani_support = sha256_ni_support();
    static const char *const names[] = {"libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        void *lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (lib == NULL) {
            continue;
        }
        sha_init_fn init = (sha_init_fn)dlsym(lib, "SHA256_Init");
        sha_update_fn update = (sha_update_fn)dlsym(lib, "SHA256_Update");
        sha_final_fn final = (sha_final_fn)dlsym(lib, "SHA256_Final");
        if (init && update && final) {
            crypto_init = init;
            crypto_update = update;
            crypto_final = final;
            return; /* the library stays loaded for the life of the process */
        }
        dlclose(lib);
    }
}

static int current_backend(void) {
    pthread_once(&probe_once, probe);
    if (forced_backend != BACKEND_AUTO) {
        return forced_backend;
    }
    if (shani_support & SHA_NI_AVX512) {
        return BACKEND_SHANI_AVX512;
    }
    /* SHA-NI alone measured no faster than libcrypto (its message-schedule instructions bound
     * both), so libcrypto stays the choice where it loads; plain SHA-NI only replaces the
     * portable code. */
    if (crypto_init != NULL) {
        return BACKEND_LIBCRYPTO;
    }
    return (shani_support & SHA_NI_BASE) ? BACKEND_SHANI : BACKEND_PORTABLE;
}

static int backend_available(int backend) {
    switch (backend) {
    case BACKEND_LIBCRYPTO: return crypto_init != NULL;
    case BACKEND_SHANI: return (shani_support & SHA_NI_BASE) != 0;
    case BACKEND_SHANI_AVX512: return (shani_support & SHA_NI_AVX512) != 0;
    default: return 1;
    }
}

static const char *const backend_names[BACKEND_COUNT] = {"libcrypto", "portable", "sha-ni", "sha-ni-avx512"};

const char *sha256_backend(void) { return backend_names[current_backend()]; }

int sha256_use_backend(const char *name) {
    pthread_once(&probe_once, probe);
    if (name == NULL) {
        forced_backend = BACKEND_AUTO;
        return 0;
    }
    for (int b = 0; b < BACKEND_COUNT; b++) {
        if (strcmp(name, backend_names[b]) == 0) {
            if (!backend_available(b)) {
                return -1;
            }
            forced_backend = b;
            return 0;
        }
    }
    return -1;
}

/* ---- portable compression ------------------------------------------------------------------ */

const uint32_t sha256_round_constants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void compress_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++) {
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               (uint32_t)p[4 * i + 3];
    }
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + sha256_round_constants[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

static void portable_blocks(uint32_t h[8], const uint8_t *p, size_t n) {
    for (; n; n--, p += 64) {
        compress_block(h, p);
    }
}

/* ---- our own context (portable and SHA-NI) ---------------------------------------------------- */

typedef void (*blocks_fn)(uint32_t h[8], const uint8_t *p, size_t n);

typedef struct {
    uint32_t h[8];
    uint64_t length; /* bytes hashed */
    uint8_t block[64];
    size_t used;     /* bytes buffered in `block`, always < 64 between calls */
} own_ctx;

static void own_init(own_ctx *c) {
    static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, initial, sizeof(initial));
    c->length = 0;
    c->used = 0;
}

/* Top up a partly filled block from `data` and compress it once full; the bytes taken. After it
 * either the buffer is empty or all `len` bytes were taken. */
static size_t own_top_up(own_ctx *c, blocks_fn blocks, const uint8_t *data, size_t len) {
    if (c->used == 0) {
        return 0;
    }
    size_t take = 64 - c->used < len ? 64 - c->used : len;
    memcpy(c->block + c->used, data, take);
    c->used += take;
    if (c->used == 64) {
        blocks(c->h, c->block, 1);
        c->used = 0;
    }
    return take;
}

/* Whole blocks from data[from..len), the tail buffered. The buffer must be empty unless from == len. */
static void own_rest(own_ctx *c, blocks_fn blocks, const uint8_t *data, size_t from, size_t len) {
    size_t n = (len - from) / 64;
    if (n) {
        blocks(c->h, data + from, n);
    }
    from += 64 * n;
    memcpy(c->block + c->used, data + from, len - from);
    c->used += len - from;
}

static void own_update(own_ctx *c, blocks_fn blocks, const uint8_t *data, size_t len) {
    c->length += len;
    own_rest(c, blocks, data, own_top_up(c, blocks, data, len), len);
}

typedef void (*blocks2_fn)(uint32_t ha[8], const uint8_t *pa, uint32_t hb[8], const uint8_t *pb, size_t n);

/* `blocks2` NULL: one lane after the other (the portable code). */
static void own_update_pair(own_ctx *a, own_ctx *b, blocks_fn blocks, blocks2_fn blocks2, const uint8_t *data,
                            size_t len) {
    a->length += len;
    b->length += len;
    size_t from_a = own_top_up(a, blocks, data, len), from_b = own_top_up(b, blocks, data, len);
    if (blocks2 && from_a < len && from_b < len) {
        /* both buffers are empty now: as many blocks as both have, two lanes at once */
        size_t n_a = (len - from_a) / 64, n_b = (len - from_b) / 64, n = n_a < n_b ? n_a : n_b;
        blocks2(a->h, data + from_a, b->h, data + from_b, n);
        from_a += 64 * n;
        from_b += 64 * n;
    }
    own_rest(a, blocks, data, from_a, len);
    own_rest(b, blocks, data, from_b, len);
}

static void own_final(own_ctx *c, blocks_fn blocks, uint8_t digest[32]) {
    uint64_t bits = c->length * 8;
    uint8_t pad[72] = {0x80};
    size_t pad_len = (c->used < 56 ? 56 : 120) - c->used;
    for (int i = 0; i < 8; i++) {
        pad[pad_len + i] = (uint8_t)(bits >> (56 - 8 * i));
    }
    own_update(c, blocks, pad, pad_len + 8);
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(c->h[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        digest[4 * i + 3] = (uint8_t)c->h[i];
    }
}

/* ---- dispatch --------------------------------------------------------------------------------- */

/* Byte MARK of a context says which backend owns it: OpenSSL's SHA256_CTX is 112 bytes, so byte
 * 200 of our 256 is free for the mark. */
enum { MARK = 200 };
_Static_assert(sizeof(own_ctx) <= MARK, "our context must fit before the mark");

static blocks_fn own_blocks(const sha256_ctx *ctx) {
    switch (ctx->state[MARK]) {
    case BACKEND_SHANI: return sha256_ni_blocks;
    case BACKEND_SHANI_AVX512: return sha256_ni_blocks_avx512;
    default: return portable_blocks;
    }
}

static blocks2_fn own_blocks2(const sha256_ctx *ctx) {
    switch (ctx->state[MARK]) {
    case BACKEND_SHANI: return sha256_ni_blocks2;
    case BACKEND_SHANI_AVX512: return sha256_ni_blocks2_avx512;
    default: return NULL;
    }
}

void sha256_init(sha256_ctx *ctx) {
    int backend = current_backend();
    if (backend == BACKEND_LIBCRYPTO) {
        crypto_init(ctx->state);
    } else {
        own_init((own_ctx *)ctx->state);
    }
    ctx->state[MARK] = (uint8_t)backend;
}

void sha256_update(sha256_ctx *ctx, const uint8_t *data, size_t len) {
    if (ctx->state[MARK] == BACKEND_LIBCRYPTO) {
        crypto_update(ctx->state, data, len);
    } else {
        own_update((own_ctx *)ctx->state, own_blocks(ctx), data, len);
    }
}

void sha256_update_pair(sha256_ctx *a, sha256_ctx *b, const uint8_t *data, size_t len) {
    if (a->state[MARK] == b->state[MARK] && a->state[MARK] != BACKEND_LIBCRYPTO) {
        own_update_pair((own_ctx *)a->state, (own_ctx *)b->state, own_blocks(a), own_blocks2(a), data, len);
    } else {
        sha256_update(a, data, len);
        sha256_update(b, data, len);
    }
}

void sha256_final(sha256_ctx *ctx, uint8_t digest[32]) {
    if (ctx->state[MARK] == BACKEND_LIBCRYPTO) {
        crypto_final(digest, ctx->state);
    } else {
        own_final((own_ctx *)ctx->state, own_blocks(ctx), digest);
    }
}

void sha256_hexdigest(sha256_ctx *ctx, char out[72]) {
    static const char hex[] = "0123456789abcdef";
    uint8_t digest[32];
    sha256_final(ctx, digest);
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++) {
        out[7 + 2 * i] = hex[digest[i] >> 4];
        out[8 + 2 * i] = hex[digest[i] & 15];
    }
    out[71] = 0;
}
