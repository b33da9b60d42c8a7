"""Promise: the spam filter (recipes/programs/spam_filter.py) answers on its unix
socket ``socket``. It asks for the verdict of a user without a word list,
which reads nothing and is answered at once: Unsure, not classified."""
from recipes.programs import spam_filter
from recipes.promises import AlarmPromise


def answer(path, timeout=10):
    """The spam filter's whole answer to a request for the verdict of a
    user without a word list."""
    return spam_filter.ask(path, '/nonexistent/promise', spam_filter.CLASSIFY,
                           b'Subject: promise\n\n', timeout)


class RunPromise(AlarmPromise):

    def sense(self):
        path = self.getConfig('socket')
        try:
            received = answer(path)
        except OSError as e:
            self.logger.error(
                'the spam filter does not answer on %s (%s): until it does, '
                'delivered mail is marked "not classified" (a stale socket) '
                'or classified by bogofilter run by Dovecot; see the '
                'spam-filter service', path, e)
            return
        if received == spam_filter.UNTRAINED + b'\n+\n':
            self.logger.info('the spam filter answers on %s', path)
        else:
            self.logger.error('the spam filter on %s answers %r, not the '
                              'verdict for a user without a word list',
                              path, received[:80])

    def anomaly(self):
        return self._test(result_count=3, failure_amount=3)
