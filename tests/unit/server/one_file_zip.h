/* A one-file zip built in memory with libzip, for the server unit tests
 * (test_layers, test_coderefs). The caller frees it. */
#ifndef LAMBDAD_TEST_ONE_FILE_ZIP_H
#define LAMBDAD_TEST_ONE_FILE_ZIP_H
#include <stdlib.h>
#include <string.h>
#include <zip.h>

static void *make_zip(const char *name, const char *content, size_t *len)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &ze);
    zip_source_keep(src);
    zip_t *z = zip_open_from_source(src, ZIP_TRUNCATE, &ze);
    zip_source_t *f = zip_source_buffer(z, content, strlen(content), 0);
    zip_file_add(z, name, f, ZIP_FL_OVERWRITE);
    zip_close(z);
    zip_source_open(src);
    zip_source_seek(src, 0, SEEK_END);
    zip_int64_t n = zip_source_tell(src);
    zip_source_seek(src, 0, SEEK_SET);
    void *buf = malloc((size_t)n);
    zip_source_read(src, buf, (zip_uint64_t)n);
    zip_source_close(src);
    zip_source_free(src);
    *len = (size_t)n;
    return buf;
}

#endif
