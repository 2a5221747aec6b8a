"""Self-check of tests/eastest/wbxml.py against docs/protocol.md section 7.7
and, when libwbxml2-utils is installed, against xml2wbxml itself."""

import shutil
import subprocess

import pytest

from eastest import wbxml
from eastest.backends import FOLDERS

W1 = ("Ping:Ping", [
    ("Ping:HeartbeatInterval", "480"),
    ("Ping:Folders", [
        ("Ping:Folder", [("Ping:Id", "5"), ("Ping:Class", "Email")]),
        ("Ping:Folder", [("Ping:Id", "10"), ("Ping:Class", "Calendar")])])])
W2 = ("Ping:Ping", [("Ping:HeartbeatInterval", "3540")])
W3 = ("Ping:Ping", [("Ping:Status", "5"), ("Ping:HeartbeatInterval", "3540")])
COLLECTIONS = ("AirSync:Collections", [("AirSync:Collection", [
    ("AirSync:SyncKey", "1"), ("AirSync:CollectionId", "5")])])
W4 = ("AirSync:Sync", [COLLECTIONS, ("AirSync:Wait", "30")])
W5 = ("AirSync:Sync", [COLLECTIONS, ("AirSync:HeartbeatInterval", "600")])
W6 = ("AirSync:Sync", [("AirSync:Wait", "30"), ("AirSync:Partial", None)])
W7 = ("Ping:Ping", [("Ping:Status", "2"),
                    ("Ping:Folders", [("Ping:Folder", "5")])])
W8 = ("Ping:Ping", [("Ping:Status", "6"), ("Ping:MaxFolders", "300")])
W9 = ("AirSync:Sync", [("AirSync:Status", "14"), ("AirSync:Limit", "3540")])
W10 = ("Ping:Ping", [("Ping:Folders", [
    ("Ping:Folder", [("Ping:Id", "5"), ("Ping:Class", "Email")])])])

# (name, tree, hex) exactly as in docs/protocol.md section 7.7.
VECTORS = [
    ("W1", W1, "03 01 6A 00 00 0D 45 48 03 34 38 30 00 01 49 4A 4B 03 35 00 "
               "01 4C 03 45 6D 61 69 6C 00 01 01 4A 4B 03 31 30 00 01 4C 03 "
               "43 61 6C 65 6E 64 61 72 00 01 01 01 01"),
    ("W2", W2, "03 01 6A 00 00 0D 45 48 03 33 35 34 30 00 01 01"),
    ("W3", W3, "03 01 6A 00 00 0D 45 47 03 35 00 01 48 03 33 35 34 30 00 01 "
               "01"),
    ("W4", W4, "03 01 6A 00 45 5C 4F 4B 03 31 00 01 52 03 35 00 01 01 01 64 "
               "03 33 30 00 01 01"),
    ("W5", W5, "03 01 6A 00 45 5C 4F 4B 03 31 00 01 52 03 35 00 01 01 01 69 "
               "03 36 30 30 00 01 01"),
    ("W6", W6, "03 01 6A 00 45 64 03 33 30 00 01 26 01"),
    ("W7", W7, "03 01 6A 00 00 0D 45 47 03 32 00 01 49 4A 03 35 00 01 01 01"),
    ("W8", W8, "03 01 6A 00 00 0D 45 47 03 36 00 01 4D 03 33 30 30 00 01 01"),
    ("W9", W9, "03 01 6A 00 45 4E 03 31 34 00 01 65 03 33 35 34 30 00 01 01"),
    ("W10", W10, "03 01 6A 00 00 0D 45 49 4A 4B 03 35 00 01 4C 03 45 6D 61 "
                 "69 6C 00 01 01 01 01"),
]

# Documents on the other two code pages, as the backend simulator sends.
FOLDERSYNC = ("FolderHierarchy:FolderSync", [
    ("FolderHierarchy:Status", "1"),
    ("FolderHierarchy:SyncKey", "1"),
    ("FolderHierarchy:Changes", [("FolderHierarchy:Count", "2")] + [
        ("FolderHierarchy:Add", [
            ("FolderHierarchy:ServerId", server_id),
            ("FolderHierarchy:ParentId", parent_id),
            ("FolderHierarchy:DisplayName", name),
            ("FolderHierarchy:Type", folder_type)])
        for server_id, parent_id, name, folder_type in FOLDERS])])
PROVISION = ("Provision:Provision", [
    ("Provision:Status", "1"),
    ("Provision:Policies", [("Provision:Policy", [
        ("Provision:PolicyType", "MS-EAS-Provisioning-WBXML"),
        ("Provision:Status", "1"),
        ("Provision:PolicyKey", "1307199584"),
        ("Provision:Data", [("Provision:EASProvisionDoc", [
            ("Provision:DevicePasswordEnabled", "0")])])])])])

XML2WBXML = shutil.which("xml2wbxml")
DOCTYPE = ('<!DOCTYPE ActiveSync PUBLIC "-//MICROSOFT//DTD ActiveSync//EN" '
           '"http://www.microsoft.com/">')


@pytest.mark.parametrize("name, tree, hex_bytes", VECTORS,
                         ids=[v[0] for v in VECTORS])
def test_encode_reproduces_vector(name, tree, hex_bytes):
    assert wbxml.encode(tree) == bytes.fromhex(hex_bytes)


@pytest.mark.parametrize("name, tree, hex_bytes", VECTORS,
                         ids=[v[0] for v in VECTORS])
def test_decode_gives_tree(name, tree, hex_bytes):
    assert wbxml.decode(bytes.fromhex(hex_bytes)) == tree


@pytest.mark.parametrize("tree", [FOLDERSYNC, PROVISION],
                         ids=["FolderSync", "Provision"])
def test_round_trip_other_pages(tree):
    assert wbxml.decode(wbxml.encode(tree)) == tree


MB_U_INT32 = [(0, "00"), (127, "7F"), (128, "81 00"), (160, "81 20"),
              (480, "83 60"), (3540, "9B 54"), (16384, "81 80 00"),
              (0xFFFFFFFF, "8F FF FF FF 7F")]


@pytest.mark.parametrize("value, hex_bytes", MB_U_INT32)
def test_mb_u_int32(value, hex_bytes):
    assert wbxml.encode_mb_u_int32(value) == bytes.fromhex(hex_bytes)


@pytest.mark.parametrize("tree, hex_bytes", [
    # OPAQUE content comes back as bytes.
    (("AirSync:Sync", b"\x00\x01\xff"), "03 01 6A 00 45 C3 03 00 01 FF 01"),
    # A token missing from the tables survives a round trip.
    (("AirSync:0x13", "1"), "03 01 6A 00 53 03 31 00 01"),
    # Content bit without content.
    (("Ping:Ping", ""), "03 01 6A 00 00 0D 45 01"),
])
def test_special_content(tree, hex_bytes):
    assert wbxml.encode(tree) == bytes.fromhex(hex_bytes)
    assert wbxml.decode(bytes.fromhex(hex_bytes)) == tree


def test_decode_skips_string_table_and_indexed_public_id():
    # public id 00 + index 0, charset UTF-8, 3-byte string table.
    data = bytes.fromhex("03 00 00 6A 03 61 62 00 00 0D 45 47 03 31 00 01 01")
    assert wbxml.decode(data) == ("Ping:Ping", [("Ping:Status", "1")])


@pytest.mark.parametrize("hex_bytes", [
    "",                                   # no header
    "03 01 6A 00",                        # no root element
    "03 01 6A 00 00 0D 45 48 03 34",      # unterminated string
    "03 01 6A 00 00 0D 45 47",            # missing END
    "03 01 04 00 00 0D 05",               # charset is not UTF-8
    "03 01 6A 00 00 0D C5 01",            # attribute bit
    "03 01 6A 00 45 C3 05 00 01",         # OPAQUE longer than the data
    "03 01 6A 00 00 0D 05 05",            # trailing bytes after the root
    "03 01 6A 00 45 03 31 00 4A 01 01",   # text mixed with an element
])
def test_decode_rejects_malformed(hex_bytes):
    with pytest.raises(wbxml.WbxmlError):
        wbxml.decode(bytes.fromhex(hex_bytes))


def to_xml(tree, parent_page=None):
    """Render a tree as libwbxml's ActiveSync XML (one default namespace
    per element whose code page differs from its parent's)."""
    tag, content = tree
    page, name = tag.split(":")
    xmlns = ' xmlns="%s:"' % page if page != parent_page else ""
    if content is None:
        return "<%s%s/>" % (name, xmlns)
    if isinstance(content, str):
        inner = content
    else:
        inner = "".join(to_xml(child, page) for child in content)
    return "<%s%s>%s</%s>" % (name, xmlns, inner, name)


@pytest.mark.skipif(XML2WBXML is None, reason="xml2wbxml not installed")
@pytest.mark.parametrize("tree", [W1, W2, W4, W5, W6, W7, FOLDERSYNC,
                                  PROVISION],
                         ids=["W1", "W2", "W4", "W5", "W6", "W7",
                              "FolderSync", "Provision"])
def test_matches_xml2wbxml(tree, tmp_path):
    source = tmp_path / "in.xml"
    output = tmp_path / "out.wbxml"
    source.write_text('<?xml version="1.0"?>\n%s\n%s\n'
                      % (DOCTYPE, to_xml(tree)))
    subprocess.run([XML2WBXML, "-a", "-v", "1.3", "-n", "-o", str(output),
                    str(source)], check=True, timeout=30,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wbxml.encode(tree) == output.read_bytes()
