"""Promise: an HTTP(S) URL answers with the expected status.

Config: ``url``; ``status`` (default 200). HTTPS is not verified: the
partitions' certificates are self-signed. Redirects are not followed, so
that a redirect is seen as such."""
import time
import urllib.error
import urllib.request

from recipes.promises import Promise, unverified_tls


class NoRedirect(urllib.request.HTTPRedirectHandler):

    def redirect_request(self, *args, **kw):
        return None


def status_of(url, timeout=10):
    """The HTTP status ``url`` answers with (raises OSError when nothing
    answers)."""
    context = unverified_tls()
    opener = urllib.request.build_opener(
        NoRedirect, urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


class RunPromise(Promise):

    def sense(self):
        url = self.getConfig('url')
        expected = int(self.getConfig('status') or 200)
        # a server that was just (re)started may need a moment
        deadline = time.time() + 10
        while True:
            try:
                status = status_of(url)
            except OSError as e:
                status, error = None, e
            if status == expected or time.time() > deadline:
                break
            time.sleep(0.5)
        if status == expected:
            self.logger.info('%s answers %s', url, status)
        elif status is None:
            self.logger.error('%s does not answer: %s', url, error)
        else:
            self.logger.error('%s answers %s, not %s', url, status, expected)

    def anomaly(self):
        return self._test(result_count=3, failure_amount=3)
