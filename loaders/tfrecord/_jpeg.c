/* Partial JPEG decoding with libjpeg(-turbo), as TensorFlow's decode_and_crop_jpeg does it:
 * loaders.tfrecord.images' fast path for crops.
 *
 * decode(data, y, x, h, w, denominator, channels, fast, context) decodes only the crop window of the JPEG
 * in data (a bytes-like object): the image is scaled by 1/denominator (1, 2, 4 or 8: libjpeg's DCT
 * scaling) and the window [y, y + h) x [x, x + w) is in the scaled image's pixels. The rows above
 * the window are skipped (jpeg_skip_scanlines), decoding stops after its last row, and only the
 * iMCU columns that hold it are decoded (jpeg_crop_scanline, which widens the range to iMCU
 * boundaries; the extra columns are dropped here). It returns a bytearray of h * w * channels
 * bytes, rows of pixels (HWC), RGB for channels=3 (CMYK images converted as Adobe's inverted
 * CMYK, as TensorFlow and torchvision do), luminance for channels=1. fast picks libjpeg's fast
 * integer IDCT (TensorFlow's default) over the accurate one (torchvision's). Like TensorFlow's,
 * the window's edge columns can differ by a few levels from a whole-image decode's where chroma is
 * subsampled: libjpeg's fancy upsampler sees no samples past the decoded columns. context decodes
 * one pixel more on each side (where the image has one), which makes the window's pixels those of
 * a whole-image decode (torchvision's decode_jpeg) at the same scale. The GIL is released
 * while decoding. Every failure (not a JPEG, corrupt or truncated data, a window outside the
 * image) raises ValueError with libjpeg's message; libjpeg's errors never exit().
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>

struct error_manager {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

static void on_error(j_common_ptr cinfo)
{
    struct error_manager *err = (struct error_manager *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->jump, 1);
}

/* Warnings are ignored as libjpeg ignores them, except data that ends early: the decoder would fill
 * the rest with gray, and that is an error here (as in TensorFlow without try_recover_truncated). */
static void on_message(j_common_ptr cinfo, int level)
{
    if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF)
        on_error(cinfo);
}

/* Adobe's inverted CMYK to RGB, count pixels, in place (out trails in). */
static void cmyk_to_rgb(unsigned char *pixels, JDIMENSION count)
{
    for (JDIMENSION i = 0; i < count; i++) {
        int c = pixels[4 * i], m = pixels[4 * i + 1], y = pixels[4 * i + 2], k = pixels[4 * i + 3];
        pixels[3 * i] = (unsigned char)(c * k / 255);
        pixels[3 * i + 1] = (unsigned char)(m * k / 255);
        pixels[3 * i + 2] = (unsigned char)(y * k / 255);
    }
}

static PyObject *decode(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t y, x, h, w;
    int denominator, channels, fast, context;
    if (!PyArg_ParseTuple(args, "y*nnnniipp", &view, &y, &x, &h, &w, &denominator, &channels, &fast, &context))
        return NULL;
    if (channels != 1 && channels != 3) {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError, "channels must be 1 or 3, not %d", channels);
    }
    if (denominator != 1 && denominator != 2 && denominator != 4 && denominator != 8) {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError, "the scale must be 1/1, 1/2, 1/4 or 1/8, not 1/%d", denominator);
    }
    struct jpeg_decompress_struct cinfo;
    struct error_manager err;
    PyObject *volatile out = NULL;
    unsigned char *volatile row = NULL;
    PyThreadState *volatile released = NULL;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error;
    err.pub.emit_message = on_message;
    jpeg_create_decompress(&cinfo);
    if (setjmp(err.jump)) {
        if (released)
            PyEval_RestoreThread(released);
        jpeg_destroy_decompress(&cinfo);
        free(row);
        Py_XDECREF(out);
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError, "not a decodable JPEG: %s", err.message);
    }
    jpeg_mem_src(&cinfo, view.buf, (unsigned long)view.len);
    jpeg_read_header(&cinfo, TRUE);
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    if (cmyk && channels == 1) {
        jpeg_destroy_decompress(&cinfo);
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError, "a CMYK JPEG decodes to RGB only (channels=3), not channels=1");
    }
    cinfo.out_color_space = cmyk ? JCS_CMYK : channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
    cinfo.dct_method = fast ? JDCT_IFAST : JDCT_ISLOW;
    cinfo.scale_num = 1;
    cinfo.scale_denom = (unsigned int)denominator;
    jpeg_calc_output_dimensions(&cinfo);
    if (h <= 0 || w <= 0 || y < 0 || x < 0 || y + h > (Py_ssize_t)cinfo.output_height ||
        x + w > (Py_ssize_t)cinfo.output_width) {
        PyErr_Format(PyExc_ValueError,
                     "the crop window (y=%zd, x=%zd, height=%zd, width=%zd) is not inside the %ux%u image "
                     "(height x width)", y, x, h, w, cinfo.output_height, cinfo.output_width);
        jpeg_destroy_decompress(&cinfo);
        PyBuffer_Release(&view);
        return NULL;
    }
    out = PyByteArray_FromStringAndSize(NULL, h * w * channels);
    if (out == NULL) {
        jpeg_destroy_decompress(&cinfo);
        PyBuffer_Release(&view);
        return NULL;
    }
    unsigned char *pixels = (unsigned char *)PyByteArray_AS_STRING(out);
    released = PyEval_SaveThread();
    jpeg_start_decompress(&cinfo);
    JDIMENSION first = (JDIMENSION)x, width = (JDIMENSION)w;
    if (context) { /* a pixel more each side, where there is one, for the upsampler */
        first = x > 0 ? (JDIMENSION)x - 1 : 0;
        width = (JDIMENSION)(x + w < (Py_ssize_t)cinfo.output_width ? x + w + 1 : x + w) - first;
    }
    if (width != cinfo.output_width)
        jpeg_crop_scanline(&cinfo, &first, &width); /* first moves left to an iMCU boundary */
    size_t skip = (size_t)x - first, stride = (size_t)cinfo.output_width * cinfo.output_components;
    int direct = !cmyk && skip == 0 && width == (JDIMENSION)w;
    if (!direct) {
        row = malloc(stride);
        if (row == NULL) {
            PyEval_RestoreThread(released);
            jpeg_destroy_decompress(&cinfo);
            Py_DECREF(out);
            PyBuffer_Release(&view);
            return PyErr_NoMemory();
        }
    }
    if (y > 0 && jpeg_skip_scanlines(&cinfo, (JDIMENSION)y) != (JDIMENSION)y)
        ERREXIT(&cinfo, JERR_INPUT_EOF);
    for (Py_ssize_t i = 0; i < h; i++) {
        unsigned char *target = pixels + (size_t)i * w * channels;
        JSAMPROW line = direct ? target : row;
        if (jpeg_read_scanlines(&cinfo, &line, 1) != 1)
            ERREXIT(&cinfo, JERR_INPUT_EOF);
        if (direct)
            continue;
        if (cmyk) {
            cmyk_to_rgb(row + skip * 4, (JDIMENSION)w);
            memcpy(target, row + skip * 4, (size_t)w * 3);
        } else {
            memcpy(target, row + skip * channels, (size_t)w * channels);
        }
    }
    PyEval_RestoreThread(released);
    released = NULL;
    jpeg_destroy_decompress(&cinfo); /* the rows below the window stay undecoded */
    free(row);
    PyBuffer_Release(&view);
    return out;
}

/* One row of RGB pixels into its three planes (columns reversed when flip), written so that the
 * compiler vectorizes it: on x86-64 once for AVX2, once for SSSE3 (the shuffles a stride-3 load
 * needs) and once for the baseline, the CPU's best picked at load time. */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
__attribute__((target_clones("avx2", "ssse3", "default")))
#endif
#endif
static void planar_row(const unsigned char *restrict row, unsigned char *restrict r, unsigned char *restrict g,
                       unsigned char *restrict b, size_t w, int flip)
{
    /* size_t indices: under Python's -fwrapv an int index may wrap, which keeps the loops scalar */
    if (flip) {
        for (size_t j = 0; j < w; j++) {
            r[w - 1 - j] = row[3 * j];
            g[w - 1 - j] = row[3 * j + 1];
            b[w - 1 - j] = row[3 * j + 2];
        }
    } else {
        for (size_t j = 0; j < w; j++) {
            r[j] = row[3 * j];
            g[j] = row[3 * j + 1];
            b[j] = row[3 * j + 2];
        }
    }
}

/* planar(src, dst, height, width, flip): the RGB pixels (HWC) in src written to dst as three
 * channel planes (CHW), each row's columns reversed when flip: one vectorized pass, 5-10x
 * torch's .contiguous() of a channels-last uint8 tensor (a strided copy, a byte at a time). */
static PyObject *planar(PyObject *self, PyObject *args)
{
    Py_buffer src, dst;
    Py_ssize_t h, w;
    int flip;
    if (!PyArg_ParseTuple(args, "y*w*nnp", &src, &dst, &h, &w, &flip))
        return NULL;
    if (h < 0 || w < 0 || src.len < h * w * 3 || dst.len < h * w * 3) {
        PyBuffer_Release(&src);
        PyBuffer_Release(&dst);
        return PyErr_Format(PyExc_ValueError, "planar: buffers of %zd and %zd bytes for %zd x %zd RGB pixels",
                            src.len, dst.len, h, w);
    }
    const unsigned char *in = src.buf;
    unsigned char *out = dst.buf;
    size_t plane = (size_t)h * (size_t)w;
    Py_BEGIN_ALLOW_THREADS
    for (size_t i = 0; i < (size_t)h; i++) {
        unsigned char *first = out + i * (size_t)w;
        planar_row(in + i * (size_t)w * 3, first, first + plane, first + 2 * plane, (size_t)w, flip);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"planar", planar, METH_VARARGS,
     "planar(src, dst, height, width, flip) -> None: RGB pixels (HWC) of src into the CHW planes of dst, "
     "columns reversed when flip."},
    {"decode", decode, METH_VARARGS,
     "decode(data, y, x, h, w, denominator, channels, fast, context) -> bytearray: the HWC pixels of a JPEG's crop "
     "window, the image scaled by 1/denominator."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jpeg", "Partial JPEG decoding (crop windows) with libjpeg.",
                                    -1, methods};

PyMODINIT_FUNC PyInit__jpeg(void)
{
    return PyModule_Create(&module);
}
