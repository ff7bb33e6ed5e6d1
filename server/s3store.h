/* s3store: lambdad's S3 state: buckets, object versions, multipart
 * uploads, and the content-addressed blobs holding object data.
 *
 * DESIGN: <root>/s3/ holds
 *   blobs/<sha256-hex>          object data, one file per distinct content
 *   buckets/<bucket>.json       a bucket (owner, region, versioning, date)
 *   meta/<bucket>/<sha256(key)>.json   one key: {"key", "versions": [...]}
 *   uploads/<id>/upload.json + <part>-<md5hex>   multipart uploads
 *   tmp/                        data being received
 * Data is streamed into tmp/ while MD5 and SHA-256 are computed, fsync'd
 * there (no lock held), then renamed into blobs/ (dropped when that content
 * is already stored) and the directory fsync'd, then the key's document is
 * written with temp+fsync+rename+fsync(dir): a version is acknowledged only
 * once both its data and its metadata are durable. Keys are data, never
 * paths: a key only ever becomes the SHA-256 of its bytes in a file name,
 * so "../" in a key cannot escape anything. At open, torn temp files and
 * blobs no document references (a crash between the two renames) are
 * removed. Memory holds the index: per bucket a sorted array of keys, each
 * with its versions (newest last) and their headers; blob reference counts.
 *
 * Thread rules: one mutex guards the index and serialises metadata writes;
 * data streaming (the long part) happens outside it. Any thread; calls do
 * disk I/O, never call them inside an RCU read-side section. */
#ifndef LAMBDAD_SERVER_S3STORE_H
#define LAMBDAD_SERVER_S3STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define S3_MAX_OBJECT_SIZE (5ull << 30)  /* 5 GiB: PutObject and UploadPart limit */
#define S3_MIN_PART_SIZE (5ull << 20)    /* 5 MiB: every part but the last */
#define S3_MAX_PARTS 10000

enum s3_status {
    S3_OK = 0,
    S3_ENOBUCKET = -1000,  /* NoSuchBucket */
    S3_ENOKEY,             /* NoSuchKey */
    S3_ENOVERSION,         /* NoSuchVersion */
    S3_EMARKER,            /* the version asked for is a delete marker */
    S3_EEXISTS,            /* BucketAlreadyExists (another account) */
    S3_EOWNED,             /* BucketAlreadyOwnedByYou */
    S3_ENOTEMPTY,          /* BucketNotEmpty */
    S3_ENOUPLOAD,          /* NoSuchUpload */
    S3_EPART,              /* InvalidPart */
    S3_EPARTORDER,         /* InvalidPartOrder */
    S3_ETOOSMALL,          /* EntityTooSmall */
    S3_EIO,                /* internal: disk */
    S3_ENOMEM,
};

enum s3_versioning { S3_VERSIONING_OFF = 0, S3_VERSIONING_ENABLED, S3_VERSIONING_SUSPENDED };

struct s3_bucket_info {
    char name[64];
    char account[13];
    char region[32];
    int64_t created_ms;
    enum s3_versioning versioning;
};

/* One version of an object as handed to callers (copies; headers is a new
 * reference the caller releases with s3_version_release). */
struct s3_version {
    char vid[40];          /* "null" for unversioned writes */
    bool delete_marker;
    bool latest;
    char sha[65];
    uint64_t size;
    char etag[80];         /* without quotes: md5 hex, or md5 hex "-N" */
    int64_t mtime_ms;
    json_t *headers;       /* {"Content-Type": ..., "x-amz-meta-a": ...} */
};

void s3_version_release(struct s3_version *v);

/* Opens (creating) <root>/s3 and loads it. Returns 0 or -errno. Main
 * thread, before the HTTP front starts. */
int s3store_open(const char *root);
void s3store_close(void);

/* --- buckets --- */
int s3store_create_bucket(const char *name, const char *account, const char *region);
int s3store_delete_bucket(const char *name);
int s3store_bucket(const char *name, struct s3_bucket_info *out);
/* The account's buckets in name order (caller frees *out). */
int s3store_list_buckets(const char *account, struct s3_bucket_info **out, size_t *n);
int s3store_set_versioning(const char *name, enum s3_versioning v);

/* --- data being received --- */
struct s3_blob {
    int fd;
    char *tmp;             /* temp path, owned */
    uint64_t size;
    void *md5, *sha256;    /* EVP_MD_CTX */
    unsigned char md5_raw[16];
    char md5_hex[33];
    char sha_hex[65];
    bool sealed;
};

int s3store_blob_begin(struct s3_blob *b);
int s3store_blob_write(struct s3_blob *b, const void *data, size_t len);
/* Finishes the digests and fsyncs the data (no lock held). */
int s3store_blob_seal(struct s3_blob *b);
/* Removes the temp file (if still there) and frees b's resources. */
void s3store_blob_free(struct s3_blob *b);

/* --- objects --- */

/* Looks up key (vid NULL: the latest version). S3_ENOKEY when the key has
 * no version or (vid NULL) its latest is a delete marker, which then still
 * fills out (delete_marker set); S3_EMARKER when vid names a marker. With
 * fd non-NULL the version's data is opened under the lock (so a concurrent
 * delete cannot remove it first); the caller closes *fd. */
int s3store_get(const char *bucket, const char *key, const char *vid, struct s3_version *out, int *fd);

/* Like s3store_get, and hard-links the version's data to a private temp
 * file *path (malloc'd; the caller unlinks and frees it), which stays valid
 * whatever happens to the object meanwhile. */
int s3store_get_file(const char *bucket, const char *key, const char *vid, struct s3_version *out, char **path);

/* Stores a new version of key: the data of sealed blob b, or (b NULL) the
 * already-stored content src->sha/size/etag (CopyObject). headers is
 * borrowed (copied). out gets the version written. */
int s3store_put(const char *bucket, const char *key, struct s3_blob *b, const struct s3_version *src,
                json_t *headers, struct s3_version *out);

/* DeleteObject: without vid, removes the null version (versioning off) or
 * adds a delete marker (out->delete_marker, out->vid); with vid, removes
 * that version for good (out describes it). A missing key is not an error. */
int s3store_delete(const char *bucket, const char *key, const char *vid, struct s3_version *out, bool *found);

/* Calls fn for each key >= from (in order) starting with prefix, with its
 * versions (newest first) when all_versions, else with its latest version
 * only when that is not a delete marker. fn returns 0 to go on, 1 to stop.
 * Runs under the store lock: fn must not call back into the store. */
typedef int (*s3_list_fn)(void *ud, const char *key, const struct s3_version *v);
int s3store_list(const char *bucket, const char *from, const char *prefix, bool all_versions, s3_list_fn fn,
                 void *ud);

/* --- multipart uploads --- */
struct s3_part {
    int number;
    uint64_t size;
    char md5_hex[33];
    int64_t mtime_ms;
};

int s3store_mpu_create(const char *bucket, const char *key, json_t *headers, char upload_id[65]);
/* Stores sealed blob b as part number of the upload. */
int s3store_mpu_put_part(const char *bucket, const char *key, const char *upload_id, int number,
                         struct s3_blob *b);
/* The upload's parts in number order (caller frees *parts). */
int s3store_mpu_parts(const char *bucket, const char *key, const char *upload_id, struct s3_part **parts,
                      size_t *n, int64_t *initiated_ms);
/* Assembles the listed parts (numbers ascending, ETags = md5 hex) into the
 * object. *bad gets the index of the offending part for S3_EPART /
 * S3_EPARTORDER / S3_ETOOSMALL. */
int s3store_mpu_complete(const char *bucket, const char *key, const char *upload_id, const struct s3_part *want,
                         size_t n, struct s3_version *out, size_t *bad);
int s3store_mpu_abort(const char *bucket, const char *key, const char *upload_id);

struct s3_upload_info {
    char id[65];
    char *key; /* malloc'd */
    int64_t initiated_ms;
};

/* The bucket's uploads whose key starts with prefix (NULL: all), sorted by
 * key then initiation time. Free with s3store_mpu_list_free. */
int s3store_mpu_list(const char *bucket, const char *prefix, struct s3_upload_info **out, size_t *n);
void s3store_mpu_list_free(struct s3_upload_info *list, size_t n);

#endif
