#!/usr/bin/python3
"""Write the fuzzing seeds for fuzz_eas_wbxml into corpus/wbxml/.

Seeds are the bodies of the eas_wbxml_tests[] table in
tests/unit/test_eas_wbxml.c (read from the C source, so the two never
drift apart) plus bodies that libwbxml's xml2wbxml makes from the XML
documents below (docs/protocol.md 7.7: `xml2wbxml -a -v 1.3 -n`).  Each
seed is byte 0 = 0x01 for a Sync body, 0x00 for a Ping body, then the
body.  Rerunning rewrites the same files and removes stale ones.
Standard library and libwbxml2-utils; run with /usr/bin/python3.
"""

import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
UNIT = os.path.join(ROOT, 'tests', 'unit', 'test_eas_wbxml.c')
OUT = os.path.join(HERE, 'corpus', 'wbxml')

DOCTYPE = ('<?xml version="1.0"?>\n<!DOCTYPE ActiveSync PUBLIC '
           '"-//MICROSOFT//DTD ActiveSync//EN" "http://www.microsoft.com/">\n')

XML = [
    ('ping-folders', 0,
     '<Ping xmlns="Ping:"><HeartbeatInterval>480</HeartbeatInterval>'
     '<Folders><Folder><Id>5</Id><Class>Email</Class></Folder>'
     '<Folder><Id>10</Id><Class>Calendar</Class></Folder></Folders></Ping>'),
    ('ping-heartbeat', 0,
     '<Ping xmlns="Ping:"><HeartbeatInterval>3540</HeartbeatInterval>'
     '</Ping>'),
    ('ping-no-heartbeat', 0,
     '<Ping xmlns="Ping:"><Folders><Folder><Id>5</Id><Class>Email</Class>'
     '</Folder></Folders></Ping>'),
    ('sync-wait', 1,
     '<Sync xmlns="AirSync:"><Collections><Collection><SyncKey>1</SyncKey>'
     '<CollectionId>5</CollectionId></Collection></Collections>'
     '<Wait>30</Wait></Sync>'),
    ('sync-heartbeat', 1,
     '<Sync xmlns="AirSync:"><Collections><Collection><SyncKey>1</SyncKey>'
     '<CollectionId>5</CollectionId></Collection></Collections>'
     '<HeartbeatInterval>600</HeartbeatInterval></Sync>'),
    ('sync-partial', 1,
     '<Sync xmlns="AirSync:"><Wait>30</Wait><Partial/></Sync>'),
    ('sync-commands', 1,
     '<Sync xmlns="AirSync:" xmlns:email="Email:"><Collections><Collection>'
     '<SyncKey>7</SyncKey><CollectionId>5</CollectionId><Commands><Change>'
     '<ServerId>5:1</ServerId><ApplicationData><email:Read>1</email:Read>'
     '</ApplicationData></Change></Commands></Collection></Collections>'
     '<HeartbeatInterval>900</HeartbeatInterval></Sync>'),
]

CASE_RE = re.compile(r'\{\s*"([^"]+)",\s*([PS]),\s*((?:"[^"]*"\s*)+),')


def slug(name):
    return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')


def unit_seeds():
    text = open(UNIT, encoding='utf-8').read()
    table = text.split('eas_wbxml_tests[] = {', 1)[1].split('{ NULL', 1)[0]
    for name, root, hex_parts in CASE_RE.findall(table):
        hexstr = ''.join(re.findall(r'"([^"]*)"', hex_parts))
        body = bytes.fromhex(hexstr.replace(' ', ''))
        yield 'unit-' + slug(name), (1 if root == 'S' else 0), body


# the response commands of fuzz_eas_wbxml.c's eas_fuzz_commands[], in order
FUZZ_COMMANDS = ['PING', 'SYNC', 'FOLDER_SYNC', 'PROVISION', 'SETTINGS',
                 'SEARCH', 'ITEM_OPERATIONS', 'SEND_MAIL', 'MOVE_ITEMS',
                 'VALIDATE_CERT', 'RESOLVE_RECIPIENTS']

TOP_RE = re.compile(r'\{\s*"([^"]+)",\s*EAS_CMD_([A-Z_]+),\s*'
                    r'((?:"[^"]*"\s*)+),')


def top_seeds():
    """The responses of eas_wbxml_top_tests[], byte 0 naming the command."""
    text = open(UNIT, encoding='utf-8').read()
    table = text.split('eas_wbxml_top_tests[] = {', 1)[1].split('{ NULL', 1)[0]
    for name, command, hex_parts in TOP_RE.findall(table):
        if command not in FUZZ_COMMANDS:
            continue
        hexstr = ''.join(re.findall(r'"([^"]*)"', hex_parts))
        body = bytes.fromhex(hexstr.replace(' ', ''))
        yield ('top-' + slug(name), FUZZ_COMMANDS.index(command) << 1,
               body)


def xml_seeds():
    with tempfile.TemporaryDirectory() as tmp:
        for name, sync, xml in XML:
            src = os.path.join(tmp, 'in.xml')
            dst = os.path.join(tmp, 'out.wbxml')
            with open(src, 'w', encoding='utf-8') as f:
                f.write(DOCTYPE + xml + '\n')
            subprocess.run(['xml2wbxml', '-a', '-v', '1.3', '-n', '-o', dst,
                            src], check=True, stdout=subprocess.DEVNULL)
            with open(dst, 'rb') as f:
                yield 'xml-' + name, sync, f.read()


def write_seeds(out, wanted):
    """Writes {file name: bytes} into out, removing any other file."""
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        if name not in wanted:
            os.unlink(os.path.join(out, name))
    for name, data in wanted.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)
    print('%d seeds in %s' % (len(wanted), out))


def main():
    wanted = {}
    for name, sync, body in (list(unit_seeds()) + list(top_seeds())
                             + list(xml_seeds())):
        wanted[name] = bytes([sync]) + body
    write_seeds(OUT, wanted)
    return 0


if __name__ == '__main__':
    sys.exit(main())
