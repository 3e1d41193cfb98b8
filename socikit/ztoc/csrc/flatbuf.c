/*
 * The TOC part of a ztoc flatbuffer, byte-identical to the Go builder the reference drives (fact
 * sheet §1.3; socikit/ztoc/serialize.py holds the same rules in Python and is the oracle):
 * FileMetadata[last] … FileMetadata[0] (strings name, type, linkname, uname, gname, mod_time,
 * then each xattr's key, value and table, the xattr vector, the table with slots 0..13, scalars
 * equal to 0 left out), the metadata vector and the TOC table.
 *
 * The Go builder writes back to front and positions count from the end, so a ztoc cannot be
 * written front to back in one pass. Pass 1 (`toc_plan_build`) runs the builder's arithmetic and
 * keeps only each entry's start position and table position plus the vtables (16 bytes per entry).
 * Pass 2 (`toc_plan_emit`) writes each entry again from its known start into a small scratch
 * buffer and hands the bytes out in memory order: the caller can fill one exact-size buffer or a
 * file, and no copy of the whole TOC is ever held besides the output itself.
 */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

#define MAX_SLOTS 16

/* ---- vtables written so far: field entries -> position ----------------------------------------- */

typedef struct {
    uint16_t entries[MAX_SLOTS];
    uint8_t count;
    uint8_t used;
    int64_t position;
} vtable_slot;

struct vtable_map {
    vtable_slot *slots;
    size_t cap;
    size_t count;
    size_t *order; /* insertion order, for listing */
};

static uint64_t vtable_hash(const uint16_t *entries, size_t count) {
    uint64_t h = 1469598103934665603ULL ^ count;
    for (size_t i = 0; i < count; i++) {
        h = (h ^ entries[i]) * 1099511628211ULL;
    }
    return h;
}

static vtable_slot *vtable_find(vtable_map *map, const uint16_t *entries, size_t count) {
    size_t mask = map->cap - 1;
    for (size_t i = (size_t)vtable_hash(entries, count) & mask;; i = (i + 1) & mask) {
        vtable_slot *slot = &map->slots[i];
        if (!slot->used || (slot->count == count && memcmp(slot->entries, entries, count * 2) == 0)) {
            return slot;
        }
    }
}

static int vtable_insert(vtable_map *map, const uint16_t *entries, size_t count, int64_t position) {
    if ((map->count + 1) * 2 > map->cap) {
        vtable_map grown = {calloc(map->cap * 2, sizeof(vtable_slot)), map->cap * 2, 0,
                            realloc(map->order, map->cap * sizeof(size_t))};
        if (grown.slots == NULL || grown.order == NULL) {
            free(grown.slots);
            if (grown.order) {
                map->order = grown.order;
            }
            return -1;
        }
        for (size_t i = 0; i < map->count; i++) {
            vtable_slot *old = &map->slots[map->order[i]];
            vtable_slot *slot = vtable_find(&grown, old->entries, old->count);
            *slot = *old;
            grown.order[grown.count++] = (size_t)(slot - grown.slots);
        }
        free(map->slots);
        *map = grown;
    }
    vtable_slot *slot = vtable_find(map, entries, count);
    memcpy(slot->entries, entries, count * 2);
    slot->count = (uint8_t)count;
    slot->used = 1;
    slot->position = position;
    map->order[map->count++] = (size_t)(slot - map->slots);
    return 0;
}

static vtable_map *vtable_map_new(void) {
    vtable_map *map = calloc(1, sizeof(*map));
    if (map == NULL) {
        return NULL;
    }
    map->cap = 64;
    map->slots = calloc(map->cap, sizeof(vtable_slot));
    map->order = calloc(map->cap / 2, sizeof(size_t));
    if (map->slots == NULL || map->order == NULL) {
        free(map->slots);
        free(map->order);
        free(map);
        return NULL;
    }
    return map;
}

static void vtable_map_free(vtable_map *map) {
    if (map) {
        free(map->slots);
        free(map->order);
        free(map);
    }
}

/* ---- the back-to-front builder over a scratch buffer -------------------------------------------- */

typedef struct {
    uint8_t *buf; /* bytes written so far: head .. buf + cap, in memory order */
    uint8_t *head;
    size_t cap;
    int64_t pos; /* Go's Offset(): position since the very first byte of the flatbuffer */
    int minalign;
    int failed;
    vtable_map *vtables;
    int planning; /* pass 1 records vtables; pass 2 finds them all already there */
    int64_t *offsets; /* scratch for xattr table positions */
    size_t offsets_cap;
    int64_t cached_mtime; /* the last mod_time formatted: layers repeat a few */
    int32_t cached_nanos;
    size_t cached_len;
    char cached_text[48];
} backbuf;

/* Room for `n` more bytes, reserved before each object so the writes below need no checks. */
static int bb_reserve(backbuf *b, size_t n) {
    size_t used = (size_t)(b->buf + b->cap - b->head);
    if (b->cap - used >= n) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - used < n) {
        cap *= 2;
    }
    uint8_t *grown = malloc(cap);
    if (grown == NULL) {
        b->failed = 1;
        return -1;
    }
    memcpy(grown + cap - used, b->head, used);
    free(b->buf);
    b->buf = grown;
    b->head = grown + cap - used;
    b->cap = cap;
    return 0;
}

static inline void bb_put(backbuf *b, const void *data, size_t n) {
    b->head -= n;
    memcpy(b->head, data, n);
    b->pos += (int64_t)n;
}

static inline void bb_zeros(backbuf *b, size_t n) {
    while (n--) {
        *--b->head = 0;
        b->pos++;
    }
}

static inline void bb_prep(backbuf *b, int size, int64_t additional) {
    if (size > b->minalign) {
        b->minalign = size;
    }
    bb_zeros(b, (size_t)(-(b->pos + additional) & (size - 1)));
}

static inline void bb_u16(backbuf *b, uint16_t v) { bb_put(b, &v, 2); } /* little-endian hosts only */
static inline void bb_u32(backbuf *b, uint32_t v) { bb_put(b, &v, 4); }
static inline void bb_i64(backbuf *b, int64_t v) { bb_put(b, &v, 8); }

/* The bytes at position `at` (the value Offset() had right after they were written). */
static inline uint8_t *bb_at(backbuf *b, int64_t at) { return b->head + (b->pos - at); }

static inline int64_t bb_string(backbuf *b, const void *data, size_t n) {
    bb_prep(b, 4, (int64_t)n + 1);
    bb_zeros(b, 1);
    bb_put(b, data, n);
    bb_u32(b, (uint32_t)n);
    return b->pos;
}

static inline int64_t bb_offset_vector(backbuf *b, const int64_t *targets, size_t n) {
    bb_prep(b, 4, 4 * (int64_t)n);
    for (size_t i = n; i-- > 0;) {
        bb_u32(b, (uint32_t)(b->pos + 4 - targets[i]));
    }
    bb_u32(b, (uint32_t)n);
    return b->pos;
}

enum { KIND_OFFSET, KIND_INT64, KIND_UINT32 };

typedef struct {
    int slot;
    int kind;
    int64_t value; /* a target position for KIND_OFFSET */
} field;

/* StartObject, the fields in order, EndObject (Go's WriteVtable, de-duplicating vtables). */
static int64_t bb_table(backbuf *b, const field *fields, size_t n) {
    int64_t start = b->pos, at[MAX_SLOTS];
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        const field *f = &fields[i];
        if (f->kind == KIND_OFFSET) {
            bb_prep(b, 4, 0);
            bb_u32(b, (uint32_t)(b->pos + 4 - f->value));
        } else if (f->kind == KIND_INT64) {
            bb_prep(b, 8, 0);
            bb_i64(b, f->value);
        } else {
            bb_prep(b, 4, 0);
            bb_u32(b, (uint32_t)f->value);
        }
        at[i] = b->pos;
        if ((size_t)f->slot + 1 > count) {
            count = (size_t)f->slot + 1;
        }
    }
    bb_prep(b, 4, 0);
    bb_u32(b, 0); /* the vtable offset, patched below */
    int64_t object = b->pos;
    uint16_t entries[MAX_SLOTS] = {0};
    for (size_t i = 0; i < n; i++) {
        entries[fields[i].slot] = (uint16_t)(object - at[i]);
    }
    vtable_slot *existing = b->failed ? NULL : vtable_find(b->vtables, entries, count);
    int32_t soffset;
    if (existing != NULL && existing->used && existing->position < object) {
        soffset = (int32_t)(existing->position - object);
    } else {
        for (size_t i = count; i-- > 0;) {
            bb_u16(b, entries[i]);
        }
        bb_u16(b, (uint16_t)(object - start));
        bb_u16(b, (uint16_t)((count + 2) * 2));
        soffset = (int32_t)(b->pos - object);
        if (b->planning && !b->failed && vtable_insert(b->vtables, entries, count, b->pos) != 0) {
            b->failed = 1;
        }
    }
    if (!b->failed) {
        memcpy(bb_at(b, object), &soffset, 4);
    }
    return object;
}

/* One FileMetadata with its strings and xattrs; returns the table's position. */
static int64_t write_entry(backbuf *b, const toc_store *store, const toc_entry *e) {
    const uint8_t *name = toc_entry_strings(store, e);
    const uint8_t *link = name + e->name_len, *uname = link + e->link_len, *gname = uname + e->uname_len;
    const uint8_t *xattr = gname + e->gname_len;
    const char *type = toc_type_names[e->type];
    if (b->cached_len == (size_t)-1 || b->cached_mtime != e->mtime || b->cached_nanos != e->nanos) {
        b->cached_mtime = e->mtime;
        b->cached_nanos = e->nanos;
        b->cached_len = format_mod_time(e->mtime, e->nanos, b->cached_text);
    }
    const char *mod_time = b->cached_text;
    size_t mod_time_len = b->cached_len;
    /* Strings with their length, NUL and padding; per xattr two strings, a table and maybe its
     * vtable; the xattr vector; the FileMetadata table (14 slots, padding) and maybe its vtable. */
    size_t bound = (size_t)e->name_len + e->link_len + e->uname_len + e->gname_len + mod_time_len + 16 + 6 * 8 +
                   e->xattr_bytes + (size_t)e->xattr_count * 48 + 8 + 4 * (size_t)e->xattr_count + 256;
    if (bb_reserve(b, bound) != 0) {
        return 0;
    }
    int64_t name_at = bb_string(b, name, e->name_len);
    int64_t type_at = bb_string(b, type, strlen(type));
    int64_t link_at = bb_string(b, link, e->link_len);
    int64_t uname_at = bb_string(b, uname, e->uname_len);
    int64_t gname_at = bb_string(b, gname, e->gname_len);
    int64_t mod_time_at = bb_string(b, mod_time, mod_time_len);
    if (e->xattr_count > b->offsets_cap) {
        int64_t *grown = realloc(b->offsets, e->xattr_count * sizeof(int64_t));
        if (grown == NULL) {
            b->failed = 1;
            return 0;
        }
        b->offsets = grown;
        b->offsets_cap = e->xattr_count;
    }
    for (uint32_t i = 0; i < e->xattr_count; i++) {
        uint32_t key_len, value_len;
        memcpy(&key_len, xattr, 4);
        const uint8_t *key = xattr + 4;
        memcpy(&value_len, key + key_len, 4);
        const uint8_t *value = key + key_len + 4;
        xattr = value + value_len;
        int64_t key_at = bb_string(b, key, key_len);
        int64_t value_at = bb_string(b, value, value_len);
        field pair[2] = {{0, KIND_OFFSET, key_at}, {1, KIND_OFFSET, value_at}};
        b->offsets[i] = bb_table(b, pair, 2);
    }
    int64_t xattrs_at = bb_offset_vector(b, b->offsets, e->xattr_count);
    field fields[14];
    size_t n = 0;
    fields[n++] = (field){0, KIND_OFFSET, name_at};
    fields[n++] = (field){1, KIND_OFFSET, type_at};
    if (e->offset) {
        fields[n++] = (field){2, KIND_INT64, e->offset};
    }
    if (e->size) {
        fields[n++] = (field){3, KIND_INT64, e->size};
    }
    fields[n++] = (field){4, KIND_OFFSET, link_at};
    if (e->mode) {
        fields[n++] = (field){5, KIND_INT64, e->mode};
    }
    if (e->uid) {
        fields[n++] = (field){6, KIND_UINT32, e->uid};
    }
    if (e->gid) {
        fields[n++] = (field){7, KIND_UINT32, e->gid};
    }
    fields[n++] = (field){8, KIND_OFFSET, uname_at};
    fields[n++] = (field){9, KIND_OFFSET, gname_at};
    fields[n++] = (field){10, KIND_OFFSET, mod_time_at};
    if (e->devmajor) {
        fields[n++] = (field){11, KIND_INT64, e->devmajor};
    }
    if (e->devminor) {
        fields[n++] = (field){12, KIND_INT64, e->devminor};
    }
    fields[n++] = (field){13, KIND_OFFSET, xattrs_at};
    return bb_table(b, fields, n);
}

/* The metadata vector and the TOC table (after entry 0). */
static int64_t write_toc_table(backbuf *b, const int64_t *tables, size_t count) {
    if (bb_reserve(b, 4 * count + 64) != 0) {
        return 0;
    }
    int64_t vector = bb_offset_vector(b, tables, count);
    field slot = {0, KIND_OFFSET, vector};
    return bb_table(b, &slot, 1);
}

static void bb_reset(backbuf *b, int64_t pos) {
    b->head = b->buf + b->cap;
    b->pos = pos;
}

static void bb_free(backbuf *b) {
    free(b->buf);
    free(b->offsets);
}

int toc_plan_build(toc_plan *plan, const toc_store *store, int64_t start) {
    memset(plan, 0, sizeof(*plan));
    size_t count = store->count;
    plan->start = start;
    plan->before = malloc((count + 1) * sizeof(int64_t));
    plan->tables = malloc((count ? count : 1) * sizeof(int64_t));
    plan->vtables = vtable_map_new();
    if (plan->before == NULL || plan->tables == NULL || plan->vtables == NULL) {
        toc_plan_free(plan);
        return -1;
    }
    backbuf b = {.pos = start, .minalign = 1, .vtables = plan->vtables, .planning = 1, .cached_len = (size_t)-1};
    for (size_t i = count; i-- > 0;) {
        plan->before[i] = b.pos;
        bb_reset(&b, b.pos); /* only positions matter here: the bytes are written again in pass 2 */
        plan->tables[i] = write_entry(&b, store, &store->entries[i]);
    }
    plan->vector_start = b.pos;
    bb_reset(&b, b.pos);
    if (b.minalign < 4) {
        b.minalign = 4; /* the TOC table */
    }
    plan->toc_table = write_toc_table(&b, plan->tables, count);
    plan->end = b.pos;
    plan->minalign = b.minalign;
    int failed = b.failed;
    bb_free(&b);
    if (failed) {
        toc_plan_free(plan);
        return -1;
    }
    return 0;
}

void toc_plan_free(toc_plan *plan) {
    free(plan->before);
    free(plan->tables);
    vtable_map_free(plan->vtables);
    plan->before = plan->tables = NULL;
    plan->vtables = NULL;
}

size_t toc_plan_vtable_count(const toc_plan *plan) { return plan->vtables ? plan->vtables->count : 0; }

size_t toc_plan_vtable(const toc_plan *plan, size_t index, uint16_t *entries, int64_t *position) {
    const vtable_slot *slot = &plan->vtables->slots[plan->vtables->order[index]];
    memcpy(entries, slot->entries, slot->count * 2);
    *position = slot->position;
    return slot->count;
}

int toc_plan_emit(const toc_plan *plan, const toc_store *store, emit_fn emit, void *ctx) {
    backbuf b = {.pos = plan->vector_start, .minalign = 1, .vtables = plan->vtables, .cached_len = (size_t)-1};
    int status = -1;
    int64_t toc_table = write_toc_table(&b, plan->tables, store->count);
    if (b.failed || toc_table != plan->toc_table || b.pos != plan->end ||
        emit(ctx, b.head, (size_t)(b.buf + b.cap - b.head)) != 0) {
        goto done;
    }
    for (size_t i = 0; i < store->count; i++) {
        bb_reset(&b, plan->before[i]);
        int64_t table = write_entry(&b, store, &store->entries[i]);
        int64_t end = i ? plan->before[i - 1] : plan->vector_start;
        if (b.failed || table != plan->tables[i] || b.pos != end) {
            goto done;
        }
        if (emit(ctx, b.head, (size_t)(b.buf + b.cap - b.head)) != 0) {
            goto done;
        }
    }
    status = 0;
done:
    bb_free(&b);
    return status;
}
