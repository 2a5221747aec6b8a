#!/usr/bin/python3
"""Write the fuzzing seeds for fuzz_eas_request into corpus/request/.

The seeds are the inputs of the eas_tests[] table in
tests/unit/test_eas_request.c (read from the C source, so the two never
drift apart) plus a few hand-written ones.  Each seed is laid out as
fuzz_eas_request.c expects:

    byte 0   flags: 0x01 OPTIONS, 0x02 MS-ASProtocolVersion sent,
             0x04 X-MS-PolicyKey sent, 0x08 MS-ASAcceptMultiPart sent,
             0x10 no query at all
    then     query NUL version NUL policy-key NUL accept-multipart

File names are derived from the case names, so a rerun rewrites the same
files; seeds this script wrote before and no longer writes are removed.
Standard library only; run with /usr/bin/python3 from anywhere.
"""

import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
UNIT = os.path.join(ROOT, 'tests', 'unit', 'test_eas_request.c')
OUT = os.path.join(HERE, 'corpus', 'request')

F_OPTIONS = 0x01
F_VERSION = 0x02
F_POLICY_KEY = 0x04
F_ACCEPT_MULTIPART = 0x08
F_NO_QUERY = 0x10

PREFIXES = ('unit-', 'extra-')

# (name, query or None, version, policy key, accept-multipart, options)
EXTRA = [
    ('plain-itemoperations-accept-multipart',
     b'Cmd=ItemOperations&User=jdoe&DeviceId=a&DeviceType=b', b'14.1',
     b'3769048351', b'T', False),
    ('plain-all-parameters',
     b'Cmd=SmartForward&User=dom%5Cuser&DeviceId=ApplC39ZH2VJJCM3'
     b'&DeviceType=iPhone&ItemId=5%3A12&CollectionId=5&LongId=x'
     b'&Occurrence=y&AttachmentName=z&SaveInSent=T', b'16.1', b'0', None,
     False),
    ('options-plain-no-cmd', b'DeviceId=a&DeviceType=b', None, None, None,
     True),
    ('options-bad-base64', b'jAAJ', None, None, None, True),
    ('base64-with-all-headers', b'jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l',
     b'14.1', b'1', b'T', False),
]


def c_tokens(text):
    """Yield ('str', bytes), ('id', text) and ('punct', char) tokens."""
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if text.startswith('/*', i):
            i = text.index('*/', i + 2) + 2
        elif c.isspace():
            i += 1
        elif c == '"':
            i += 1
            out = bytearray()
            while text[i] != '"':
                if text[i] != '\\':
                    out += text[i].encode('latin-1')
                    i += 1
                    continue
                e = text[i + 1]
                if e == 'x':
                    m = re.match(r'[0-9a-fA-F]+', text[i + 2:])
                    out.append(int(m.group(0), 16) & 0xff)
                    i += 2 + len(m.group(0))
                elif e in '01234567':
                    m = re.match(r'[0-7]{1,3}', text[i + 1:])
                    out.append(int(m.group(0), 8) & 0xff)
                    i += 1 + len(m.group(0))
                else:
                    out += {'n': b'\n', 't': b'\t', 'r': b'\r',
                            '\\': b'\\', '"': b'"', "'": b"'",
                            '?': b'?'}[e]
                    i += 2
            i += 1
            yield ('str', bytes(out))
        elif c.isalnum() or c == '_':
            m = re.match(r'\w+', text[i:])
            yield ('id', m.group(0))
            i += len(m.group(0))
        else:
            yield ('punct', c)
            i += 1


def expand(s):
    """Expand "{N:text}" (the unit table's shorthand)."""
    if s is None:
        return None
    return re.sub(rb'\{(\d+):([^}]*)\}',
                  lambda m: m.group(2) * int(m.group(1)), s)


def unit_cases():
    src = open(UNIT, encoding='latin-1').read()
    start = src.index('eas_tests[] = {')
    start = src.index('{', start)

    cases = []
    depth = 0
    fields = []
    cur = []
    for kind, val in c_tokens(src[start:]):
        if kind == 'punct' and val == '{':
            depth += 1
            if depth == 2:
                fields, cur = [], []
            continue
        if kind == 'punct' and val == '}':
            depth -= 1
            if depth == 1:
                fields.append(cur)
                cases.append(fields)
            if depth == 0:
                break
            continue
        if depth != 2:
            continue
        if kind == 'punct' and val == ',':
            fields.append(cur)
            cur = []
            continue
        cur.append((kind, val))

    out = []
    for f in cases:
        def string(field):
            if field == [('id', 'NULL')]:
                return None
            assert all(k == 'str' for k, _ in field), field
            return b''.join(v for _, v in field)

        name = string(f[0]).decode('latin-1')
        flags = ' '.join(v for _, v in f[4])
        out.append((name, expand(string(f[1])), expand(string(f[2])),
                    expand(string(f[3])), None,
                    'EAS_TEST_OPTIONS' in flags))
    return out


def seed(query, version, policy_key, accept, options):
    flags = 0
    if options:
        flags |= F_OPTIONS
    if version is not None:
        flags |= F_VERSION
    if policy_key is not None:
        flags |= F_POLICY_KEY
    if accept is not None:
        flags |= F_ACCEPT_MULTIPART
    if query is None:
        flags |= F_NO_QUERY
    return (bytes([flags]) + (query or b'') + b'\0' + (version or b'')
            + b'\0' + (policy_key or b'') + b'\0' + (accept or b''))


def slug(name):
    s = re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')
    return s[:80]


def main():
    os.makedirs(OUT, exist_ok=True)

    files = {}
    for prefix, cases in (('unit-', unit_cases()), ('extra-', EXTRA)):
        for name, query, version, policy_key, accept, options in cases:
            base = prefix + slug(name)
            fname = base
            k = 2
            while fname in files:
                fname = '%s-%d' % (base, k)
                k += 1
            files[fname] = seed(query, version, policy_key, accept, options)

    for old in os.listdir(OUT):
        if old.startswith(PREFIXES) and old not in files:
            os.unlink(os.path.join(OUT, old))

    for fname, data in sorted(files.items()):
        with open(os.path.join(OUT, fname), 'wb') as f:
            f.write(data)

    print('make_corpus.py: %d seeds in %s' % (len(files),
                                             os.path.relpath(OUT, ROOT)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
