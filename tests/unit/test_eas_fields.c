
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * Unit tests for eas_device_fields_check() (eas_request_fields.c): the
 * DeviceId, DeviceType and User a request could carry, as the shared
 * inventory checks the records of other gateways.  Each case is also
 * sent as a request (its fields percent-encoded in a plain query) and
 * the parser must agree, so that the two never drift apart.  Every
 * value is copied into a malloc() block of exactly its size.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eas_proto.h"
#include "../common/eas_test.h"


typedef struct {
    const char  *name;
    const char  *device_id;
    const char  *device_type;
    const char  *user;
    size_t       user_len;        /* 0: strlen(user) */
    int          rc;
} eas_test_fields_t;


static eas_test_fields_t  eas_test_fields[] = {
    { "plain", "ABC123", "iPhone", "jdoe", 0, EAS_OK },
    { "no user", "ABC123", "iPhone", "", 0, EAS_OK },
    { "UTF-8 user", "ABC123", "iPhone", "zo\xc3\xab", 0, EAS_OK },
    { "visible punctuation", "a-b_c.d~!$", "Type:1", "j.doe@example.com",
      0, EAS_OK },
    { "DeviceId control", "AB\x01" "C", "iPhone", "jdoe", 0, EAS_ERROR },
    { "DeviceId space", "AB C", "iPhone", "jdoe", 0, EAS_ERROR },
    { "DeviceId DEL", "AB\x7f", "iPhone", "jdoe", 0, EAS_ERROR },
    { "DeviceId UTF-8", "AB\xc3\xa9", "iPhone", "jdoe", 0, EAS_ERROR },
    { "DeviceId empty", "", "iPhone", "jdoe", 0, EAS_ERROR },
    { "DeviceType control", "ABC", "iP\x1bhone", "jdoe", 0, EAS_ERROR },
    { "DeviceType space", "ABC", "iP hone", "jdoe", 0, EAS_ERROR },
    { "DeviceType high", "ABC", "iP\xffhone", "jdoe", 0, EAS_ERROR },
    { "user control", "ABC", "iPhone", "jd\x01oe", 0, EAS_ERROR },
    { "user DEL", "ABC", "iPhone", "jd\x7foe", 0, EAS_ERROR },
    { "user NUL", "ABC", "iPhone", "jd\0oe", 5, EAS_ERROR },
    { "user not UTF-8", "ABC", "iPhone", "jdoe\xff", 0, EAS_ERROR },
    { "user cut", "ABC", "iPhone", "jdo\xc3", 0, EAS_ERROR },
    { "user overlong", "ABC", "iPhone", "\xc0\xafjdoe", 0, EAS_ERROR },
    { "user surrogate", "ABC", "iPhone", "\xed\xa0\x80", 0, EAS_ERROR },
};


static void eas_test_one(eas_test_fields_t *t, const char *id,
    size_t id_len, const char *type, size_t type_len, const char *user,
    size_t user_len);
static unsigned char *eas_test_copy(const char *s, size_t len);
static size_t eas_test_encode(char *dst, const char *s, size_t len);


int
main(void)
{
    size_t              i;
    char                big[EAS_USER_MAX + 2];
    eas_test_fields_t  *t, len;

    for (i = 0; i < sizeof(eas_test_fields) / sizeof(eas_test_fields[0]);
         i++)
    {
        t = &eas_test_fields[i];

        eas_test_one(t, t->device_id, strlen(t->device_id), t->device_type,
                     strlen(t->device_type), t->user,
                     t->user_len ? t->user_len : strlen(t->user));
    }

    /* the lengths: at the limit, one over */

    memset(big, 'a', sizeof(big));
    memset(&len, 0, sizeof(len));

    len.name = "DeviceId at its limit";
    len.rc = EAS_OK;
    eas_test_one(&len, big, EAS_DEVICE_ID_MAX, "T", 1, "u", 1);

    len.name = "DeviceId over its limit";
    len.rc = EAS_ERROR;
    eas_test_one(&len, big, EAS_DEVICE_ID_MAX + 1, "T", 1, "u", 1);

    len.name = "DeviceType at its limit";
    len.rc = EAS_OK;
    eas_test_one(&len, "D", 1, big, EAS_DEVICE_TYPE_MAX, "u", 1);

    len.name = "DeviceType over its limit";
    len.rc = EAS_ERROR;
    eas_test_one(&len, "D", 1, big, EAS_DEVICE_TYPE_MAX + 1, "u", 1);

    len.name = "user at its limit";
    len.rc = EAS_OK;
    eas_test_one(&len, "D", 1, "T", 1, big, EAS_USER_MAX);

    len.name = "user over its limit";
    len.rc = EAS_ERROR;
    eas_test_one(&len, "D", 1, "T", 1, big, EAS_USER_MAX + 1);

    return eas_test_report("test_eas_fields");
}


/* the check, then the same fields in a request: both must agree */

static void
eas_test_one(eas_test_fields_t *t, const char *id, size_t id_len,
    const char *type, size_t type_len, const char *user, size_t user_len)
{
    int             rc;
    char           *q;
    size_t          n, size;
    eas_str_t       sid, stype, suser;
    eas_input_t     in;
    eas_request_t   req;
    unsigned char  *buf, *cid, *ctype, *cuser;
    char            what[128];

    cid = eas_test_copy(id, id_len);
    ctype = eas_test_copy(type, type_len);
    cuser = eas_test_copy(user, user_len);

    sid.data = cid;
    sid.len = id_len;
    stype.data = ctype;
    stype.len = type_len;
    suser.data = cuser;
    suser.len = user_len;

    rc = eas_device_fields_check(&sid, &stype, &suser);

    snprintf(what, sizeof(what), "eas_device_fields_check() %s",
             t->rc == EAS_OK ? "refused it" : "took it");
    eas_test_check(rc == t->rc, t->name, what);

    /* a request: "Cmd=Sync&User=..&DeviceId=..&DeviceType=.." */

    q = malloc(64 + 3 * (id_len + type_len + user_len));
    if (q == NULL) {
        fprintf(stderr, "test_eas_fields: out of memory\n");
        exit(2);
    }

    n = (size_t) sprintf(q, "Cmd=Sync&User=");
    n += eas_test_encode(q + n, user, user_len);
    n += (size_t) sprintf(q + n, "&DeviceId=");
    n += eas_test_encode(q + n, id, id_len);
    n += (size_t) sprintf(q + n, "&DeviceType=");
    n += eas_test_encode(q + n, type, type_len);

    memset(&in, 0, sizeof(in));
    in.query.data = (unsigned char *) q;
    in.query.len = n;
    in.version.data = (const unsigned char *) "14.1";
    in.version.len = 4;
    in.has_version = 1;

    size = eas_request_buffer_size(n);
    buf = malloc(size);
    if (buf == NULL) {
        fprintf(stderr, "test_eas_fields: out of memory\n");
        exit(2);
    }

    rc = eas_request_parse(&in, &req, buf, size);

    snprintf(what, sizeof(what), "the parser %s the request",
             t->rc == EAS_OK ? "refused" : "took");
    eas_test_check((rc == EAS_OK) == (t->rc == EAS_OK), t->name, what);

    free(buf);
    free(q);
    free(cid);
    free(ctype);
    free(cuser);
}


static unsigned char *
eas_test_copy(const char *s, size_t len)
{
    unsigned char  *p;

    p = malloc(len ? len : 1);
    if (p == NULL) {
        fprintf(stderr, "test_eas_fields: out of memory\n");
        exit(2);
    }

    memcpy(p, s, len);

    return p;
}


/* every byte as "%XX": the parser decodes what the check is given */

static size_t
eas_test_encode(char *dst, const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        sprintf(dst + 3 * i, "%%%02X", (unsigned char) s[i]);
    }

    return 3 * len;
}
