/*
 * socikit.ztoc._engine: the ztoc builder's work in C, so that building a ztoc costs about what
 * inflating the layer costs.
 *
 * `Builder.feed(chunk)` runs without the GIL: inflate(Z_BLOCK) over the chunk (zlib-ng's native
 * entry points, looked up by name in the zlib-ng wheel's module (`use_zlib_ng`), or any libz
 * reached through the addresses Python passes; no zlib headers are needed), the reference's
 * checkpoint rule (fact sheet §2.2) with each checkpoint appended to the zinfo blob as it is
 * found, and the tar parser (tar.c) over the output. The chunk is then handed to a hashing thread
 * (a pthread, never holding the GIL) for the blob digest and the span digests. The TOC ends up
 * in a `TocStore` (tar.c's compact store), which `TocPlan` (flatbuf.c) turns into the ztoc's
 * TOC bytes. Python keeps the loop over the input stream, the errors and the oracles.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

/* ---- the inflate stream Python owns (zlib-ng's zng_stream; on LP64 the layout of z_stream) -- */

typedef struct {
    const uint8_t *next_in;
    uint32_t avail_in;
    size_t total_in;
    uint8_t *next_out;
    uint32_t avail_out;
    size_t total_out;
    const char *msg;
    void *state;
    void *zalloc;
    void *zfree;
    void *opaque;
    int data_type;
    unsigned long adler;
    unsigned long reserved;
} inflate_stream;

typedef int (*inflate_fn)(inflate_stream *strm, int flush);
typedef int (*inflate_reset2_fn)(inflate_stream *strm, int window_bits);
typedef int (*inflate_init2_fn)(inflate_stream *strm, int window_bits);
typedef int (*inflate_end_fn)(inflate_stream *strm);

/* zlib-ng's native inflate, resolved once by `use_zlib_ng` (under the GIL) and never unloaded:
 * Builders made without a stream from Python then own one of their own. Starting a build this way
 * needs no ctypes (whose import and function prototypes cost a command ~5 ms). */
static struct {
    int ready;
    inflate_init2_fn init2;
    inflate_fn inflate;
    inflate_reset2_fn reset2;
    inflate_end_fn end;
} zng;

enum { Z_OK = 0, Z_STREAM_END = 1, Z_BUF_ERROR = -5, Z_BLOCK = 5 };
enum { WINDOW_SIZE = 32768, WINDOW_BITS_AUTO = 47, OUTPUT_AREA = 1 << 20 };
enum { ZINFO_HEADER = 12, ZINFO_RECORD = 8 + 8 + 1 + WINDOW_SIZE };
/* What `feed` returns. */
enum { FEED_OK = 0, FEED_INFLATE_FAILED = 1, FEED_TAR_FAILED = 2 };
enum { RING = 8 };

static PyTypeObject *entry_type; /* socikit.ztoc.model.FileMetadata, set by set_entry_type */

/* ---- the hashing thread ---------------------------------------------------------------------- */

typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
    uint64_t start;
    uint64_t *cuts; /* (end of the previous span, start of the next) pairs */
    size_t ncuts;
    size_t cuts_cap;
    int queued;
} hash_job;

typedef struct {
    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    hash_job jobs[RING];
    size_t head; /* next job to fill */
    size_t tail; /* next job to hash */
    int closing;
    int aborting;
    /* touched by the thread only, until it is joined */
    sha256_ctx blob;
    sha256_ctx span;
    int span_open;
    uint8_t last_byte;
    int fixed; /* an uncompressed layer: spans are fixed slices */
    uint64_t span_size;
    uint64_t span_fill;
    uint8_t (*digests)[32];
    size_t ndigests;
    size_t digests_cap;
    int no_memory;
} hasher;

static void hasher_span_done(hasher *h) {
    if (h->ndigests == h->digests_cap) {
        size_t cap = h->digests_cap ? h->digests_cap * 2 : 64;
        void *grown = realloc(h->digests, cap * 32);
        if (grown == NULL) {
            h->no_memory = 1;
            return;
        }
        h->digests = grown;
        h->digests_cap = cap;
    }
    sha256_final(&h->span, h->digests[h->ndigests++]);
    h->span_open = 0;
}

/* The span takes data[from..to); the blob takes every byte of the job once, in order, and
 * `*blob_done` says how far it got. Bytes both take go through one pair update (two SHA-NI
 * lanes); the byte a checkpoint shares with the span before is the span's alone the second time. */
static void hasher_span_bytes(hasher *h, const uint8_t *data, size_t from, size_t to, size_t *blob_done) {
    if (from < *blob_done) {
        size_t seen = to < *blob_done ? to : *blob_done;
        sha256_update(&h->span, data + from, seen - from);
        from = seen;
    }
    if (from == to) {
        return;
    }
    if (*blob_done < from) {
        sha256_update(&h->blob, data + *blob_done, from - *blob_done);
    }
    sha256_update_pair(&h->blob, &h->span, data + from, to - from);
    *blob_done = to;
}

static void hasher_run_job(hasher *h, hash_job *job) {
    const uint8_t *data = job->data;
    size_t len = job->len;
    size_t blob_done = 0;
    if (h->fixed) {
        size_t pos = 0;
        while (pos < len) {
            if (!h->span_open) {
                sha256_init(&h->span);
                h->span_open = 1;
            }
            uint64_t room = h->span_size - h->span_fill;
            size_t take = room < len - pos ? (size_t)room : len - pos;
            hasher_span_bytes(h, data, pos, pos + take, &blob_done);
            pos += take;
            h->span_fill += take;
            if (h->span_fill == h->span_size) {
                hasher_span_done(h);
                h->span_fill = 0;
            }
        }
        return;
    }
    size_t pos = 0;
    for (size_t i = 0; i < job->ncuts; i++) {
        uint64_t cut = job->cuts[2 * i], span_start = job->cuts[2 * i + 1];
        if (h->span_open) {
            hasher_span_bytes(h, data, pos, (size_t)(cut - job->start), &blob_done);
            hasher_span_done(h);
        }
        sha256_init(&h->span);
        h->span_open = 1;
        if (span_start < job->start) { /* the byte a checkpoint shares lies in the previous chunk */
            sha256_update(&h->span, &h->last_byte, 1);
            pos = 0;
        } else {
            pos = (size_t)(span_start - job->start);
        }
    }
    if (h->span_open) {
        hasher_span_bytes(h, data, pos, len, &blob_done);
    }
    if (blob_done < len) {
        sha256_update(&h->blob, data + blob_done, len - blob_done);
    }
    if (len) {
        h->last_byte = data[len - 1];
    }
}

static void *hasher_main(void *arg) {
    hasher *h = arg;
    pthread_mutex_lock(&h->lock);
    for (;;) {
        hash_job *job = &h->jobs[h->tail % RING];
        if (h->aborting || (!job->queued && h->closing)) {
            break;
        }
        if (!job->queued) {
            pthread_cond_wait(&h->changed, &h->lock);
            continue;
        }
        pthread_mutex_unlock(&h->lock);
        hasher_run_job(h, job);
        pthread_mutex_lock(&h->lock);
        job->queued = 0;
        h->tail++;
        pthread_cond_broadcast(&h->changed);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

static int hasher_start(hasher *h, int fixed, uint64_t span_size) {
    memset(h, 0, sizeof(*h));
    h->fixed = fixed;
    h->span_size = span_size;
    sha256_init(&h->blob);
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->changed, NULL);
    if (pthread_create(&h->thread, NULL, hasher_main, h) != 0) {
        return -1;
    }
    h->started = 1;
    return 0;
}

/* The job to fill next, once the thread is done with it. Called without the GIL. */
static hash_job *hasher_acquire(hasher *h) {
    pthread_mutex_lock(&h->lock);
    hash_job *job = &h->jobs[h->head % RING];
    while (job->queued) {
        pthread_cond_wait(&h->changed, &h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    job->len = 0;
    job->ncuts = 0;
    return job;
}

static void hasher_submit(hasher *h, hash_job *job) {
    pthread_mutex_lock(&h->lock);
    job->queued = 1;
    h->head++;
    pthread_cond_broadcast(&h->changed);
    pthread_mutex_unlock(&h->lock);
}

/* Stop the thread: after the queued jobs (`abort` 0) or at once. Called without the GIL. */
static void hasher_stop(hasher *h, int abort) {
    if (!h->started) {
        return;
    }
    pthread_mutex_lock(&h->lock);
    h->closing = 1;
    h->aborting = abort;
    pthread_cond_broadcast(&h->changed);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    h->started = 0;
}

static void hasher_free(hasher *h) {
    for (int i = 0; i < RING; i++) {
        free(h->jobs[i].data);
        free(h->jobs[i].cuts);
    }
    free(h->digests);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->changed);
    memset(h, 0, sizeof(*h));
}

static int job_add_cut(hash_job *job, uint64_t cut, uint64_t span_start) {
    if (job->ncuts == job->cuts_cap) {
        size_t cap = job->cuts_cap ? job->cuts_cap * 2 : 8;
        uint64_t *grown = realloc(job->cuts, cap * 2 * sizeof(uint64_t));
        if (grown == NULL) {
            return -1;
        }
        job->cuts = grown;
        job->cuts_cap = cap;
    }
    job->cuts[2 * job->ncuts] = cut;
    job->cuts[2 * job->ncuts + 1] = span_start;
    job->ncuts++;
    return 0;
}

/* ---- TocStore ---------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    toc_store store;
    PyObject *types[TYPE_COUNT];
} TocStoreObject;

static PyTypeObject TocStoreType;

static void TocStore_dealloc(TocStoreObject *self) {
    toc_store_free(&self->store);
    for (int i = 0; i < TYPE_COUNT; i++) {
        Py_XDECREF(self->types[i]);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static TocStoreObject *TocStore_from(toc_store *store) {
    TocStoreObject *self = PyObject_New(TocStoreObject, &TocStoreType);
    if (self == NULL) {
        return NULL;
    }
    self->store = *store;
    memset(store, 0, sizeof(*store));
    for (int i = 0; i < TYPE_COUNT; i++) {
        self->types[i] = NULL;
    }
    return self;
}

static Py_ssize_t TocStore_len(TocStoreObject *self) { return (Py_ssize_t)self->store.count; }

static PyObject *text(const uint8_t *data, size_t len) {
    return PyUnicode_DecodeUTF8((const char *)data, (Py_ssize_t)len, "surrogateescape");
}

static PyObject *xattr_tuple(const uint8_t *p, uint32_t count) {
    PyObject *out = PyTuple_New(count);
    for (uint32_t i = 0; out != NULL && i < count; i++) {
        uint32_t key_len, value_len;
        memcpy(&key_len, p, 4);
        const uint8_t *key = p + 4;
        memcpy(&value_len, key + key_len, 4);
        const uint8_t *value = key + key_len + 4;
        p = value + value_len;
        PyObject *pair = Py_BuildValue("(y#y#)", key, (Py_ssize_t)key_len, value, (Py_ssize_t)value_len);
        if (pair == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyTuple_SET_ITEM(out, i, pair);
    }
    return out;
}

static PyObject *TocStore_item(TocStoreObject *self, Py_ssize_t index) {
    if (index < 0 || (size_t)index >= self->store.count) {
        PyErr_SetString(PyExc_IndexError, "TOC index out of range");
        return NULL;
    }
    if (entry_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_entry_type was not called");
        return NULL;
    }
    const toc_entry *e = &self->store.entries[index];
    const uint8_t *name = toc_entry_strings(&self->store, e);
    const uint8_t *link = name + e->name_len, *uname = link + e->link_len, *gname = uname + e->uname_len;
    char mod_time[48];
    size_t mod_time_len = format_mod_time(e->mtime, e->nanos, mod_time);
    if (self->types[e->type] == NULL) {
        self->types[e->type] = PyUnicode_InternFromString(toc_type_names[e->type]);
        if (self->types[e->type] == NULL) {
            return NULL;
        }
    }
    PyObject *values[14] = {
        text(name, e->name_len),
        Py_NewRef(self->types[e->type]),
        PyLong_FromLongLong(e->offset),
        PyLong_FromLongLong(e->size),
        text(link, e->link_len),
        PyLong_FromLongLong(e->mode),
        PyLong_FromUnsignedLong(e->uid),
        PyLong_FromUnsignedLong(e->gid),
        text(uname, e->uname_len),
        text(gname, e->gname_len),
        PyUnicode_FromStringAndSize(mod_time, (Py_ssize_t)mod_time_len),
        PyLong_FromLongLong(e->devmajor),
        PyLong_FromLongLong(e->devminor),
        xattr_tuple(gname + e->gname_len, e->xattr_count),
    };
    PyObject *entry = NULL;
    for (int i = 0; i < 14; i++) {
        if (values[i] == NULL) {
            goto done;
        }
    }
    entry = entry_type->tp_alloc(entry_type, 14);
    if (entry != NULL) {
        for (int i = 0; i < 14; i++) {
            PyTuple_SET_ITEM(entry, i, values[i]);
            values[i] = NULL;
        }
    }
done:
    for (int i = 0; i < 14; i++) {
        Py_XDECREF(values[i]);
    }
    return entry;
}

typedef struct {
    PyObject_HEAD
    toc_plan plan;
    TocStoreObject *store;
} TocPlanObject;

static PyTypeObject TocPlanType;

static PyObject *TocStore_plan(TocStoreObject *self, PyObject *arg) {
    long long start = PyLong_AsLongLong(arg);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    TocPlanObject *plan = PyObject_New(TocPlanObject, &TocPlanType);
    if (plan == NULL) {
        return NULL;
    }
    plan->store = (TocStoreObject *)Py_NewRef(self);
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = toc_plan_build(&plan->plan, &self->store, start);
    Py_END_ALLOW_THREADS
    if (status != 0) {
        memset(&plan->plan, 0, sizeof(plan->plan));
        Py_DECREF(plan);
        return PyErr_NoMemory();
    }
    return (PyObject *)plan;
}

static PyObject *TocStore_memory(TocStoreObject *self, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromSize_t(self->store.cap * sizeof(toc_entry) + self->store.pool.cap);
}

static PyMethodDef TocStore_methods[] = {
    {"plan", (PyCFunction)TocStore_plan, METH_O,
     "plan(start) -> TocPlan: pass 1 of the TOC's flatbuffer bytes, the buffer's position being `start`."},
    {"memory", (PyCFunction)TocStore_memory, METH_NOARGS, "Bytes allocated for the entries and their strings."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods TocStore_as_sequence = {
    .sq_length = (lenfunc)TocStore_len,
    .sq_item = (ssizeargfunc)TocStore_item,
};

static PyTypeObject TocStoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socikit.ztoc._engine.TocStore",
    .tp_basicsize = sizeof(TocStoreObject),
    .tp_dealloc = (destructor)TocStore_dealloc,
    .tp_as_sequence = &TocStore_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The TOC of one layer, compact: one fixed-size record per entry plus its bytes.",
    .tp_methods = TocStore_methods,
};

/* ---- TocPlan ----------------------------------------------------------------------------------- */

static void TocPlan_dealloc(TocPlanObject *self) {
    toc_plan_free(&self->plan);
    Py_XDECREF(self->store);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *TocPlan_get(TocPlanObject *self, void *which) {
    switch ((intptr_t)which) {
    case 0:
        return PyLong_FromLongLong(self->plan.end);
    case 1:
        return PyLong_FromLongLong(self->plan.toc_table);
    case 2:
        return PyLong_FromLong(self->plan.minalign);
    default: {
        size_t count = toc_plan_vtable_count(&self->plan);
        PyObject *out = PyList_New((Py_ssize_t)count);
        for (size_t i = 0; out != NULL && i < count; i++) {
            uint16_t entries[16];
            int64_t position;
            size_t n = toc_plan_vtable(&self->plan, i, entries, &position);
            PyObject *key = PyTuple_New((Py_ssize_t)n);
            for (size_t k = 0; key != NULL && k < n; k++) {
                PyObject *value = PyLong_FromLong(entries[k]);
                if (value == NULL) {
                    Py_CLEAR(key);
                    break;
                }
                PyTuple_SET_ITEM(key, (Py_ssize_t)k, value);
            }
            PyObject *item = key ? Py_BuildValue("(NL)", key, (long long)position) : NULL;
            if (item == NULL) {
                Py_CLEAR(out);
                break;
            }
            PyList_SET_ITEM(out, (Py_ssize_t)i, item);
        }
        return out;
    }
    }
}

static PyGetSetDef TocPlan_getset[] = {
    {"end", (getter)TocPlan_get, NULL, "Position after the TOC table.", (void *)0},
    {"toc_table", (getter)TocPlan_get, NULL, "Position of the TOC table.", (void *)1},
    {"minalign", (getter)TocPlan_get, NULL, "Largest alignment used.", (void *)2},
    {"vtables", (getter)TocPlan_get, NULL, "[(field entries, position)] of the vtables written.", (void *)3},
    {NULL, NULL, NULL, NULL, NULL},
};

/* Sum the lengths of a list of buffers; -1 with an exception set. */
static Py_ssize_t buffers_length(PyObject *list) {
    Py_ssize_t total = 0, n = PyList_GET_SIZE(list);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_buffer view;
        if (PyObject_GetBuffer(PyList_GET_ITEM(list, i), &view, PyBUF_SIMPLE) != 0) {
            return -1;
        }
        total += view.len;
        PyBuffer_Release(&view);
    }
    return total;
}

typedef struct {
    uint8_t *at;
    uint8_t *limit;
} memory_sink;

static int memory_emit(void *ctx, const uint8_t *data, size_t len) {
    memory_sink *sink = ctx;
    if ((size_t)(sink->limit - sink->at) < len) {
        return -1;
    }
    memcpy(sink->at, data, len);
    sink->at += len;
    return 0;
}

static int copy_buffers(PyObject *list, memory_sink *sink) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        Py_buffer view;
        if (PyObject_GetBuffer(PyList_GET_ITEM(list, i), &view, PyBUF_SIMPLE) != 0) {
            return -1;
        }
        int status = memory_emit(sink, view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
        if (status != 0) {
            PyErr_SetString(PyExc_ValueError, "assemble: pieces longer than planned");
            return -1;
        }
    }
    return 0;
}

static PyObject *TocPlan_assemble(TocPlanObject *self, PyObject *args) {
    PyObject *front, *head;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &front, &PyList_Type, &head)) {
        return NULL;
    }
    Py_ssize_t front_len = buffers_length(front), head_len = buffers_length(head);
    if (front_len < 0 || head_len < 0) {
        return NULL;
    }
    Py_ssize_t total = front_len + (Py_ssize_t)(self->plan.end - self->plan.start) + head_len;
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL) {
        return NULL;
    }
    uint8_t *base = (uint8_t *)PyBytes_AS_STRING(out);
    memory_sink sink = {base, base + total};
    if (copy_buffers(front, &sink) != 0) {
        Py_DECREF(out);
        return NULL;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = toc_plan_emit(&self->plan, &self->store->store, memory_emit, &sink);
    Py_END_ALLOW_THREADS
    if (status != 0 || copy_buffers(head, &sink) != 0 || sink.at != sink.limit) {
        Py_DECREF(out);
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "ztoc serialization: pass 2 disagrees with pass 1");
        }
        return NULL;
    }
    return out;
}

typedef struct {
    PyObject *write;
    bytebuf staged;
    int failed;
} stream_sink;

static int stream_flush(stream_sink *sink) {
    if (sink->staged.len == 0) {
        return 0;
    }
    PyObject *chunk = PyBytes_FromStringAndSize((const char *)sink->staged.data, (Py_ssize_t)sink->staged.len);
    PyObject *result = chunk ? PyObject_CallOneArg(sink->write, chunk) : NULL;
    Py_XDECREF(chunk);
    Py_XDECREF(result);
    sink->staged.len = 0;
    if (result == NULL) {
        sink->failed = 1;
        return -1;
    }
    return 0;
}

static int stream_emit(void *ctx, const uint8_t *data, size_t len) {
    stream_sink *sink = ctx;
    if (bytebuf_append(&sink->staged, data, len) != 0) {
        PyErr_NoMemory();
        sink->failed = 1;
        return -1;
    }
    return sink->staged.len >= (1 << 20) ? stream_flush(sink) : 0;
}

static PyObject *TocPlan_write(TocPlanObject *self, PyObject *args) {
    PyObject *front, *head, *write;
    if (!PyArg_ParseTuple(args, "O!O!O", &PyList_Type, &front, &PyList_Type, &head, &write)) {
        return NULL;
    }
    stream_sink sink = {write, {NULL, 0, 0}, 0};
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(front); i++) {
        PyObject *result = PyObject_CallOneArg(write, PyList_GET_ITEM(front, i));
        if (result == NULL) {
            return NULL;
        }
        Py_DECREF(result);
    }
    int status = toc_plan_emit(&self->plan, &self->store->store, stream_emit, &sink);
    if (status == 0) {
        status = stream_flush(&sink);
    }
    bytebuf_free(&sink.staged);
    if (status != 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "ztoc serialization: pass 2 disagrees with pass 1");
        }
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(head); i++) {
        PyObject *result = PyObject_CallOneArg(write, PyList_GET_ITEM(head, i));
        if (result == NULL) {
            return NULL;
        }
        Py_DECREF(result);
    }
    Py_RETURN_NONE;
}

static PyMethodDef TocPlan_methods[] = {
    {"assemble", (PyCFunction)TocPlan_assemble, METH_VARARGS,
     "assemble(front, head) -> bytes: the whole flatbuffer in one exact-size buffer; `front` and `head` are "
     "the bytes before and after the TOC region, in memory order."},
    {"write", (PyCFunction)TocPlan_write, METH_VARARGS,
     "write(front, head, write): the same bytes passed to `write` in pieces of about 1 MiB."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TocPlanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socikit.ztoc._engine.TocPlan",
    .tp_basicsize = sizeof(TocPlanObject),
    .tp_dealloc = (destructor)TocPlan_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Pass 1 of a TOC's flatbuffer bytes: the positions of everything (see flatbuf.c).",
    .tp_getset = TocPlan_getset,
    .tp_methods = TocPlan_methods,
};

/* ---- Builder ----------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    int gzip;
    int hashing;
    int busy;
    uint64_t span_size;
    inflate_stream *strm;
    int owns_strm; /* made with zlib-ng's init2 here (ends with its inflateEnd), not lent by Python */
    inflate_fn inflate;
    inflate_reset2_fn reset2;
    uint8_t *out; /* WINDOW_SIZE of history, then the output area */
    size_t out_pos;
    uint32_t out_area;
    uint64_t totin, totout, last;
    int member_ended;
    int inflate_ret;
    bytebuf zinfo;
    uint32_t checkpoints;
    tar_parser tar;
    int toc_open;
    hasher hash;
    uint64_t total_read;
} BuilderObject;

static PyTypeObject BuilderType;

static void Builder_release(BuilderObject *self, int abort) {
    if (self->hash.started) {
        Py_BEGIN_ALLOW_THREADS
        hasher_stop(&self->hash, abort);
        Py_END_ALLOW_THREADS
    }
}

static void Builder_dealloc(BuilderObject *self) {
    Builder_release(self, 1);
    if (self->hashing) {
        hasher_free(&self->hash);
    }
    tar_parser_free(&self->tar);
    bytebuf_free(&self->zinfo);
    free(self->out);
    if (self->owns_strm) {
        zng.end(self->strm);
        free(self->strm);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Builder_init(BuilderObject *self, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"gzip", "span_size", "hashing", "strm", "inflate", "reset2", "output_area", NULL};
    int gzip, hashing;
    unsigned long long span_size, strm = 0, inflate = 0, reset2 = 0;
    unsigned int output_area = OUTPUT_AREA;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "pKp|KKKI", keywords, &gzip, &span_size, &hashing, &strm, &inflate,
                                     &reset2, &output_area)) {
        return -1;
    }
    if (output_area < 1024) {
        PyErr_SetString(PyExc_ValueError, "the output area must be at least 1 KiB");
        return -1;
    }
    if (self->out != NULL || self->tar.store.entries != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Builder is already initialised");
        return -1;
    }
    if (gzip && !strm && !inflate && !reset2 && zng.ready) {
        inflate_stream *own = calloc(1, sizeof(inflate_stream));
        if (own == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        int ret = zng.init2(own, WINDOW_BITS_AUTO);
        if (ret != Z_OK) {
            free(own);
            PyErr_Format(PyExc_MemoryError, "inflateInit2 failed: %d", ret);
            return -1;
        }
        self->strm = own; /* owned from here on: freed by dealloc whatever fails next */
        self->owns_strm = 1;
        strm = (uintptr_t)own;
        inflate = (uintptr_t)zng.inflate;
        reset2 = (uintptr_t)zng.reset2;
    } else if (gzip && (!strm || !inflate || !reset2)) {
        PyErr_SetString(PyExc_ValueError, "a gzip Builder needs the inflate stream and functions (or use_zlib_ng)");
        return -1;
    }
    if (!gzip && hashing && span_size == 0) {
        PyErr_SetString(PyExc_ValueError, "fixed spans need a positive span size");
        return -1;
    }
    self->gzip = gzip;
    self->span_size = span_size;
    self->strm = (inflate_stream *)(uintptr_t)strm;
    self->inflate = (inflate_fn)(uintptr_t)inflate;
    self->reset2 = (inflate_reset2_fn)(uintptr_t)reset2;
    tar_parser_init(&self->tar);
    self->toc_open = 1;
    if (gzip) {
        self->out_area = output_area;
        self->out = calloc(1, (size_t)WINDOW_SIZE + output_area); /* the initial window is zeros */
        if (self->out == NULL || bytebuf_reserve(&self->zinfo, ZINFO_HEADER) != 0) {
            PyErr_NoMemory();
            return -1;
        }
        self->out_pos = WINDOW_SIZE;
        self->zinfo.len = ZINFO_HEADER;
        int64_t span = (int64_t)span_size;
        memset(self->zinfo.data, 0, 4);
        memcpy(self->zinfo.data + 4, &span, 8);
        self->strm->next_out = self->out + WINDOW_SIZE;
        self->strm->avail_out = output_area;
    }
    if (hashing) {
        if (hasher_start(&self->hash, !gzip, span_size) != 0) {
            PyErr_SetString(PyExc_OSError, "cannot start the hashing thread");
            return -1;
        }
        self->hashing = 1;
    }
    return 0;
}

static int feed_toc(BuilderObject *self, const uint8_t *data, size_t len) {
    if (!self->toc_open || len == 0) {
        return 0;
    }
    int status = tar_parser_feed(&self->tar, data, len);
    if (status < 0) {
        return -1;
    }
    if (status > 0) {
        self->toc_open = 0;
    }
    return 0;
}

/* inflate(Z_BLOCK) over the job's bytes. Runs without the GIL. */
static int inflate_job(BuilderObject *self, hash_job *job) {
    inflate_stream *strm = self->strm;
    strm->next_in = job->data;
    strm->avail_in = (uint32_t)job->len;
    int result = FEED_OK;
    while (strm->avail_in) {
        if (self->member_ended) {
            /* Concatenated members (pigz -i, cat a.gz b.gz): go on with the next gzip header. */
            int ret = self->reset2(strm, WINDOW_BITS_AUTO);
            if (ret != Z_OK) {
                self->inflate_ret = ret;
                result = FEED_INFLATE_FAILED;
                break;
            }
            self->member_ended = 0;
        }
        if (strm->avail_out == 0) {
            memmove(self->out, self->out + self->out_pos - WINDOW_SIZE, WINDOW_SIZE);
            self->out_pos = WINDOW_SIZE;
            strm->next_out = self->out + WINDOW_SIZE;
            strm->avail_out = self->out_area;
        }
        uint32_t avail_in = strm->avail_in, avail_out = strm->avail_out;
        int ret = self->inflate(strm, Z_BLOCK);
        uint32_t produced = avail_out - strm->avail_out;
        self->totin += avail_in - strm->avail_in;
        self->totout += produced;
        /* The TOC sees what was inflated before any error: a broken tar wins over later damage. */
        if (feed_toc(self, self->out + self->out_pos, produced) != 0) {
            self->out_pos += produced;
            result = FEED_TAR_FAILED;
            break;
        }
        self->out_pos += produced;
        if (ret == Z_STREAM_END) {
            self->member_ended = 1;
            continue;
        }
        if (ret != Z_OK) {
            if (ret == Z_BUF_ERROR && strm->avail_in == 0) {
                break;
            }
            self->inflate_ret = ret;
            result = FEED_INFLATE_FAILED;
            break;
        }
        int data_type = strm->data_type;
        if ((data_type & 128) && !(data_type & 64) &&
            (self->totout == 0 || self->totout - self->last > self->span_size)) {
            int64_t in = (int64_t)self->totin, out = (int64_t)self->totout;
            uint8_t bits = (uint8_t)(data_type & 7);
            if (bytebuf_reserve(&self->zinfo, ZINFO_RECORD) != 0 ||
                job_add_cut(job, self->totin, bits ? self->totin - 1 : self->totin) != 0) {
                result = -1;
                break;
            }
            bytebuf_append(&self->zinfo, &in, 8);
            bytebuf_append(&self->zinfo, &out, 8);
            bytebuf_append(&self->zinfo, &bits, 1);
            bytebuf_append(&self->zinfo, self->out + self->out_pos - WINDOW_SIZE, WINDOW_SIZE);
            self->checkpoints++;
            self->last = self->totout;
        }
    }
    /* The stream must not keep pointers into a buffer that is reused. */
    strm->next_in = NULL;
    strm->avail_in = 0;
    return result;
}

static PyObject *Builder_feed(BuilderObject *self, PyObject *arg) {
    Py_buffer chunk;
    if (PyObject_GetBuffer(arg, &chunk, PyBUF_SIMPLE) != 0) {
        return NULL;
    }
    if (self->busy || (self->gzip && self->out == NULL) || (self->hashing && !self->hash.started)) {
        PyBuffer_Release(&chunk);
        PyErr_SetString(PyExc_RuntimeError, "Builder is in use, closed or not initialised");
        return NULL;
    }
    if (chunk.len > UINT32_MAX) {
        PyBuffer_Release(&chunk);
        PyErr_SetString(PyExc_ValueError, "feed at most 4 GiB at a time");
        return NULL;
    }
    self->busy = 1;
    int result = FEED_OK;
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *data = chunk.buf;
    size_t len = (size_t)chunk.len;
    hash_job *job = NULL;
    if (self->hashing) {
        job = hasher_acquire(&self->hash);
        if (job->cap < len) {
            uint8_t *grown = realloc(job->data, len);
            if (grown == NULL) {
                result = -1;
            } else {
                job->data = grown;
                job->cap = len;
            }
        }
        if (result == FEED_OK) {
            memcpy(job->data, data, len);
            job->len = len;
            job->start = self->total_read;
            data = job->data;
        }
    }
    if (result == FEED_OK) {
        if (self->gzip) {
            hash_job local = {(uint8_t *)data, len, len, 0, NULL, 0, 0, 0};
            result = inflate_job(self, job ? job : &local);
            free(local.cuts);
        } else if (feed_toc(self, data, len) != 0) {
            result = FEED_TAR_FAILED;
        }
    }
    if (result == FEED_OK && job != NULL) {
        hasher_submit(&self->hash, job);
    }
    if (result == FEED_OK) {
        self->total_read += len;
    }
    Py_END_ALLOW_THREADS
    self->busy = 0;
    PyBuffer_Release(&chunk);
    if (result < 0 || (result == FEED_TAR_FAILED && self->tar.failed == TAR_NO_MEMORY)) {
        return PyErr_NoMemory();
    }
    return PyLong_FromLong(result);
}

static PyObject *bytes_or_none(const bytebuf *buf, int present) {
    if (!present) {
        Py_RETURN_NONE;
    }
    return PyBytes_FromStringAndSize((const char *)(buf->data ? buf->data : (uint8_t *)""), (Py_ssize_t)buf->len);
}

static PyObject *Builder_tar_failure(BuilderObject *self, PyObject *Py_UNUSED(ignored)) {
    tar_parser *p = &self->tar;
    return Py_BuildValue("(iKNNKNNcKK)", p->fail_want, (unsigned long long)p->fail_end,
                         bytes_or_none(&p->fail_unit, 1), bytes_or_none(&p->pax_raw, p->has_pax),
                         (unsigned long long)p->pax_offset, bytes_or_none(&p->long_name, 1),
                         bytes_or_none(&p->long_link, 1), p->record_type ? p->record_type : '0',
                         (unsigned long long)p->record_offset, (unsigned long long)p->record_padding);
}

static PyObject *Builder_tar_state(BuilderObject *self, PyObject *Py_UNUSED(ignored)) {
    tar_parser *p = &self->tar;
    return Py_BuildValue("(NKKiNK)", PyBool_FromLong(p->ended), (unsigned long long)(p->ended ? p->end : p->pos),
                         (unsigned long long)p->data_end, p->want, bytes_or_none(&p->unit, 1),
                         (unsigned long long)p->skip);
}

static PyObject *hex_list(uint8_t (*digests)[32], size_t count) {
    static const char hex[] = "0123456789abcdef";
    PyObject *out = PyList_New((Py_ssize_t)count);
    for (size_t i = 0; out != NULL && i < count; i++) {
        char text[71];
        memcpy(text, "sha256:", 7);
        for (int k = 0; k < 32; k++) {
            text[7 + 2 * k] = hex[digests[i][k] >> 4];
            text[8 + 2 * k] = hex[digests[i][k] & 15];
        }
        PyObject *item = PyUnicode_FromStringAndSize(text, 71);
        if (item == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, (Py_ssize_t)i, item);
    }
    return out;
}

static PyObject *Builder_finish(BuilderObject *self, PyObject *Py_UNUSED(ignored)) {
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Builder is in use");
        return NULL;
    }
    Builder_release(self, 0);
    hasher *h = &self->hash;
    if (self->hashing && h->no_memory) {
        return PyErr_NoMemory();
    }
    PyObject *digests = Py_None, *blob = Py_None, *zinfo = Py_None;
    Py_INCREF(Py_None);
    Py_INCREF(Py_None);
    Py_INCREF(Py_None);
    if (self->hashing) {
        if (h->span_open && (!h->fixed || h->span_fill)) {
            hasher_span_done(h);
        }
        char text[72];
        sha256_hexdigest(&h->blob, text);
        Py_SETREF(blob, PyUnicode_FromString(text));
        Py_SETREF(digests, hex_list(h->digests, h->ndigests));
    }
    if (self->gzip) {
        memcpy(self->zinfo.data, &self->checkpoints, 4);
        Py_SETREF(zinfo, PyBytes_FromStringAndSize((const char *)self->zinfo.data, (Py_ssize_t)self->zinfo.len));
        bytebuf_free(&self->zinfo);
    }
    TocStoreObject *store = TocStore_from(&self->tar.store);
    if (digests == NULL || blob == NULL || zinfo == NULL || store == NULL) {
        Py_XDECREF(digests);
        Py_XDECREF(blob);
        Py_XDECREF(zinfo);
        Py_XDECREF(store);
        return NULL;
    }
    return Py_BuildValue("(NNNNK)", store, zinfo, digests, blob, (unsigned long long)self->total_read);
}

static PyObject *Builder_close(BuilderObject *self, PyObject *Py_UNUSED(ignored)) {
    if (!self->busy) {
        Builder_release(self, 1);
    }
    Py_RETURN_NONE;
}

static PyObject *Builder_get(BuilderObject *self, void *which) {
    switch ((intptr_t)which) {
    case 0:
        return PyBool_FromLong(self->member_ended);
    case 1:
        return PyLong_FromUnsignedLong(self->checkpoints);
    case 2:
        return PyLong_FromUnsignedLongLong(self->totin);
    case 3:
        return PyLong_FromLong(self->inflate_ret);
    case 4:
        return PyLong_FromUnsignedLongLong(self->total_read);
    case 6:
        if (self->strm != NULL && self->strm->msg != NULL) {
            return PyBytes_FromString(self->strm->msg);
        }
        Py_RETURN_NONE;
    default:
        return PyBool_FromLong(!self->toc_open);
    }
}

static PyGetSetDef Builder_getset[] = {
    {"member_ended", (getter)Builder_get, NULL, "The last gzip member read has ended.", (void *)0},
    {"checkpoints", (getter)Builder_get, NULL, "Checkpoints found so far.", (void *)1},
    {"totin", (getter)Builder_get, NULL, "Compressed bytes inflated so far.", (void *)2},
    {"inflate_ret", (getter)Builder_get, NULL, "zlib's code after FEED_INFLATE_FAILED.", (void *)3},
    {"total_read", (getter)Builder_get, NULL, "Bytes fed so far.", (void *)4},
    {"toc_done", (getter)Builder_get, NULL, "The tar archive has ended.", (void *)5},
    {"inflate_msg", (getter)Builder_get, NULL, "zlib's message for a failed inflate (bytes), or None.", (void *)6},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef Builder_methods[] = {
    {"feed", (PyCFunction)Builder_feed, METH_O,
     "feed(chunk) -> int: the next bytes of the layer blob; FEED_OK, FEED_INFLATE_FAILED or FEED_TAR_FAILED."},
    {"tar_failure", (PyCFunction)Builder_tar_failure, METH_NOARGS,
     "(want, end, unit, pax record or None, pax offset, long name, long link, record type, record offset, "
     "record padding) of the tar unit that failed."},
    {"tar_state", (PyCFunction)Builder_tar_state, METH_NOARGS,
     "(ended, end or position, data end, want, buffered bytes, bytes to skip) of the tar parser."},
    {"finish", (PyCFunction)Builder_finish, METH_NOARGS,
     "finish() -> (TocStore, zinfo blob or None, span digests or None, blob digest or None, bytes read), once "
     "the hashing thread is done."},
    {"close", (PyCFunction)Builder_close, METH_NOARGS, "Stop the hashing thread at once (on failures)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BuilderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socikit.ztoc._engine.Builder",
    .tp_basicsize = sizeof(BuilderObject),
    .tp_dealloc = (destructor)Builder_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Builder(gzip, span_size, hashing, strm=0, inflate=0, reset2=0, output_area=OUTPUT_AREA): one layer's "
              "ztoc, fed in order. A gzip Builder inflates with the stream and functions given, or without them "
              "(after use_zlib_ng) with a zlib-ng stream of its own.",
    .tp_methods = Builder_methods,
    .tp_getset = Builder_getset,
    .tp_init = (initproc)Builder_init,
    .tp_new = PyType_GenericNew,
};

/* ---- module functions -------------------------------------------------------------------------- */

static PyObject *set_entry_type(PyObject *module, PyObject *arg) {
    (void)module;
    if (!PyType_Check(arg) || !PyType_IsSubtype((PyTypeObject *)arg, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "set_entry_type needs a tuple subclass");
        return NULL;
    }
    Py_XSETREF(entry_type, (PyTypeObject *)Py_NewRef(arg));
    Py_RETURN_NONE;
}

static PyObject *sha256_backend_py(PyObject *module, PyObject *Py_UNUSED(ignored)) {
    (void)module;
    return PyUnicode_FromString(sha256_backend());
}

static PyObject *use_sha256_backend(PyObject *module, PyObject *arg) {
    (void)module;
    const char *name = NULL;
    if (arg != Py_None) {
        name = PyUnicode_AsUTF8(arg);
        if (name == NULL) {
            return NULL;
        }
    }
    if (sha256_use_backend(name) != 0) {
        PyErr_Format(PyExc_ValueError, "SHA-256 backend %R is unknown or cannot run here", arg);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Feed each buffer of `chunks` (a list) to `update(ctx, data, len)` or, when `b` is set, to the
 * pair update of `a` and `b`. 0, or -1 with an exception set. */
static int feed_chunks(PyObject *chunks, sha256_ctx *a, sha256_ctx *b) {
    if (!PyList_Check(chunks)) {
        PyErr_SetString(PyExc_TypeError, "chunks must be a list of bytes-like objects");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(chunks); i++) {
        Py_buffer data;
        if (PyObject_GetBuffer(PyList_GET_ITEM(chunks, i), &data, PyBUF_SIMPLE) != 0) {
            return -1;
        }
        if (b) {
            sha256_update_pair(a, b, data.buf, (size_t)data.len);
        } else {
            sha256_update(a, data.buf, (size_t)data.len);
        }
        PyBuffer_Release(&data);
    }
    return 0;
}

static PyObject *sha256_chunks_py(PyObject *module, PyObject *arg) {
    (void)module;
    sha256_ctx ctx;
    char text[72];
    sha256_init(&ctx);
    if (feed_chunks(arg, &ctx, NULL) != 0) {
        return NULL;
    }
    sha256_hexdigest(&ctx, text);
    return PyUnicode_FromString(text);
}

static PyObject *sha256_pair_py(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer prefix_a, prefix_b;
    PyObject *chunks;
    if (!PyArg_ParseTuple(args, "y*y*O", &prefix_a, &prefix_b, &chunks)) {
        return NULL;
    }
    sha256_ctx a, b;
    char text_a[72], text_b[72];
    sha256_init(&a);
    sha256_init(&b);
    sha256_update(&a, prefix_a.buf, (size_t)prefix_a.len);
    sha256_update(&b, prefix_b.buf, (size_t)prefix_b.len);
    PyBuffer_Release(&prefix_a);
    PyBuffer_Release(&prefix_b);
    if (feed_chunks(chunks, &a, &b) != 0) {
        return NULL;
    }
    sha256_hexdigest(&a, text_a);
    sha256_hexdigest(&b, text_b);
    return Py_BuildValue("(ss)", text_a, text_b);
}

static PyObject *sha256_py(PyObject *module, PyObject *arg) {
    (void)module;
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) != 0) {
        return NULL;
    }
    sha256_ctx ctx;
    char text[72];
    sha256_init(&ctx);
    sha256_update(&ctx, data.buf, (size_t)data.len);
    sha256_hexdigest(&ctx, text);
    PyBuffer_Release(&data);
    return PyUnicode_FromString(text);
}

static PyObject *format_mod_time_py(PyObject *module, PyObject *args) {
    (void)module;
    long long seconds, nanos;
    if (!PyArg_ParseTuple(args, "LL", &seconds, &nanos)) {
        return NULL;
    }
    if (nanos <= -1000000000 || nanos >= 1000000000) {
        PyErr_SetString(PyExc_ValueError, "nanos must be within one second");
        return NULL;
    }
    char text[48];
    size_t len = format_mod_time(seconds, nanos, text);
    return PyUnicode_FromStringAndSize(text, (Py_ssize_t)len);
}

static PyObject *use_zlib_ng(PyObject *Py_UNUSED(module), PyObject *arg) {
    if (zng.ready) {
        Py_RETURN_TRUE;
    }
    PyObject *path = NULL;
    if (!PyUnicode_FSConverter(arg, &path)) {
        return NULL;
    }
    /* The zlib-ng wheel's extension module exports zlib-ng's native API; it is normally loaded
     * already (then this only counts a reference). RTLD_LOCAL: its symbols stay out of the way. */
    void *lib = dlopen(PyBytes_AS_STRING(path), RTLD_NOW | RTLD_LOCAL);
    Py_DECREF(path);
    if (lib == NULL) {
        Py_RETURN_FALSE;
    }
    inflate_init2_fn init2 = (inflate_init2_fn)dlsym(lib, "zng_inflateInit2");
    inflate_fn inflate = (inflate_fn)dlsym(lib, "zng_inflate");
    inflate_reset2_fn reset2 = (inflate_reset2_fn)dlsym(lib, "zng_inflateReset2");
    inflate_end_fn end = (inflate_end_fn)dlsym(lib, "zng_inflateEnd");
    if (init2 == NULL || inflate == NULL || reset2 == NULL || end == NULL) {
        dlclose(lib);
        Py_RETURN_FALSE;
    }
    zng.init2 = init2;
    zng.inflate = inflate;
    zng.reset2 = reset2;
    zng.end = end;
    zng.ready = 1;
    Py_RETURN_TRUE;
}

static PyMethodDef module_methods[] = {
    {"use_zlib_ng", use_zlib_ng, METH_O,
     "use_zlib_ng(path) -> bool: find zlib-ng's native inflate in the library at `path` (the zlib-ng wheel's "
     "module); True once gzip Builders can be made without a stream from Python."},
    {"set_entry_type", set_entry_type, METH_O, "The tuple subclass TOC entries are made as (FileMetadata)."},
    {"sha256_backend", sha256_backend_py, METH_NOARGS, "'sha-ni-avx512', 'sha-ni', 'libcrypto' or 'portable'."},
    {"use_sha256_backend", use_sha256_backend, METH_O,
     "Force a SHA-256 backend by name, or None for the automatic choice (tests)."},
    {"sha256", sha256_py, METH_O, "sha256(data) -> 'sha256:<hex>' through the hashing thread's code."},
    {"sha256_chunks", sha256_chunks_py, METH_O, "sha256_chunks([data, ...]): one update per chunk (tests)."},
    {"sha256_pair", sha256_pair_py, METH_VARARGS,
     "sha256_pair(prefix_a, prefix_b, chunks) -> two digests: each context gets its prefix alone, "
     "then every chunk through the pair update (tests)."},
    {"format_mod_time", format_mod_time_py, METH_VARARGS, "format_mod_time(seconds, nanos) as the TOC stores it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_engine", "The native half of the ztoc builder (see Builder).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__engine(void) {
    if (PyType_Ready(&TocStoreType) < 0 || PyType_Ready(&TocPlanType) < 0 || PyType_Ready(&BuilderType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "TocStore", (PyObject *)&TocStoreType) < 0 ||
        PyModule_AddObjectRef(module, "TocPlan", (PyObject *)&TocPlanType) < 0 ||
        PyModule_AddObjectRef(module, "Builder", (PyObject *)&BuilderType) < 0 ||
        PyModule_AddIntConstant(module, "FEED_OK", FEED_OK) < 0 ||
        PyModule_AddIntConstant(module, "FEED_INFLATE_FAILED", FEED_INFLATE_FAILED) < 0 ||
        PyModule_AddIntConstant(module, "FEED_TAR_FAILED", FEED_TAR_FAILED) < 0 ||
        PyModule_AddIntConstant(module, "WINDOW_SIZE", WINDOW_SIZE) < 0 ||
        PyModule_AddIntConstant(module, "OUTPUT_AREA", OUTPUT_AREA) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
