"""Tiny WBXML 1.3 encoder/decoder for the Exchange ActiveSync subset.

Documents are trees of ``(tag, content)`` tuples.  ``tag`` is
``"Page:Name"``, for example ``"Ping:HeartbeatInterval"``; ``content`` is

    None          an empty element, written without the content bit
                  (``<Partial/>`` is the single byte 0x26)
    str           text, written as one STR_I inline string
    bytes         OPAQUE data
    list          child elements, in order

Example, vector W2 of docs/protocol.md section 7.7::

    encode(("Ping:Ping", [("Ping:HeartbeatInterval", "3540")]))
    == bytes.fromhex("03016a00000d45480333353430000101")

``decode`` returns the same shape.  An element with the content bit but
nothing inside (``<Status></Status>``) decodes to ``""``, and ``""`` or
``[]`` encode to exactly that.  Tokens missing from the tables below
decode as ``"Page:0xNN"`` (or ``"0xPP:0xNN"`` for an unknown page), and
``encode`` accepts those spellings too, so unknown data survives a round
trip.  As in MS-ASWBXML, there are no attributes, string tables or
entities; the decoder refuses them except that it skips a string table.
"""

# Code pages: number, namespace name (as libwbxml spells it) and tag
# tokens.  Sources: docs/protocol.md sections 5.2, 6.1 and 7.6 and the
# code pages of MS-ASWBXML 2.1.2.1, checked against xml2wbxml output.
CODE_PAGES = {
    0: ("AirSync", {
        "Sync": 0x05,
        "SyncKey": 0x0B,
        "Status": 0x0E,
        "Collection": 0x0F,
        "CollectionId": 0x12,
        "Collections": 0x1C,
        "Wait": 0x24,
        "Limit": 0x25,
        "Partial": 0x26,
        "HeartbeatInterval": 0x29,
    }),
    7: ("FolderHierarchy", {
        "DisplayName": 0x07,
        "ServerId": 0x08,
        "ParentId": 0x09,
        "Type": 0x0A,
        "Status": 0x0C,
        "Changes": 0x0E,
        "Add": 0x0F,
        "SyncKey": 0x12,
        "FolderSync": 0x16,
        "Count": 0x17,
    }),
    13: ("Ping", {
        "Ping": 0x05,
        "AutdState": 0x06,
        "Status": 0x07,
        "HeartbeatInterval": 0x08,
        "Folders": 0x09,
        "Folder": 0x0A,
        "Id": 0x0B,
        "Class": 0x0C,
        "MaxFolders": 0x0D,
    }),
    14: ("Provision", {
        "Provision": 0x05,
        "Policies": 0x06,
        "Policy": 0x07,
        "PolicyType": 0x08,
        "PolicyKey": 0x09,
        "Data": 0x0A,
        "Status": 0x0B,
        "RemoteWipe": 0x0C,
        "EASProvisionDoc": 0x0D,
        "DevicePasswordEnabled": 0x0E,
    }),
}

# WBXML 1.3, public id 1 (unknown), charset 106 (UTF-8), no string table:
# what every EAS client sends.
HEADER = bytes([0x03, 0x01, 0x6A, 0x00])

SWITCH_PAGE = 0x00
END = 0x01
STR_I = 0x03
OPAQUE = 0xC3
CONTENT_BIT = 0x40
ATTRIBUTE_BIT = 0x80
UTF8_CHARSET = 106

_PAGE_BY_NAME = {name: page for page, (name, _) in CODE_PAGES.items()}
_NAME_BY_TOKEN = {
    page: {token: name for name, token in tags.items()}
    for page, (_, tags) in CODE_PAGES.items()
}


class WbxmlError(ValueError):
    """The bytes are not a WBXML document of the EAS subset."""


def encode(tree):
    """Return the WBXML bytes (header included) of a (tag, content) tree."""
    out = bytearray(HEADER)
    page = [0]            # current code page, shared by the whole document
    _encode_element(tree, out, page)
    return bytes(out)


def decode(data):
    """Return the ``(tag, content)`` tree of a WBXML document.

    Raises WbxmlError on anything malformed or outside the EAS subset.
    """
    reader = _Reader(bytes(data))
    reader.skip_header()
    tree = reader.element()
    if not reader.at_end():
        raise WbxmlError("trailing bytes after the root element at offset %d"
                         % reader.pos)
    return tree


def find(tree, path):
    """Return the content of the first element at ``path`` or None.

    ``path`` is a "/"-separated list of tags starting with the root, for
    example ``"Ping:Ping/Ping:Status"``.
    """
    found = find_all(tree, path)
    return found[0] if found else None


def find_all(tree, path):
    """Return the contents of every element at ``path`` (see find)."""
    first, *rest = path.split("/")
    tag, content = tree
    if tag != first:
        return []
    if not rest:
        return [content]
    if not isinstance(content, list):
        return []
    found = []
    for child in content:
        found.extend(find_all(child, "/".join(rest)))
    return found


def encode_mb_u_int32(value):
    """Encode a multi-byte unsigned integer (WBXML section 5.1)."""
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError("mb_u_int32 out of range: %r" % value)
    groups = [value & 0x7F]
    value >>= 7
    while value:
        groups.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(groups))


def _tag_token(tag):
    """Map ``"Page:Name"`` to (page number, token)."""
    page_name, sep, name = tag.partition(":")
    if not sep:
        raise ValueError("tag %r is not of the form Page:Name" % tag)
    if page_name in _PAGE_BY_NAME:
        page = _PAGE_BY_NAME[page_name]
    else:
        page = _parse_hex(page_name, tag, limit=0xFF)
    tags = CODE_PAGES.get(page, ("", {}))[1]
    if name in tags:
        return page, tags[name]
    token = _parse_hex(name, tag, limit=0x3F)
    if token < 0x05:
        raise ValueError("tag %r uses a global token" % tag)
    return page, token


def _parse_hex(text, tag, limit):
    if text.lower().startswith("0x"):
        try:
            value = int(text, 16)
        except ValueError:
            value = -1
        if 0 <= value <= limit:
            return value
    raise ValueError("unknown WBXML tag %r" % tag)


def _encode_element(element, out, page):
    tag, content = element
    tag_page, token = _tag_token(tag)
    if tag_page != page[0]:
        out += bytes([SWITCH_PAGE, tag_page])
        page[0] = tag_page

    if content is None:
        out.append(token)
        return

    out.append(token | CONTENT_BIT)
    if isinstance(content, str):
        if content:
            out.append(STR_I)
            out += content.encode("utf-8") + b"\x00"
    elif isinstance(content, (bytes, bytearray)):
        out.append(OPAQUE)
        out += encode_mb_u_int32(len(content)) + bytes(content)
    else:
        for child in content:
            _encode_element(child, out, page)
    out.append(END)


def _tag_name(page, token):
    page_name = CODE_PAGES.get(page, ("0x%02X" % page, {}))[0]
    name = _NAME_BY_TOKEN.get(page, {}).get(token, "0x%02X" % token)
    return "%s:%s" % (page_name, name)


class _Reader:
    """Cursor over a WBXML document; every read is bounds-checked."""

    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.page = 0

    def at_end(self):
        return self.pos == len(self.data)

    def byte(self):
        if self.pos >= len(self.data):
            raise WbxmlError("truncated document at offset %d" % self.pos)
        value = self.data[self.pos]
        self.pos += 1
        return value

    def peek(self):
        if self.pos >= len(self.data):
            raise WbxmlError("truncated document at offset %d" % self.pos)
        return self.data[self.pos]

    def mb_u_int32(self):
        value = 0
        for _ in range(5):
            octet = self.byte()
            value = (value << 7) | (octet & 0x7F)
            if not octet & 0x80:
                if value > 0xFFFFFFFF:
                    break
                return value
        raise WbxmlError("mb_u_int32 too long at offset %d" % self.pos)

    def take(self, count):
        if count > len(self.data) - self.pos:
            raise WbxmlError("%d bytes run past the end at offset %d"
                             % (count, self.pos))
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def cstring(self):
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise WbxmlError("unterminated string at offset %d" % self.pos)
        text = self.data[self.pos:end]
        self.pos = end + 1
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WbxmlError("string is not UTF-8: %s" % exc) from None

    def skip_header(self):
        version = self.byte()
        if version not in (0x01, 0x02, 0x03):
            raise WbxmlError("unsupported WBXML version 0x%02X" % version)
        if self.mb_u_int32() == 0:
            self.mb_u_int32()      # public id given as a string-table index
        charset = self.mb_u_int32()
        if charset != UTF8_CHARSET:
            raise WbxmlError("charset %d is not UTF-8" % charset)
        self.take(self.mb_u_int32())

    def element(self):
        while self.peek() == SWITCH_PAGE:
            self.pos += 1
            self.page = self.byte()
        token = self.byte()
        if token & 0x3F < 0x05 or token & ATTRIBUTE_BIT:
            raise WbxmlError("expected a tag, found 0x%02X at offset %d"
                             % (token, self.pos - 1))
        tag = _tag_name(self.page, token & 0x3F)
        if not token & CONTENT_BIT:
            return (tag, None)
        return (tag, self.content())

    def content(self):
        """Read up to the matching END; return str, bytes or a list."""
        children, texts, opaque = [], [], []
        while True:
            token = self.peek()
            if token == END:
                self.pos += 1
                break
            if token == STR_I:
                self.pos += 1
                texts.append(self.cstring())
            elif token == OPAQUE:
                self.pos += 1
                opaque.append(self.take(self.mb_u_int32()))
            else:
                children.append(self.element())
        if sum(map(bool, (children, texts, opaque))) > 1:
            raise WbxmlError("mixed content ends at offset %d" % self.pos)
        if children:
            return children
        if opaque:
            return b"".join(opaque)
        return "".join(texts)


def libwbxml_xml(body, root=None):
    """libwbxml's own reading (wbxml2xml, from libwbxml2-utils) of a WBXML
    body, as one line of XML from the root element (named root, or the
    first element) on: an independent decoder to check answers against."""
    import re
    import subprocess
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".wbxml") as f:
        f.write(body)
        f.flush()
        out = subprocess.run(["wbxml2xml", "-l", "ACTIVESYNC", "-m", "0",
                              "-o", "-", f.name], check=True,
                             capture_output=True).stdout.decode()
    if root is None:
        return out[re.search(r"<[A-Za-z]", out).start():].strip()
    return out[out.index("<" + root):].strip()
