"""Test and demo helpers for ngx_eas (Python standard library only).

nginx     run a real nginx with the module loaded (nginx-tests style)
wbxml     WBXML encoder/decoder for the EAS code pages the tests use
client    EAS device simulator, query-string codecs, raw-socket HTTP
backends  EAS backend simulator and a silent backend, both loopback only
confs     builders of the nginx configurations the tests start
service   start() / stop() as a context manager, for every server
certs     throwaway CA and server certificate made with the openssl CLI
"""
