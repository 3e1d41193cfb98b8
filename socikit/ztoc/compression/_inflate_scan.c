/*
 * The hot loop of ztoc building: inflate(Z_BLOCK) over one input chunk, noting every deflate
 * block boundary where the reference would place a checkpoint (fact sheet §2.2).
 *
 * Python keeps owning the inflate stream (a ctypes zng_stream/z_stream, set up by _zran.py with
 * zlib-ng or the system libz) and passes its address plus the addresses of `inflate` and
 * `inflateReset2` from the same library, so this file needs no zlib headers and works with both.
 * Everything between two Python calls runs without the GIL: one call per input chunk or per full
 * output area instead of one ctypes round trip (and GIL hand-off) per deflate block.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* zlib-ng's native zng_stream; on LP64 the same layout as zlib's z_stream. */
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

enum { Z_OK = 0, Z_STREAM_END = 1, Z_BUF_ERROR = -5, Z_BLOCK = 5 };
enum { WINDOW_SIZE = 32768, WINDOW_BITS_AUTO = 47 };

/* Stop reasons handed back to Python. */
enum { NEED_INPUT = 0, OUTPUT_FULL = 1, FAILED = 2 };

typedef struct {
    unsigned long long in_offset;
    unsigned long long out_offset;
    int bits;
    Py_ssize_t window_end; /* the window is out[window_end - WINDOW_SIZE : window_end] */
} found_checkpoint;

typedef struct {
    found_checkpoint *items;
    size_t count;
    size_t capacity;
} checkpoint_list;

static int checkpoint_list_push(checkpoint_list *list, found_checkpoint item) {
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 8;
        found_checkpoint *grown = realloc(list->items, capacity * sizeof(*grown));
        if (grown == NULL) {
            return -1;
        }
        list->items = grown;
        list->capacity = capacity;
    }
    list->items[list->count++] = item;
    return 0;
}

PyDoc_STRVAR(scan_doc,
"scan(strm, inflate, reset2, chunk, in_pos, out, out_pos, span_size, totin, totout, last, member_ended)\n"
"\n"
"Inflate chunk[in_pos:] into out[out_pos:] with Z_BLOCK until the chunk is used up, `out` is full\n"
"or the data is corrupt. `strm` is the address of an initialised stream, `inflate` and `reset2`\n"
"the addresses of that library's inflate and inflateReset2. out[out_pos - 32768:out_pos] must\n"
"hold the last 32 KiB of output so far. A checkpoint is noted at the end of a non-final block once\n"
"more than span_size bytes were produced since `last` (or at output offset 0).\n"
"\n"
"Returns (stop, ret, in_pos, out_pos, totin, totout, last, member_ended, checkpoints) where stop is\n"
"0 (need input), 1 (out is full) or 2 (failed with zlib code ret), and checkpoints is a list of\n"
"(in_offset, out_offset, bits, window) tuples.");

static PyObject *scan(PyObject *module, PyObject *args) {
    (void)module;
    unsigned long long strm_addr, inflate_addr, reset_addr, span_size, totin, totout, last;
    Py_buffer chunk, out;
    Py_ssize_t in_pos, out_pos;
    int member_ended;
    if (!PyArg_ParseTuple(args, "KKKy*nw*nKKKKp", &strm_addr, &inflate_addr, &reset_addr, &chunk,
                          &in_pos, &out, &out_pos, &span_size, &totin, &totout, &last,
                          &member_ended)) {
        return NULL;
    }
    PyObject *result = NULL;
    checkpoint_list found = {NULL, 0, 0};
    if (in_pos < 0 || in_pos > chunk.len || out_pos < WINDOW_SIZE || out_pos > out.len ||
        chunk.len - in_pos > UINT32_MAX || out.len - out_pos > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "scan: positions outside the buffers");
        goto done;
    }
    inflate_stream *strm = (inflate_stream *)(uintptr_t)strm_addr;
    inflate_fn inflate = (inflate_fn)(uintptr_t)inflate_addr;
    inflate_reset2_fn reset2 = (inflate_reset2_fn)(uintptr_t)reset_addr;
    uint8_t *out_base = (uint8_t *)out.buf;
    int stop = NEED_INPUT, ret = Z_OK, no_memory = 0;

    Py_BEGIN_ALLOW_THREADS
    strm->next_in = (const uint8_t *)chunk.buf + in_pos;
    strm->avail_in = (uint32_t)(chunk.len - in_pos);
    strm->next_out = out_base + out_pos;
    strm->avail_out = (uint32_t)(out.len - out_pos);
    while (strm->avail_in) {
        if (member_ended) {
            /* Concatenated members (pigz -i, cat a.gz b.gz): go on with the next gzip header. */
            ret = reset2(strm, WINDOW_BITS_AUTO);
            if (ret != Z_OK) {
                stop = FAILED;
                break;
            }
            member_ended = 0;
        }
        if (strm->avail_out == 0) {
            stop = OUTPUT_FULL;
            break;
        }
        uint32_t avail_in = strm->avail_in, avail_out = strm->avail_out;
        ret = inflate(strm, Z_BLOCK);
        totin += avail_in - strm->avail_in;
        totout += avail_out - strm->avail_out;
        if (ret == Z_STREAM_END) {
            member_ended = 1;
            ret = Z_OK;
            continue;
        }
        if (ret != Z_OK) {
            if (ret == Z_BUF_ERROR && strm->avail_in == 0) {
                ret = Z_OK;
                break;
            }
            stop = FAILED;
            break;
        }
        int data_type = strm->data_type;
        if ((data_type & 128) && !(data_type & 64) && (totout == 0 || totout - last > span_size)) {
            found_checkpoint cp = {totin, totout, data_type & 7, strm->next_out - out_base};
            if (checkpoint_list_push(&found, cp) != 0) {
                no_memory = 1;
                break;
            }
            last = totout;
        }
    }
    in_pos = (const uint8_t *)strm->next_in - (const uint8_t *)chunk.buf;
    out_pos = strm->next_out - out_base;
    /* The stream must not keep pointers into buffers that Python may free before the next call. */
    strm->next_in = NULL;
    strm->avail_in = 0;
    Py_END_ALLOW_THREADS

    if (no_memory) {
        PyErr_NoMemory();
        goto done;
    }
    PyObject *checkpoints = PyList_New((Py_ssize_t)found.count);
    if (checkpoints == NULL) {
        goto done;
    }
    for (size_t i = 0; i < found.count; i++) {
        found_checkpoint *cp = &found.items[i];
        PyObject *item = Py_BuildValue("KKiy#", cp->in_offset, cp->out_offset, cp->bits,
                                       (const char *)out_base + cp->window_end - WINDOW_SIZE,
                                       (Py_ssize_t)WINDOW_SIZE);
        if (item == NULL) {
            Py_DECREF(checkpoints);
            goto done;
        }
        PyList_SET_ITEM(checkpoints, (Py_ssize_t)i, item);
    }
    result = Py_BuildValue("iinnKKKON", stop, ret, in_pos, out_pos, totin, totout, last,
                           member_ended ? Py_True : Py_False, checkpoints);
done:
    free(found.items);
    PyBuffer_Release(&chunk);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "_inflate_scan",
    "The ztoc builder's inflate loop in C (see scan).",
    -1,
    methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__inflate_scan(void) {
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "NEED_INPUT", NEED_INPUT) < 0 ||
        PyModule_AddIntConstant(module, "OUTPUT_FULL", OUTPUT_FULL) < 0 ||
        PyModule_AddIntConstant(module, "FAILED", FAILED) < 0 ||
        PyModule_AddIntConstant(module, "WINDOW_SIZE", WINDOW_SIZE) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
