"""Promise: the HTTPS API of a relay node's domain (``http-endpoint``)
takes its mail.

It fails while the API's last answer deferred mail (anything but 2xx, no
answer, a refused connection: the delivery agent, ``recipes.programs.
http_delivery``, keeps it in ``answers-file``) and mail of the domain is
waiting in the deferred queue, or while the domain's deferred mail keeps
growing (as ``recipes.promises.deferred_queue`` counts it, for this domain
alone); its message names the endpoint's last answer."""
import subprocess
import time

from recipes.promises import AlarmPromise
from recipes.promises.deferred_queue import (DEFAULT_RUNS, deferred_count,
                                             keeps_growing, record)
from recipes.stores.files import read_json


def last_answer(entry):
    """The endpoint's last answer (an entry of the answers file) in words,
    with when."""
    if not entry:
        return 'no message delivered yet'
    return '%s answered %s %s' % (
        entry['endpoint'], entry['answer'],
        time.strftime('at %Y-%m-%d %H:%M:%S UTC', time.gmtime(entry['at'])))


class RunPromise(AlarmPromise):

    periodicity = 1

    def sense(self):
        domain = self.getConfig('domain')
        runs = int(self.getConfig('runs') or DEFAULT_RUNS)
        entry = read_json(self.getConfig('answers-file'), {}).get(domain)
        said = last_answer(entry)
        try:
            count = deferred_count(self.getConfig('postqueue'),
                                   self.getConfig('config-directory'), domain)
        except (OSError, subprocess.CalledProcessError, ValueError) as e:
            self.logger.error('cannot read the Postfix queue: %s',
                              getattr(e, 'stderr', None) or e)
            return
        counts = record(self.getConfig('state-file'), count, runs + 1)
        if entry and entry['kind'] == 'deferred' and count:
            self.logger.error(
                'the API of %s refuses its mail: %s; %d messages deferred',
                domain, said, count)
        elif keeps_growing(counts, runs):
            self.logger.error(
                'the deferred mail of %s keeps growing (%s messages over the '
                'last runs); its API: %s', domain,
                ' -> '.join(map(str, counts)), said)
        else:
            self.logger.info('%s: %s; %d messages deferred', domain, said,
                             count)

    def anomaly(self):
        return self._test(result_count=1, failure_amount=1)
