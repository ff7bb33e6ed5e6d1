/* codestore: content-addressed store of deployment packages (zips).
 *
 * DESIGN: every zip is stored once under <root>/code/<sha256-hex>.zip and
 * extracted once with libzip into <root>/code/<sha256-hex>/ (executable bits
 * preserved). Extraction goes to a temporary sibling directory that is
 * renamed into place only when the whole archive was accepted, so a refused
 * or interrupted upload leaves nothing behind. Refused: archives libzip
 * cannot read, entries that escape the directory ("../", absolute paths,
 * symlinks whose target leaves the directory), and archives whose
 * uncompressed total exceeds the limit (250 MB, as AWS).
 *
 * Thread rules: all functions may be called from any thread; concurrent
 * puts of the same zip are safe (the loser of the rename race reuses the
 * winner's directory). Calls do disk I/O: never call them inside an RCU
 * read-side section or while holding a lock a civetweb thread waits on. */
#ifndef LAMBDAD_RUNTIME_CODESTORE_H
#define LAMBDAD_RUNTIME_CODESTORE_H

#include <stddef.h>
#include <stdint.h>

#define CODESTORE_MAX_UNZIPPED (250ull * 1024 * 1024) /* 262144000 bytes, as AWS */

/* AWS's messages, constant strings (compare by pointer). */
extern const char CODESTORE_ERR_UNZIP[];   /* "Could not unzip uploaded file. Please check your file, then try to upload again." */
extern const char CODESTORE_ERR_TOO_BIG[]; /* "Unzipped size must be smaller than 262144000 bytes" */
extern const char CODESTORE_ERR_IO[];      /* internal storage failure */

struct codestore;

struct code_info {
    char sha256_b64[45];  /* base64 (standard, padded) of the raw digest: CodeSha256 */
    char sha256_hex[65];  /* lower-case hex: the storage key */
    uint64_t size;        /* zip length in bytes: CodeSize */
    uint64_t unzipped;    /* total uncompressed size */
};

/* Opens (creating if needed) a store rooted at root. Returns 0 or -errno. */
int codestore_open(struct codestore **out, const char *root);

/* Closes the store handle (does not delete anything on disk). NULL-safe. */
void codestore_close(struct codestore *cs);

/* Stores and extracts zip bytes. On success returns 0 and fills *info.
 * On a refused archive returns -EINVAL and sets *err to one of the
 * CODESTORE_ERR_* strings; on I/O failure returns -errno and sets *err to
 * CODESTORE_ERR_IO. Idempotent: storing the same bytes again is cheap. */
int codestore_put(struct codestore *cs, const void *zip, size_t len, struct code_info *info,
                  const char **err);

/* Same as codestore_put for a zip held in the file at path (e.g. an S3
 * object): hashed, checked and copied in bounded chunks, never read whole
 * into memory. The file is only read. */
int codestore_put_file(struct codestore *cs, const char *path, struct code_info *info, const char **err);

/* Returns a malloc'd path of the stored zip / the extracted directory for a
 * sha256 hex key (caller frees), or NULL if the key is not stored. */
char *codestore_zip_path(struct codestore *cs, const char *sha256_hex);
char *codestore_dir_path(struct codestore *cs, const char *sha256_hex);

/* Removes the zip and its extracted directory. Returns 0 or -errno
 * (-ENOENT when absent). The caller decides that no function uses it; while
 * the directory is pinned (below) the removal is deferred to the last
 * unpin and 0 is returned. */
int codestore_remove(struct codestore *cs, const char *sha256_hex);

/* Pins: an extracted directory (a path returned by codestore_dir_path) in
 * use by something that outlives the registry's own record of it — a
 * function spec held by a starting or running environment after the
 * function was updated or deleted. A pinned directory is never removed; a
 * removal requested meanwhile happens at the last unpin, on the
 * background FS thread (runtime/bio.h); storing the same bytes again
 * cancels it. Pins are counted. Any thread; NULL or "" is ignored. The
 * store must outlive its pins (lambdad stops the pool first). */
void codestore_pin(const char *dir);
void codestore_unpin(const char *dir);

/* Converts a base64 CodeSha256 into the hex storage key. out has 65 bytes.
 * Returns 0 or -EINVAL. */
int codestore_b64_to_hex(const char *b64, char out[65]);

/* For tests: lowers (or restores) the uncompressed-size limit that
 * codestore_put enforces; the default is CODESTORE_MAX_UNZIPPED. The refusal
 * message stays CODESTORE_ERR_TOO_BIG. Process-wide, atomic, any thread. */
void codestore_set_max_unzipped(uint64_t limit);

#endif
