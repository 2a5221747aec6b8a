"""What every server the tests start shares: a context manager that
starts it on entry (start() returns the server) and stops it on exit."""


class Service:
    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
