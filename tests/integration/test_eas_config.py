"""Every configuration mistake fails "nginx -t" with a message that names
the directive, and nginx starts with none of them."""

import pytest

NGINX_CONFIG = """
http {
    ${temp_paths}
    ${http_level}

    server {
        listen 127.0.0.1:${port};

        location /Microsoft-Server-ActiveSync {
            ${location_level}
            return 204;
        }
    }
}
"""

MISTAKES = [
    ("eas value", "", "eas maybe;",
     'invalid value "maybe" in "eas" directive, it must be "on" or "off"'),
    ("eas twice", "", "eas on; eas off;", '"eas" directive is duplicate'),
    ("eas without value", "", "eas;",
     'invalid number of arguments in "eas" directive'),
    ("eas in an if block", "",
     "if ($args) { eas on; }", '"eas" directive is not allowed here'),
    ("method unknown", "", "eas_methods POST FETCH;",
     'invalid method "FETCH" in "eas_methods"'),
    ("method lower case", "", "eas_methods post;",
     'invalid method "post" in "eas_methods"'),
    ("method twice", "", "eas_methods POST OPTIONS POST;",
     'duplicate method "POST" in "eas_methods"'),
    ("methods without POST", "", "eas_methods OPTIONS GET;",
     '"eas_methods" must include POST: every ActiveSync command is a POST'),
    ("eas_methods twice", "eas_methods POST;",
     "eas_methods POST; eas_methods POST OPTIONS;",
     '"eas_methods" directive is duplicate'),
    ("eas_methods without value", "", "eas_methods;",
     'invalid number of arguments in "eas_methods" directive'),
    # the device inventory (test_eas_inventory.py)
    ("eas_devices unknown zone", "", "eas_devices nowhere;",
     '"eas_devices" zone "nowhere" is unknown'),
    ("eas_device_zone without size", "eas_device_zone zone=devices;", "",
     'invalid zone size "zone=devices" in "eas_device_zone"'),
    ("eas_device_zone with a bad size",
     "eas_device_zone zone=devices:lots;", "",
     'invalid zone size "zone=devices:lots" in "eas_device_zone"'),
    ("eas_device_zone too small", "eas_device_zone zone=devices:8k;", "",
     'zone "zone=devices:8k" is too small in "eas_device_zone"'),
    ("eas_device_zone without a name", "eas_device_zone ttl=1;", "",
     'invalid parameter "ttl=1" in "eas_device_zone"'),
    ("eas_device_zone defined twice",
     "eas_device_zone zone=devices:1m; eas_device_zone zone=devices:1m;", "",
     'eas zone "devices" is already defined'),
    ("eas_device_zone in a location", "",
     "eas_device_zone zone=devices:1m;",
     '"eas_device_zone" directive is not allowed here'),
    ("eas_devices twice", "eas_device_zone zone=devices:1m;",
     "eas_devices devices; eas_devices devices;",
     '"eas_devices" directive is duplicate'),
    ("inventory without a zone", "", "eas_device_inventory;",
     '"eas_device_inventory" needs a zone: add "eas_devices"'),
]


@pytest.mark.parametrize("name,http_level,location_level,message", MISTAKES,
                         ids=[case[0] for case in MISTAKES])
def test_mistake_fails_nginx_t(nginx_factory, name, http_level,
                               location_level, message):
    nginx = nginx_factory(NGINX_CONFIG, start=False, port=1,
                          http_level=http_level,
                          location_level=location_level)
    nginx.expected_alerts.append(r"\[emerg\]")

    rc, output = nginx.test_config()

    assert rc != 0
    assert "[emerg] " + message + " in " + nginx.conf_path in output


def test_directives_at_every_level(nginx_factory):
    nginx = nginx_factory(NGINX_CONFIG, start=False, port=1,
                          http_level="eas on; eas_methods POST OPTIONS;",
                          location_level="eas off; eas_methods POST GET;")

    rc, output = nginx.test_config()

    assert rc == 0, output
