/* _lambdad_fast: the one part of the bundled Python bootstrap's per-invoke
 * path that costs far more in Python than in C: putting _X_AMZN_TRACE_ID
 * into the C environ (lambdad_bootstrap._TraceEnv documents why it is done
 * with two buffers and putenv rather than setenv). Through ctypes the call
 * took ~5 us of the runtime's ~23 us per warm invoke on a 2-vCPU VM; here it
 * is a memcpy and a putenv.
 *
 * Built with the stable ABI (Py_LIMITED_API 3.9) so one .so serves every
 * python3.9+ interpreter, and without lambdad's sanitizer flags (it is
 * loaded into the host's python3, not into lambdad). lambdad passes its path
 * to the zygote (runtime/zygote.c), which loads it before forking
 * environments; without it the bootstrap does the same through ctypes. */
#define Py_LIMITED_API 0x03090000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <string.h>

#define TRACE_KEY "_X_AMZN_TRACE_ID="
#define TRACE_CAP 1024 /* value bytes, NUL excluded; longer values take os.environ */

/* Allocated once, never freed: the C environ may point into either for the
 * rest of the process's life (exit included). */
static char *g_buf[2];
static int g_which;

/* set_trace(value: bytes) -> bool. True: environ's _X_AMZN_TRACE_ID is now
 * value. False: not set (too long, a NUL byte, no memory, putenv failed);
 * the caller falls back to os.environ. */
static PyObject *set_trace(PyObject *self, PyObject *arg)
{
    (void)self;
    char *v;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(arg, &v, &n) < 0)
        return NULL;
    const size_t klen = sizeof(TRACE_KEY) - 1;
    if (n >= TRACE_CAP || memchr(v, 0, (size_t)n))
        Py_RETURN_FALSE;
    if (!g_buf[0]) {
        char *a = malloc(klen + TRACE_CAP + 1), *b = malloc(klen + TRACE_CAP + 1);
        if (!a || !b) {
            free(a);
            free(b);
            Py_RETURN_FALSE;
        }
        memcpy(a, TRACE_KEY, klen);
        memcpy(b, TRACE_KEY, klen);
        g_buf[0] = a;
        g_buf[1] = b;
    }
    /* The buffer not in environ now: a thread reading the current value
     * never sees it rewritten under it by this call. */
    g_which ^= 1;
    char *buf = g_buf[g_which];
    memcpy(buf + klen, v, (size_t)n);
    buf[klen + (size_t)n] = '\0';
    if (putenv(buf) != 0)
        Py_RETURN_FALSE;
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"set_trace", set_trace, METH_O, "Sets _X_AMZN_TRACE_ID in the C environ (bytes value)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_lambdad_fast", "lambdad bootstrap speed-ups", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__lambdad_fast(void);

PyMODINIT_FUNC PyInit__lambdad_fast(void)
{
    return PyModule_Create(&module);
}
