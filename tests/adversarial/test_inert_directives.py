"""Issue 10, point 8: a security directive in a location where "eas" is
off did nothing, and nginx -t passed: every request there was forwarded
unauthenticated and unchecked.  Now nginx -t fails naming the directive
and saying what to do; the same directives at the http or server level
stay defaults that locations without "eas" (Autodiscover, the credential
check) may inherit."""

import pytest

from eastest import confs

NGINX_CONFIG = confs.gateway(
    "eas_preauth_cache zone=auth;",
    "eas_preauth_user_file ${dir}/users plain;",
    "${server_level}",
    confs.location(confs.EAS, "${location_level}",
                   "proxy_pass http://127.0.0.1:1;"),
    confs.location("/autodiscover/", "proxy_pass http://127.0.0.1:1;"),
    confs.location("= /_check", "internal;", "return 204;"),
    confs.location("= /inventory", "eas_devices devices;",
                   "eas_device_inventory;"),
    upstream=None)

INERT = [
    ("eas_preauth", 'eas_preauth "ActiveSync";', "eas_preauth"),
    ("eas_preauth with eas off", 'eas off; eas_preauth "ActiveSync";',
     "eas_preauth"),
    ("eas_device_block", "eas_device_block device_id=ApplLOST0001;",
     'eas_device_allow", "eas_device_block" or "eas_device_rules'),
    ("eas_device_allow", "eas_device_allow device_id=ApplOK;",
     'eas_device_allow", "eas_device_block" or "eas_device_rules'),
    ("eas_device_rules", "eas_device_rules rules;",
     'eas_device_allow", "eas_device_block" or "eas_device_rules'),
    ("eas_device_user_lists", "eas_device_user_lists lists;",
     "eas_device_user_lists"),
    ("eas_device_default", "eas_device_default block;",
     "eas_device_default"),
    ("eas_device_user_match", "eas_device_user_match on;",
     "eas_device_user_match"),
    ("eas_devices", "eas_devices devices;", "eas_devices"),
]


def make(nginx_factory, server_level="", location_level=""):
    nginx = nginx_factory(NGINX_CONFIG, start=False, port=1,
                          server_level=server_level,
                          location_level=location_level)
    for name, text in (("users", "jdoe:{PLAIN}x\n"),
                       ("rules", "block device_id=ApplLOST0001\n"),
                       ("lists", "jdoe block ApplLOST0001\n")):
        with open("%s/%s" % (nginx.dir, name), "w") as handle:
            handle.write(text)
    return nginx


@pytest.mark.parametrize("name,directive,named", INERT,
                         ids=[case[0] for case in INERT])
def test_security_directive_without_eas_fails_nginx_t(nginx_factory, name,
                                                      directive, named):
    nginx = make(nginx_factory, location_level=directive)
    nginx.expected_alerts.append(r"\[emerg\]")

    rc, output = nginx.test_config()

    assert rc != 0, output
    assert ('[emerg] "%s" has no effect in location '
            '"/Microsoft-Server-ActiveSync" where "eas" is off: add "eas on" '
            'to it' % named) in output


@pytest.mark.parametrize("name,directive,named", INERT,
                         ids=[case[0] for case in INERT])
def test_same_directive_with_eas_on_passes(nginx_factory, name, directive,
                                           named):
    directive = directive.replace("eas off;", "")
    nginx = make(nginx_factory, location_level="eas on; " + directive)

    rc, output = nginx.test_config()

    assert rc == 0, output


def test_server_level_defaults_reach_locations_without_eas(nginx_factory):
    # /autodiscover, /_check and /inventory inherit them, without effect
    nginx = make(nginx_factory,
                 server_level='eas_preauth "ActiveSync"; '
                              'eas_devices devices; eas_device_max 3; '
                              'eas_device_block device_id=ApplLOST0001;',
                 location_level="eas on;")

    rc, output = nginx.test_config()

    assert rc == 0, output


def test_off_switches_are_not_inert(nginx_factory):
    nginx = make(nginx_factory,
                 location_level="eas_preauth off; eas_devices off;")

    rc, output = nginx.test_config()

    assert rc == 0, output
