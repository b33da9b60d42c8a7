"""Promise: the deferred queue of a Postfix does not keep growing.

Each run counts the deferred messages (``postqueue -j``) and keeps the last
counts in ``state-file``; the promise fails when the count grew at each of
the last ``runs`` runs (mail that cannot leave, or cannot be delivered,
piling up), not when a few messages wait for a while."""
import json
import os
import subprocess

from recipes.stores.files import read_json, write_atomically
from recipes.promises import AlarmPromise

DEFAULT_RUNS = 4


def deferred_count(postqueue, config_directory, domain=None):
    """How many messages are in the deferred queue (with ``domain``: for a
    recipient of that domain)."""
    out = subprocess.run([postqueue, '-c', config_directory, '-j'],
                         check=True, capture_output=True, text=True).stdout
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    return sum(1 for entry in entries
               if entry.get('queue_name') == 'deferred' and (
                   domain is None or any(
                       r.get('address', '').rpartition('@')[2].lower() ==
                       domain for r in entry.get('recipients', ()))))


def keeps_growing(counts, runs):
    """Whether the last ``runs`` + 1 counts increase strictly at each step."""
    last = counts[-(runs + 1):]
    return len(last) == runs + 1 and all(
        a < b for a, b in zip(last, last[1:]))


def record(state_file, count, keep):
    """Append ``count`` to the counts kept in ``state_file``; return them."""
    counts = (read_json(state_file, []) + [count])[-keep:]
    os.makedirs(os.path.dirname(state_file), exist_ok=True)
    write_atomically(state_file, json.dumps(counts))
    return counts


class RunPromise(AlarmPromise):

    periodicity = 10

    def sense(self):
        runs = int(self.getConfig('runs') or DEFAULT_RUNS)
        try:
            count = deferred_count(self.getConfig('postqueue'),
                                   self.getConfig('config-directory'))
        except (OSError, subprocess.CalledProcessError, ValueError) as e:
            self.logger.error('cannot read the Postfix queue: %s',
                              getattr(e, 'stderr', None) or e)
            return
        counts = record(self.getConfig('state-file'), count, runs + 1)
        if keeps_growing(counts, runs):
            self.logger.error(
                'the deferred queue keeps growing (%s messages over the last '
                'runs): see the Postfix log for why mail cannot leave',
                ' -> '.join(map(str, counts)))
        else:
            self.logger.info('%d deferred messages', count)

    def anomaly(self):
        return self._test(result_count=1, failure_amount=1)
