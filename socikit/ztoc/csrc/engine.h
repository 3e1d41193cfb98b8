/*
 * The native half of the ztoc engine (module socikit.ztoc._engine): pure C parts shared by the
 * module's files. Nothing in tar.c, flatbuf.c, sha256.c or sha256_ni.c touches Python objects,
 * so all of it runs without the GIL.
 */
#ifndef SOCIKIT_ENGINE_H
#define SOCIKIT_ENGINE_H

#include <stddef.h>
#include <stdint.h>

/* ---- growable byte buffer ------------------------------------------------------------------ */

typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} bytebuf;

int bytebuf_reserve(bytebuf *buf, size_t extra); /* 0, or -1 when out of memory */
int bytebuf_append(bytebuf *buf, const void *data, size_t len);
void bytebuf_free(bytebuf *buf);

/* ---- SHA-256 (SHA-NI when the CPU has it, else libcrypto when it loads, else portable) ------- */

typedef struct {
    _Alignas(16) uint8_t state[256]; /* OpenSSL's SHA256_CTX (112 bytes) or ours */
} sha256_ctx;

void sha256_init(sha256_ctx *ctx);
void sha256_update(sha256_ctx *ctx, const uint8_t *data, size_t len);
/* The same bytes into two contexts: on SHA-NI their blocks are compressed as two interleaved
 * lanes (the contexts may hold different amounts of buffered bytes). */
void sha256_update_pair(sha256_ctx *a, sha256_ctx *b, const uint8_t *data, size_t len);
void sha256_final(sha256_ctx *ctx, uint8_t digest[32]);
/* "sha-ni-avx512", "sha-ni", "libcrypto" or "portable": what sha256_init picks for new contexts. */
const char *sha256_backend(void);
/* Tests: force a backend by name (NULL: the automatic choice). 0, or -1 when that backend is
 * unknown or cannot run here. */
int sha256_use_backend(const char *name);
/* "sha256:" + 64 hex digits, NUL-terminated (72 bytes). */
void sha256_hexdigest(sha256_ctx *ctx, char out[72]);

extern const uint32_t sha256_round_constants[64];
/* sha256_ni.c: what the CPU (and OS) allow, SHA_NI_BASE and SHA_NI_AVX512 bits; a function may
 * be called only when its bit is set. `blocks` compresses n 64-byte blocks into h, `blocks2`
 * n blocks of each of two streams as interleaved lanes. The _avx512 builds take sigma0 of the
 * message schedule from AVX-512VL instead of SHA256MSG1. */
enum { SHA_NI_BASE = 1, SHA_NI_AVX512 = 2 };
int sha256_ni_support(void);
void sha256_ni_blocks(uint32_t h[8], const uint8_t *p, size_t n);
void sha256_ni_blocks2(uint32_t ha[8], const uint8_t *pa, uint32_t hb[8], const uint8_t *pb, size_t n);
void sha256_ni_blocks_avx512(uint32_t h[8], const uint8_t *p, size_t n);
void sha256_ni_blocks2_avx512(uint32_t ha[8], const uint8_t *pa, uint32_t hb[8], const uint8_t *pb, size_t n);

/* ---- the TOC store ------------------------------------------------------------------------- */

enum { TYPE_REG, TYPE_HARDLINK, TYPE_SYMLINK, TYPE_CHAR, TYPE_BLOCK, TYPE_DIR, TYPE_FIFO, TYPE_COUNT };
extern const char *const toc_type_names[TYPE_COUNT];

/* One tar entry. Its strings lie one after the other in the store's pool from `strings`: name,
 * linkname, uname, gname, then `xattr_count` PAX records as (u32 key length, key, u32 value
 * length, value), sorted bytewise by key, one per key. mod_time is kept as seconds + nanoseconds
 * and formatted when needed. */
typedef struct {
    int64_t offset;
    int64_t size;
    int64_t mode;
    int64_t devmajor;
    int64_t devminor;
    int64_t mtime;
    uint64_t strings;
    int32_t nanos;
    uint32_t uid;
    uint32_t gid;
    uint32_t name_len;
    uint32_t link_len;
    uint32_t uname_len;
    uint32_t gname_len;
    uint32_t xattr_count;
    uint32_t xattr_bytes;
    uint8_t type;
} toc_entry;

typedef struct {
    toc_entry *entries;
    size_t count;
    size_t cap;
    bytebuf pool;
} toc_store;

void toc_store_free(toc_store *store);
static inline const uint8_t *toc_entry_strings(const toc_store *store, const toc_entry *e) {
    return store->pool.data + e->strings;
}

/* Go's time.Unix(s, ns).UTC().MarshalText() (RFC 3339, fraction trimmed), or "" outside years
 * 0..9999. Writes at most 40 bytes, returns the length. */
size_t format_mod_time(int64_t seconds, int64_t nanos, char *out);

/* ---- the tar parser (Go archive/tar semantics, the same as socikit/ztoc/toc.py) -------------- */

enum { WANT_HEADER = 0, WANT_SECOND_ZERO = 1, WANT_RECORD = 2 };

/* What failed, so the Python side can replay the unit through the Python parser, which raises
 * the very exception (and message) the oracle raises for it. */
enum { TAR_OK = 0, TAR_FAILED_UNIT = 1, TAR_NO_MEMORY = 2 };

typedef struct {
    const uint8_t *key;
    uint32_t key_len;
    const uint8_t *value;
    uint32_t value_len;
    uint32_t order;
} pax_record;

typedef struct {
    toc_store store;
    int want;
    uint64_t need;
    uint64_t pos;
    uint64_t skip;
    uint64_t data_end;
    int ended;
    uint64_t end;
    int failed;          /* TAR_* */
    bytebuf unit;        /* a unit that straddles two feeds */
    /* the pending extension record (its header has been read) */
    uint8_t record_type;
    uint64_t record_offset;
    uint64_t record_padding;
    /* extensions that apply to the next entry */
    int has_pax;
    uint64_t pax_offset;
    bytebuf pax_raw;     /* the raw 'x' record, kept for replays */
    bytebuf pax_extra;   /* the folded GNU.sparse.map value */
    pax_record *pax;     /* sorted by key, one per key */
    size_t pax_count;
    size_t pax_cap;
    bytebuf long_name;
    bytebuf long_link;
    /* the failing unit, for the replay */
    int fail_want;
    uint64_t fail_end;
    bytebuf fail_unit;
} tar_parser;

void tar_parser_init(tar_parser *p);
void tar_parser_free(tar_parser *p);
/* Consume the next bytes of the tar stream. Returns 0 to go on, 1 once the archive ended (later
 * feeds are ignored), -1 on failure (`p->failed` says which). */
int tar_parser_feed(tar_parser *p, const uint8_t *data, size_t n);

/* ---- flatbuffers: the TOC part of a ztoc, byte-identical to the Go builder ------------------ */

typedef struct vtable_map vtable_map;

typedef struct {
    int64_t start;          /* position (Go Offset()) before the first entry is written */
    int64_t end;            /* position after the TOC table */
    int64_t toc_table;      /* position of the TOC table */
    int minalign;
    int64_t *before;        /* before[i]: position before entry i is written (count + 1 values) */
    int64_t *tables;        /* position of entry i's FileMetadata table */
    int64_t vector_start;   /* position before the metadata vector */
    vtable_map *vtables;
} toc_plan;

/* Pass 1: positions of everything, in the Go builder's write order. 0, or -1 out of memory. */
int toc_plan_build(toc_plan *plan, const toc_store *store, int64_t start);
void toc_plan_free(toc_plan *plan);
size_t toc_plan_vtable_count(const toc_plan *plan);
/* The `index`-th vtable: its entries (at most 16) and position. */
size_t toc_plan_vtable(const toc_plan *plan, size_t index, uint16_t *entries, int64_t *position);

/* Pass 2: the region's bytes in memory order, front to back, through `emit`. */
typedef int (*emit_fn)(void *ctx, const uint8_t *data, size_t len);
int toc_plan_emit(const toc_plan *plan, const toc_store *store, emit_fn emit, void *ctx);

#endif
