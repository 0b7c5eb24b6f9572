/* The TFRecord framing loop in C: loaders.tfrecord.format's fast path for uncompressed files.
 *
 * frame(buffer, end, crc, base) walks the records from the start of buffer that end by end, and
 * returns (offsets, records, pos): the stream offsets (base + position in buffer) and data
 * (bytes) of the good records and where it stopped. With crc (a CRC32C function, crc32c.crc32c) both
 * masked CRCs are checked: the length's here, by table, the data's by crc, which is faster than
 * any loop written here; crc=None checks neither. It stops early, without raising, at anything
 * that is not a good whole record (a bad CRC, a length past end, a partial record): the Python
 * loop then reads from there and raises the error naming the file and offset, so the messages
 * and the rules for the unusual cases live in one place.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define HEADER_SIZE 12
#define FOOTER_SIZE 4
#define MASK_DELTA 0xA282EAD8u

static uint32_t table[256]; /* CRC32C (Castagnoli, reflected polynomial 0x82F63B78) by byte */

static uint32_t mask(uint32_t crc)
{
    return ((crc >> 15) | (crc << 17)) + MASK_DELTA;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int length_ok(const unsigned char *head)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (int i = 0; i < 8; i++)
        crc = table[(crc ^ head[i]) & 0xFF] ^ (crc >> 8);
    return mask(~crc) == le32(head + 8);
}

/* 1 when crc(record) masked is stored, 0 when not, -1 with an exception set. */
static int data_ok(PyObject *crc, PyObject *record, uint32_t stored)
{
    PyObject *value = PyObject_CallOneArg(crc, record);
    if (value == NULL)
        return -1;
    unsigned long computed = PyLong_AsUnsignedLong(value);
    Py_DECREF(value);
    if (computed == (unsigned long)-1 && PyErr_Occurred())
        return -1;
    return mask((uint32_t)computed) == stored;
}

static PyObject *frame(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos = 0, end;
    long long base;
    PyObject *crc;
    if (!PyArg_ParseTuple(args, "y*nOL", &view, &end, &crc, &base))
        return NULL;
    if (end < 0 || end > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "frame: need 0 <= end <= len(buffer)");
        return NULL;
    }
    int verify = crc != Py_None;
    const unsigned char *buf = view.buf;
    PyObject *offsets = PyList_New(0), *records = PyList_New(0);
    if (offsets == NULL || records == NULL)
        goto fail;
    while (end - pos >= HEADER_SIZE) {
        const unsigned char *head = buf + pos;
        uint64_t length = 0;
        for (int i = 7; i >= 0; i--)
            length = (length << 8) | head[i];
        if ((verify && !length_ok(head)) || end - pos < HEADER_SIZE + FOOTER_SIZE ||
            length > (uint64_t)(end - pos - HEADER_SIZE - FOOTER_SIZE))
            break;
        const unsigned char *data = head + HEADER_SIZE;
        PyObject *record = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)length);
        if (record == NULL)
            goto fail;
        int good = verify ? data_ok(crc, record, le32(data + length)) : 1;
        PyObject *offset = good == 1 ? PyLong_FromLongLong(base + pos) : NULL;
        int failed = good == 1 && (offset == NULL || PyList_Append(offsets, offset) || PyList_Append(records, record));
        Py_XDECREF(offset);
        Py_DECREF(record);
        if (good < 0 || failed)
            goto fail;
        if (!good)
            break;
        pos += HEADER_SIZE + (Py_ssize_t)length + FOOTER_SIZE;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(NNn)", offsets, records, pos);
fail:
    Py_XDECREF(offsets);
    Py_XDECREF(records);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"frame", frame, METH_VARARGS,
     "frame(buffer, end, crc, base) -> (offsets, records, pos): the good whole records in "
     "buffer[:end]; stops at the first thing that is not one."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_framing", "TFRecord framing in C.", -1, methods};

PyMODINIT_FUNC PyInit__framing(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[n] = c;
    }
    return PyModule_Create(&module);
}
