/*
 * The tar TOC parser on the inflating side: the semantics of socikit/ztoc/toc.py (Go's
 * archive/tar Reader as the reference runs it), which stays the oracle. Every rule below has its
 * Python counterpart there: checksum (unsigned or signed sum), format guess (V7, ustar, GNU,
 * STAR), numbers (octal or base-256), the ustar/STAR prefix and GNU's atime/ctime, PAX records
 * (validated, later keys replacing earlier ones, GNU sparse 0.0 pairs folded into one map),
 * GNU long names, legacy NUL type flags and the end-of-archive rules.
 *
 * Entries go into a compact store (one fixed-size record plus their bytes in a pool), not into
 * Python objects. A unit (header block or extension record) that fails is kept with the pending
 * extensions, and the Python side replays exactly that unit through the Python parser, so the
 * exception and its message are the oracle's own.
 */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

#define BLOCK 512
#define MAX_SPECIAL_FILE (1u << 20)

const char *const toc_type_names[TYPE_COUNT] = {"reg", "hardlink", "symlink", "char", "block", "dir", "fifo"};

/* ---- byte buffers ---------------------------------------------------------------------------- */

int bytebuf_reserve(bytebuf *buf, size_t extra) {
    if (buf->cap - buf->len >= extra) {
        return 0;
    }
    size_t want = buf->len + extra;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < want) {
        cap = cap < ((size_t)1 << 40) ? cap * 2 : want;
    }
    uint8_t *grown = realloc(buf->data, cap);
    if (grown == NULL) {
        return -1;
    }
    buf->data = grown;
    buf->cap = cap;
    return 0;
}

int bytebuf_append(bytebuf *buf, const void *data, size_t len) {
    if (bytebuf_reserve(buf, len) != 0) {
        return -1;
    }
    if (len) {
        memcpy(buf->data + buf->len, data, len);
    }
    buf->len += len;
    return 0;
}

void bytebuf_free(bytebuf *buf) {
    free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}

void toc_store_free(toc_store *store) {
    free(store->entries);
    store->entries = NULL;
    store->count = store->cap = 0;
    bytebuf_free(&store->pool);
}

/* ---- numbers (toc.py: _octal, _numeric, _parse_int64, _parse_pax_time) ------------------------ */

static inline int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static size_t cstring_len(const uint8_t *field, size_t n) {
    const uint8_t *nul = memchr(field, 0, n);
    return nul ? (size_t)(nul - field) : n;
}

/* Trim spaces and NULs at both ends, cut at a NUL, octal as uint64, reinterpreted as int64. */
static int parse_octal(const uint8_t *f, size_t n, int64_t *out) {
    size_t a = 0, b = n;
    while (a < b && (f[a] == ' ' || f[a] == 0)) {
        a++;
    }
    while (b > a && (f[b - 1] == ' ' || f[b - 1] == 0)) {
        b--;
    }
    b = a + cstring_len(f + a, b - a);
    uint64_t value = 0;
    for (size_t i = a; i < b; i++) {
        if (!is_digit(f[i]) || f[i] >= '8' || value >> 61) {
            return -1;
        }
        value = value * 8 + (uint64_t)(f[i] - '0');
    }
    *out = (int64_t)value;
    return 0;
}

/* Base-256 two's complement when the high bit is set, else octal. */
static int parse_numeric(const uint8_t *f, size_t n, int64_t *out) {
    if (n == 0 || f[0] < 0x80) {
        return parse_octal(f, n, out);
    }
    uint8_t invert = (f[0] & 0x40) ? 0xFF : 0;
    uint64_t value = (uint64_t)((f[0] ^ invert) & 0x7F);
    for (size_t i = 1; i < n; i++) {
        if (value >> 56) {
            return -1;
        }
        value = value << 8 | (uint64_t)(f[i] ^ invert);
    }
    if (value >> 63) {
        return -1;
    }
    *out = invert ? ~(int64_t)value : (int64_t)value;
    return 0;
}

/* Go's strconv.ParseInt(s, 10, 64). */
static int parse_int64(const uint8_t *s, size_t n, int64_t *out) {
    size_t i = 0;
    int negative = 0;
    if (n && (s[0] == '+' || s[0] == '-')) {
        negative = s[0] == '-';
        i = 1;
    }
    if (i == n) {
        return -1;
    }
    uint64_t limit = negative ? (uint64_t)1 << 63 : ((uint64_t)1 << 63) - 1;
    uint64_t value = 0;
    for (; i < n; i++) {
        if (!is_digit(s[i])) {
            return -1;
        }
        uint64_t digit = (uint64_t)(s[i] - '0');
        if (value > (limit - digit) / 10) {
            return -1;
        }
        value = value * 10 + digit;
    }
    *out = negative ? (int64_t)(0 - value) : (int64_t)value;
    return 0;
}

/* "seconds[.fraction]": the fraction padded or cut to 9 digits, with the sign of the seconds. */
static int parse_pax_time(const uint8_t *v, size_t n, int64_t *seconds, int32_t *nanos) {
    const uint8_t *dot = memchr(v, '.', n);
    size_t secs_len = dot ? (size_t)(dot - v) : n;
    if (parse_int64(v, secs_len, seconds) != 0) {
        return -1;
    }
    *nanos = 0;
    if (!dot || secs_len + 1 == n) {
        return 0;
    }
    int32_t value = 0;
    for (size_t i = secs_len + 1, digits = 0; i < n; i++, digits++) {
        if (!is_digit(v[i])) {
            return -1;
        }
        if (digits < 9) {
            value = value * 10 + (v[i] - '0');
        }
    }
    for (size_t digits = n - secs_len - 1; digits < 9; digits++) {
        value *= 10;
    }
    *nanos = v[0] == '-' ? -value : value;
    return 0;
}

/* ---- mod_time text ------------------------------------------------------------------------------ */

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static char *put_digits(char *out, int64_t value, int width) {
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
    return out + width;
}

size_t format_mod_time(int64_t seconds, int64_t nanos, char *out) {
    if (nanos < 0) {
        if (seconds == INT64_MIN) {
            return 0;
        }
        seconds -= 1;
        nanos += 1000000000;
    }
    if (seconds < -62167219200LL || seconds > 253402300799LL) {
        return 0; /* year outside 0..9999: Go's MarshalText fails, the reference stores "" */
    }
    int64_t days = floor_div(seconds, 86400);
    int64_t rest = seconds - days * 86400;
    days += 719468; /* days since 0000-03-01 */
    int64_t era = floor_div(days, 146097);
    int64_t day_of_era = days - era * 146097;
    int64_t year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    int64_t month_index = (5 * day_of_year + 2) / 153;
    int64_t day = day_of_year - (153 * month_index + 2) / 5 + 1;
    int64_t month = month_index < 10 ? month_index + 3 : month_index - 9;
    int64_t year = year_of_era + era * 400 + (month <= 2 ? 1 : 0);
    char *p = out;
    p = put_digits(p, year, 4);
    *p++ = '-';
    p = put_digits(p, month, 2);
    *p++ = '-';
    p = put_digits(p, day, 2);
    *p++ = 'T';
    p = put_digits(p, rest / 3600, 2);
    *p++ = ':';
    p = put_digits(p, rest / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, rest % 60, 2);
    if (nanos) {
        *p++ = '.';
        char frac[9];
        put_digits(frac, nanos, 9);
        int keep = 9;
        while (frac[keep - 1] == '0') {
            keep--;
        }
        memcpy(p, frac, (size_t)keep);
        p += keep;
    }
    *p++ = 'Z';
    return (size_t)(p - out);
}

/* ---- one header block (toc.py: parse_header) ------------------------------------------------------ */

enum { FORMAT_V7, FORMAT_USTAR, FORMAT_GNU, FORMAT_STAR };

typedef struct {
    const uint8_t *name;
    size_t name_len;
    const uint8_t *link;
    size_t link_len;
    const uint8_t *uname;
    size_t uname_len;
    const uint8_t *gname;
    size_t gname_len;
    int64_t size, mode, uid, gid, mtime, devmajor, devminor;
    uint8_t joined[BLOCK]; /* prefix + "/" + name */
} header_fields;

static int all_digits(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            return 0;
        }
    }
    return 1;
}

static int parse_header(const uint8_t *h, unsigned total, header_fields *f) {
    unsigned checksum_bytes = 0;
    for (int i = 148; i < 156; i++) {
        checksum_bytes += h[i];
    }
    int64_t expected = (int64_t)total - checksum_bytes + 8 * 0x20;
    int64_t stored = 0;
    if (h[154] == 0 && h[155] == ' ' && all_digits(h + 148, 6)) {
        for (int i = 148; i < 154; i++) {
            if (h[i] >= '8') {
                return -1;
            }
            stored = stored * 8 + (h[i] - '0');
        }
    } else if (parse_octal(h + 148, 8, &stored) != 0) {
        return -1;
    }
    if (stored != expected) {
        int64_t signed_sum = 8 * 0x20;
        for (int i = 0; i < BLOCK; i++) {
            if (i < 148 || i >= 156) {
                signed_sum += (int8_t)h[i];
            }
        }
        if (stored != signed_sum) {
            return -1;
        }
    }
    int format = FORMAT_V7;
    if (memcmp(h + 257, "ustar\0", 6) == 0) {
        format = memcmp(h + 508, "tar\0", 4) == 0 ? FORMAT_STAR : FORMAT_USTAR;
    } else if (memcmp(h + 257, "ustar ", 6) == 0 && h[263] == ' ' && h[264] == 0) {
        format = FORMAT_GNU;
    }
    f->name = h;
    f->name_len = cstring_len(h, 100);
    f->link = h + 157;
    f->link_len = cstring_len(h + 157, 100);
    if (parse_numeric(h + 124, 12, &f->size) || parse_numeric(h + 100, 8, &f->mode) ||
        parse_numeric(h + 108, 8, &f->uid) || parse_numeric(h + 116, 8, &f->gid) ||
        parse_numeric(h + 136, 12, &f->mtime)) {
        return -1;
    }
    f->uname = f->gname = h;
    f->uname_len = f->gname_len = 0;
    f->devmajor = f->devminor = 0;
    if (format == FORMAT_V7) {
        return 0;
    }
    f->uname = h + 265;
    f->uname_len = cstring_len(h + 265, 32);
    f->gname = h + 297;
    f->gname_len = cstring_len(h + 297, 32);
    if (parse_numeric(h + 329, 8, &f->devmajor) || parse_numeric(h + 337, 8, &f->devminor)) {
        return -1;
    }
    const uint8_t *prefix = h + 345;
    size_t prefix_len = 0;
    int64_t ignored;
    if (format == FORMAT_USTAR) {
        prefix_len = cstring_len(prefix, 155);
    } else if (format == FORMAT_GNU) {
        /* atime and ctime; when either fails to parse, Go takes the field as an ASCII prefix */
        if ((h[345] && parse_numeric(h + 345, 12, &ignored)) || (h[357] && parse_numeric(h + 357, 12, &ignored))) {
            prefix_len = cstring_len(prefix, 155);
            for (size_t i = 0; i < prefix_len; i++) {
                if (prefix[i] >= 0x80) {
                    prefix_len = 0;
                    break;
                }
            }
        }
    } else {
        prefix_len = cstring_len(prefix, 131);
        if (parse_numeric(h + 476, 12, &ignored) || parse_numeric(h + 488, 12, &ignored)) {
            return -1;
        }
    }
    if (prefix_len) {
        memcpy(f->joined, prefix, prefix_len);
        f->joined[prefix_len] = '/';
        memcpy(f->joined + prefix_len + 1, f->name, f->name_len);
        f->name = f->joined;
        f->name_len += prefix_len + 1;
    }
    return 0;
}

/* ---- PAX records (toc.py: _parse_pax_records) ------------------------------------------------------ */

static int key_is(const pax_record *r, const char *key) {
    size_t n = strlen(key);
    return r->key_len == n && memcmp(r->key, key, n) == 0;
}

static int bytes_is(const uint8_t *data, size_t len, const char *text) {
    size_t n = strlen(text);
    return len == n && memcmp(data, text, n) == 0;
}

static int compare_records(const void *a, const void *b) {
    const pax_record *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c) {
        return c;
    }
    if (x->key_len != y->key_len) {
        return x->key_len < y->key_len ? -1 : 1;
    }
    return x->order < y->order ? -1 : (x->order > y->order);
}

static int push_record(tar_parser *p, const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len,
                       uint32_t order) {
    if (p->pax_count == p->pax_cap) {
        size_t cap = p->pax_cap ? p->pax_cap * 2 : 16;
        pax_record *grown = realloc(p->pax, cap * sizeof(*grown));
        if (grown == NULL) {
            return -1;
        }
        p->pax = grown;
        p->pax_cap = cap;
    }
    pax_record *r = &p->pax[p->pax_count++];
    r->key = key;
    r->key_len = (uint32_t)key_len;
    r->value = value;
    r->value_len = (uint32_t)value_len;
    r->order = order;
    return 0;
}

static const char SPARSE_MAP[] = "GNU.sparse.map";

/* Parse p->pax_raw into p->pax (sorted by key, the last value of each key). 0, -1 malformed,
 * -2 out of memory. */
static int parse_pax(tar_parser *p) {
    const uint8_t *data = p->pax_raw.data;
    size_t total = p->pax_raw.len, pos = 0, sparse = 0;
    uint32_t order = 0;
    p->pax_count = 0;
    p->pax_extra.len = 0;
    while (pos < total) {
        const uint8_t *space = memchr(data + pos, ' ', total - pos);
        int64_t length = -1;
        if (space && parse_int64(data + pos, (size_t)(space - data) - pos, &length) != 0) {
            length = -1;
        }
        if (length < 5 || (uint64_t)length > total - pos ||
            length <= (int64_t)((size_t)(space - data) - pos + 1)) {
            return -1;
        }
        size_t end = pos + (size_t)length;
        if (data[end - 1] != '\n') {
            return -1;
        }
        const uint8_t *kv = space + 1;
        size_t kv_len = (size_t)(data + end - 1 - kv);
        const uint8_t *equals = memchr(kv, '=', kv_len);
        if (equals == NULL || equals == kv) {
            return -1;
        }
        size_t key_len = (size_t)(equals - kv);
        const uint8_t *value = equals + 1;
        size_t value_len = kv_len - key_len - 1;
        pos = end;
        int checks_value = bytes_is(kv, key_len, "path") || bytes_is(kv, key_len, "linkpath") ||
                           bytes_is(kv, key_len, "uname") || bytes_is(kv, key_len, "gname");
        if (checks_value ? memchr(value, 0, value_len) != NULL : memchr(kv, 0, key_len) != NULL) {
            return -1;
        }
        int is_offset = bytes_is(kv, key_len, "GNU.sparse.offset");
        if (is_offset || bytes_is(kv, key_len, "GNU.sparse.numbytes")) {
            if (is_offset != (sparse % 2 == 0) || memchr(value, ',', value_len) != NULL) {
                return -1;
            }
            if ((sparse && bytebuf_append(&p->pax_extra, ",", 1)) || bytebuf_append(&p->pax_extra, value, value_len)) {
                return -2;
            }
            sparse++;
        } else if (push_record(p, kv, key_len, value, value_len, order++) != 0) {
            return -2;
        }
    }
    if (sparse) {
        const uint8_t *joined = p->pax_extra.data ? p->pax_extra.data : (const uint8_t *)"";
        if (push_record(p, (const uint8_t *)SPARSE_MAP, sizeof(SPARSE_MAP) - 1, joined, p->pax_extra.len,
                        UINT32_MAX) != 0) {
            return -2;
        }
    }
    if (p->pax_count > 1) {
        qsort(p->pax, p->pax_count, sizeof(pax_record), compare_records);
        size_t kept = 0;
        for (size_t i = 0; i < p->pax_count; i++) {
            int same_as_next = i + 1 < p->pax_count && p->pax[i].key_len == p->pax[i + 1].key_len &&
                               memcmp(p->pax[i].key, p->pax[i + 1].key, p->pax[i].key_len) == 0;
            if (!same_as_next) {
                p->pax[kept++] = p->pax[i];
            }
        }
        p->pax_count = kept;
    }
    return 0;
}

static const pax_record *pax_get(const tar_parser *p, const char *key) {
    for (size_t i = 0; i < p->pax_count; i++) {
        if (key_is(&p->pax[i], key)) {
            return &p->pax[i];
        }
    }
    return NULL;
}

/* Go's readGNUSparsePAXHeaders test (toc.py: _is_pax_sparse). */
static int pax_is_sparse(const tar_parser *p) {
    const pax_record *major = pax_get(p, "GNU.sparse.major"), *minor = pax_get(p, "GNU.sparse.minor");
    const uint8_t *ma = major ? major->value : NULL, *mi = minor ? minor->value : NULL;
    size_t ma_len = major ? major->value_len : 0, mi_len = minor ? minor->value_len : 0;
    if ((bytes_is(ma, ma_len, "0") && (bytes_is(mi, mi_len, "0") || bytes_is(mi, mi_len, "1"))) ||
        (bytes_is(ma, ma_len, "1") && bytes_is(mi, mi_len, "0"))) {
        return 1;
    }
    if (ma_len || mi_len) {
        return 0;
    }
    const pax_record *map = pax_get(p, SPARSE_MAP);
    return map != NULL && map->value_len > 0;
}

/* ---- units ----------------------------------------------------------------------------------------- */

static int fail_unit(tar_parser *p, const uint8_t *unit, size_t len, uint64_t end) {
    p->fail_want = p->want;
    p->fail_end = end;
    p->fail_unit.len = 0;
    if (bytebuf_append(&p->fail_unit, unit, len) != 0) {
        p->failed = TAR_NO_MEMORY;
        return -1;
    }
    p->failed = TAR_FAILED_UNIT;
    return -1;
}

static int no_memory(tar_parser *p) {
    p->failed = TAR_NO_MEMORY;
    return -1;
}

static int finish_record(tar_parser *p, const uint8_t *data, size_t n, uint64_t end, uint64_t *skip) {
    if (p->record_type == 'x') {
        p->pax_raw.len = 0;
        if (bytebuf_append(&p->pax_raw, data, n) != 0) {
            return no_memory(p);
        }
        int parsed = parse_pax(p);
        if (parsed == -2) {
            return no_memory(p);
        }
        if (parsed != 0) {
            p->has_pax = 0;
            return fail_unit(p, data, n, end);
        }
        p->has_pax = 1; /* a later 'x' replaces an earlier one */
        p->pax_offset = p->record_offset;
    } else {
        bytebuf *target = p->record_type == 'L' ? &p->long_name : &p->long_link;
        target->len = 0;
        if (bytebuf_append(target, data, cstring_len(data, n)) != 0) {
            return no_memory(p);
        }
    }
    p->want = WANT_HEADER;
    p->need = BLOCK;
    *skip = p->record_padding;
    return 0;
}

static int add_entry(tar_parser *p, toc_entry *e, const uint8_t *name, const uint8_t *link, const uint8_t *uname,
                     const uint8_t *gname) {
    toc_store *s = &p->store;
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        toc_entry *grown = realloc(s->entries, cap * sizeof(*grown));
        if (grown == NULL) {
            return -1;
        }
        s->entries = grown;
        s->cap = cap;
    }
    size_t xattr_bytes = 0;
    for (size_t i = 0; p->has_pax && i < p->pax_count; i++) {
        xattr_bytes += 8 + (size_t)p->pax[i].key_len + p->pax[i].value_len;
    }
    size_t need = (size_t)e->name_len + e->link_len + e->uname_len + e->gname_len + xattr_bytes;
    if (xattr_bytes > UINT32_MAX || bytebuf_reserve(&s->pool, need) != 0) {
        return -1;
    }
    e->strings = s->pool.len;
    bytebuf_append(&s->pool, name, e->name_len);
    bytebuf_append(&s->pool, link, e->link_len);
    bytebuf_append(&s->pool, uname, e->uname_len);
    bytebuf_append(&s->pool, gname, e->gname_len);
    e->xattr_count = 0;
    e->xattr_bytes = (uint32_t)xattr_bytes;
    for (size_t i = 0; p->has_pax && i < p->pax_count; i++) {
        const pax_record *r = &p->pax[i];
        bytebuf_append(&s->pool, &r->key_len, 4);
        bytebuf_append(&s->pool, r->key, r->key_len);
        bytebuf_append(&s->pool, &r->value_len, 4);
        bytebuf_append(&s->pool, r->value, r->value_len);
        e->xattr_count++;
    }
    s->entries[s->count++] = *e;
    return 0;
}

/* An entry's own header, its extensions applied (toc.py: _entry_header). Every check runs before
 * anything changes, so a failure leaves the pending extensions for the replay. */
static int entry_header(tar_parser *p, const uint8_t *h, header_fields *f, uint64_t end, uint64_t *skip) {
    const uint8_t *name = f->name, *link = f->link, *uname = f->uname, *gname = f->gname;
    size_t name_len = f->name_len, link_len = f->link_len, uname_len = f->uname_len, gname_len = f->gname_len;
    int64_t uid = f->uid, gid = f->gid, size = f->size, mtime = f->mtime, ignored_secs;
    int32_t nanos = 0, ignored_nanos;
    if (p->has_pax) {
        for (size_t i = 0; i < p->pax_count; i++) {
            const pax_record *r = &p->pax[i];
            if (r->value_len == 0) {
                continue; /* an empty value keeps the header's */
            }
            int bad = 0;
            if (key_is(r, "path")) {
                name = r->value, name_len = r->value_len;
            } else if (key_is(r, "linkpath")) {
                link = r->value, link_len = r->value_len;
            } else if (key_is(r, "uname")) {
                uname = r->value, uname_len = r->value_len;
            } else if (key_is(r, "gname")) {
                gname = r->value, gname_len = r->value_len;
            } else if (key_is(r, "uid")) {
                bad = parse_int64(r->value, r->value_len, &uid);
            } else if (key_is(r, "gid")) {
                bad = parse_int64(r->value, r->value_len, &gid);
            } else if (key_is(r, "size")) {
                bad = parse_int64(r->value, r->value_len, &size);
            } else if (key_is(r, "mtime")) {
                bad = parse_pax_time(r->value, r->value_len, &mtime, &nanos);
            } else if (key_is(r, "atime") || key_is(r, "ctime")) {
                bad = parse_pax_time(r->value, r->value_len, &ignored_secs, &ignored_nanos);
            }
            if (bad) {
                return fail_unit(p, h, BLOCK, end);
            }
        }
    }
    if (p->long_name.len) {
        name = p->long_name.data, name_len = p->long_name.len;
    }
    if (p->long_link.len) {
        link = p->long_link.data, link_len = p->long_link.len;
    }
    uint8_t flag = h[156];
    int type;
    if (flag >= '0' && flag <= '6') {
        type = flag - '0';
    } else if (flag == 0) {
        type = name_len && name[name_len - 1] == '/' ? TYPE_DIR : TYPE_REG;
    } else {
        return fail_unit(p, h, BLOCK, end); /* a type the ztoc format cannot describe */
    }
    int64_t data_size = type == TYPE_REG ? size : 0;
    if (data_size < 0 || (p->has_pax && pax_is_sparse(p))) {
        return fail_unit(p, h, BLOCK, end);
    }
    if (name_len > UINT32_MAX || link_len > UINT32_MAX || uname_len > UINT32_MAX || gname_len > UINT32_MAX) {
        return no_memory(p);
    }
    toc_entry e = {
        .offset = (int64_t)end,
        .size = size,
        .mode = f->mode,
        .devmajor = f->devmajor,
        .devminor = f->devminor,
        .mtime = mtime,
        .nanos = nanos,
        .uid = (uint32_t)uid,
        .gid = (uint32_t)gid,
        .name_len = (uint32_t)name_len,
        .link_len = (uint32_t)link_len,
        .uname_len = (uint32_t)uname_len,
        .gname_len = (uint32_t)gname_len,
        .type = (uint8_t)type,
    };
    if (add_entry(p, &e, name, link, uname, gname) != 0) {
        return no_memory(p);
    }
    p->has_pax = 0;
    p->long_name.len = 0;
    p->long_link.len = 0;
    p->data_end = end + (uint64_t)data_size;
    *skip = (uint64_t)data_size + (-(uint64_t)data_size % BLOCK);
    return 0;
}

/* A header block: the end-of-archive marker, an extension record's header or an entry. */
static int header(tar_parser *p, const uint8_t *h, uint64_t end, uint64_t *skip) {
    unsigned total = 0;
    for (int i = 0; i < BLOCK; i++) {
        total += h[i];
    }
    *skip = 0;
    if (total == 0) {
        p->want = WANT_SECOND_ZERO;
        return 0;
    }
    header_fields f;
    if (parse_header(h, total, &f) != 0) {
        return fail_unit(p, h, BLOCK, end);
    }
    uint8_t flag = h[156];
    if (f.size < 0 && !(flag >= '1' && flag <= '6')) {
        return fail_unit(p, h, BLOCK, end);
    }
    if (flag == 'x' || flag == 'L' || flag == 'K') {
        if (f.size > (int64_t)MAX_SPECIAL_FILE) {
            return fail_unit(p, h, BLOCK, end);
        }
        p->record_type = flag;
        p->record_offset = end - BLOCK;
        p->record_padding = -(uint64_t)f.size % BLOCK;
        if (f.size == 0) {
            return finish_record(p, (const uint8_t *)"", 0, end, skip);
        }
        p->want = WANT_RECORD;
        p->need = (uint64_t)f.size;
        return 0;
    }
    if (flag == 'g') {
        return fail_unit(p, h, BLOCK, end);
    }
    return entry_header(p, h, &f, end, skip);
}

static int process(tar_parser *p, const uint8_t *unit, uint64_t end, uint64_t *skip) {
    if (p->want == WANT_HEADER) {
        return header(p, unit, end, skip);
    }
    if (p->want == WANT_SECOND_ZERO) {
        for (int i = 0; i < BLOCK; i++) {
            if (unit[i]) {
                return fail_unit(p, unit, BLOCK, end);
            }
        }
        p->ended = 1;
        p->end = end;
        *skip = 0;
        return 0;
    }
    return finish_record(p, unit, (size_t)p->need, end, skip);
}

void tar_parser_init(tar_parser *p) {
    memset(p, 0, sizeof(*p));
    p->want = WANT_HEADER;
    p->need = BLOCK;
}

void tar_parser_free(tar_parser *p) {
    toc_store_free(&p->store);
    bytebuf_free(&p->unit);
    bytebuf_free(&p->pax_raw);
    bytebuf_free(&p->pax_extra);
    bytebuf_free(&p->long_name);
    bytebuf_free(&p->long_link);
    bytebuf_free(&p->fail_unit);
    free(p->pax);
    p->pax = NULL;
    p->pax_count = p->pax_cap = 0;
}

int tar_parser_feed(tar_parser *p, const uint8_t *data, size_t n) {
    if (p->failed) {
        return -1;
    }
    if (p->ended) {
        return 1;
    }
    uint64_t base = p->pos, i = p->skip;
    if (i >= n) {
        p->skip = i - n;
        p->pos = base + n;
        return 0;
    }
    p->skip = 0;
    while (i < n) {
        uint64_t need = p->need, skip = 0;
        int status;
        if (p->unit.len) {
            uint64_t take = need - p->unit.len < n - i ? need - p->unit.len : n - i;
            if (bytebuf_append(&p->unit, data + i, (size_t)take) != 0) {
                return no_memory(p);
            }
            i += take;
            if (p->unit.len < need) {
                break;
            }
            p->unit.len = 0; /* the bytes stay in place while the unit is processed */
            status = process(p, p->unit.data, base + i, &skip);
        } else if (n - i >= need) {
            const uint8_t *unit = data + i;
            i += need;
            status = process(p, unit, base + i, &skip);
        } else {
            if (bytebuf_append(&p->unit, data + i, (size_t)(n - i)) != 0) {
                return no_memory(p);
            }
            i = n;
            break;
        }
        if (status != 0) {
            return -1;
        }
        i += skip;
        if (p->ended) {
            p->pos = base + i;
            return 1;
        }
    }
    if (i > n) {
        p->skip = i - n;
    }
    p->pos = base + n;
    return 0;
}
