"""Waiting for a condition, never for a duration, and reading each
request's own access-log line.

The tests run on a busy machine against an nginx with two workers, so:

- a reply can reach the client before its access-log line (nginx logs
  once the response is sent) or its error-log line is written;
- two requests answered by two workers can be logged in either order,
  whatever order the client sent them in;
- anything can take many times longer than on an idle machine.

So a test polls for what it expects with a deadline that only bounds a
hang (``poll``), and finds a request's log line by a tag the request
carries rather than by its position in the file (``tag`` + ``logged``):

    seq = tag()
    reply = client.raw("POST", target, headers + [tag_header(seq)])
    entry, = logged(nginx, "eas.log", [seq])   # log_format has "seq"

where the JSON log format repeats the header: ``"seq":"$http_x_test_seq"``
(``SEQ_FIELD``).  Lines that carry no tag can be matched by content with
``logged(..., key=...)`` or ``log_line``.
"""

import itertools
import json
import os
import time

# Deadlines bound a hang; they are never reached when things work, so
# they can be generous (a busy CI box is many times slower than a desk).
TIMEOUT = 30.0
POLL_INTERVAL = 0.05

TAG_HEADER = "X-Test-Seq"
SEQ_FIELD = "\"seq\":\"$http_x_test_seq\""

_tags = itertools.count(1)


def poll(condition, what, timeout=TIMEOUT, interval=POLL_INTERVAL):
    """Call condition() until it returns something true; return that.
    AssertionError naming what after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("no %s within %.0f s" % (what, timeout))
        time.sleep(interval)


def tag():
    """A new request tag, unique in this test process."""
    return str(next(_tags))


def tag_header(seq):
    return (TAG_HEADER, seq)


def log_lines(nginx, name):
    """Complete lines of access log name in nginx's work directory (a
    line still being written is left out)."""
    try:
        with open(os.path.join(nginx.dir, name), "rb") as log:
            text = log.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    return text[:text.rfind("\n") + 1].splitlines()


def json_entries(nginx, name):
    return [json.loads(line) for line in log_lines(nginx, name)]


def logged(nginx, name, wanted, key=lambda entry: entry["seq"],
           timeout=TIMEOUT):
    """The JSON entries of access log name whose key(entry) equals each
    of wanted, in the order of wanted, once all are written.  With the
    default key, wanted are tags (see tag()) and the log format holds
    SEQ_FIELD.  Each key must match one entry only."""
    wanted = list(wanted)

    def found():
        by_key = {}
        for entry in json_entries(nginx, name):
            by_key.setdefault(key(entry), []).append(entry)
        if not all(want in by_key for want in wanted):
            return None
        for want in wanted:
            assert len(by_key[want]) == 1, \
                "%s: %d entries for %r" % (name, len(by_key[want]), want)
        return [by_key[want][0] for want in wanted]

    return poll(found, "%s entries for %s" % (name, wanted), timeout)


def log_line(nginx, name, predicate, what, timeout=TIMEOUT):
    """The first line of access log name for which predicate(line) is
    true, once it is written."""
    return poll(lambda: next((line for line in log_lines(nginx, name)
                              if predicate(line)), None),
                "%s line with %s" % (name, what), timeout)


def error_lines(nginx, mark, predicate, what, count=1, timeout=TIMEOUT):
    """The error.log lines written since mark for which predicate(line)
    is true, once there are at least count of them: a worker can write
    its error line after the client already has the response."""
    def enough():
        lines = [line for line in nginx.error_lines_since(mark)
                 if predicate(line)]
        return lines if len(lines) >= count else None

    return poll(enough, "%d error.log line(s) with %s" % (count, what),
                timeout)
