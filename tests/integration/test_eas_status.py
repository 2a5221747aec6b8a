

def test_metrics_off(nginx_factory, backend):
    port = free_port()
    nginx = nginx_factory("""
http {
    ${temp_paths}
    eas_metrics off;
    server {
        listen 127.0.0.1:${port};
        location /Microsoft-Server-ActiveSync {
            eas on;
            proxy_pass http://127.0.0.1:${backend_port};
        }
        location = /status { eas_status; }
    }
}
""", listen=(port,), port=port, backend_port=backend.port)
    nginx.port = port
    c = EasClient("http://127.0.0.1:%d/Microsoft-Server-ActiveSync" % port,
                  user="jdoe", device_id="ApplOFF")
    for _ in range(3):
        assert c.foldersync().status == 200
    doc = status(nginx)
    assert doc["requests"] == {} and doc["upstream"] == {}
