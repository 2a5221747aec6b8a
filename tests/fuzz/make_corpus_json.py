#!/usr/bin/python3
"""Write the fuzzing seeds for fuzz_eas_json into corpus/json/: the bodies
of the eas_json_tests[] table in tests/unit/test_eas_json.c, read from
the C source so that the two never drift apart.  Rerunning rewrites the
same files and removes stale ones.  Standard library only."""

import ast
import os
import re
import sys

from make_corpus_wbxml import write_seeds

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
UNIT = os.path.join(ROOT, 'tests', 'unit', 'test_eas_json.c')
OUT = os.path.join(HERE, 'corpus', 'json')

CASE_RE = re.compile(r'\{\s*"([^"]+)",\s*((?:"(?:[^"\\]|\\.)*"\s*)+),')


def c_string(parts):
    """The bytes of adjacent C string literals (the escapes used here)."""
    out = b''
    for lit in re.findall(r'"((?:[^"\\]|\\.)*)"', parts):
        out += ast.literal_eval('b"' + lit + '"')
    return out


def main():
    text = open(UNIT, encoding='utf-8').read()
    table = text.split('eas_json_tests[] = {', 1)[1].split('{ NULL', 1)[0]
    wanted = {}
    for name, parts in CASE_RE.findall(table):
        slug = re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')
        wanted['unit-' + slug] = c_string(parts)
    write_seeds(OUT, wanted)
    return 0


if __name__ == '__main__':
    sys.exit(main())
