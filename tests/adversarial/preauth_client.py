"""A device's request with Basic credentials, for the pre-authentication
tests of this folder."""

import base64

from eastest.client import EasClient

EAS = "/Microsoft-Server-ActiveSync"


def send_basic(port, user, password, query, host=None):
    """POST an ActiveSync command with these credentials; the Response."""
    token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    headers = [("Host", host)] if host else []
    headers += [("Authorization", "Basic " + token),
                ("MS-ASProtocolVersion", "14.1"), ("Content-Length", "0")]
    return EasClient("http://127.0.0.1:%d" % port).raw(
        "POST", EAS + query, headers)
