"""Promise: the partition's log directory stays within its bound (the
``logs`` parameter's ``alarm-size``, MiB): past it, a log is not rotated
(a daemon that was not told to reopen it, a rotation failing) or grows
faster than the rotation keeps up with.

Config: ``directory`` (var/log), ``logs`` (the ``logs`` parameter,
JSON)."""
import json
import os

from recipes.promises import AlarmPromise

MIB = 1024 * 1024


def directory_size(directory):
    """Bytes of the files under ``directory``, and the biggest of them."""
    total, biggest = 0, (0, None)
    for root, _, files in os.walk(directory):
        for name in files:
            try:
                size = os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:   # rotated meanwhile
                continue
            total += size
            biggest = max(biggest, (size, os.path.join(root, name)))
    return total, biggest


class RunPromise(AlarmPromise):

    periodicity = 10

    def sense(self):
        directory = self.getConfig('directory')
        bound = json.loads(self.getConfig('logs'))['alarm-size']
        total, (size, path) = directory_size(directory)
        if total > bound * MIB:
            self.logger.error(
                '%s holds %.0f MiB of logs, more than %d MiB (logs: '
                'alarm-size); the biggest is %s (%.0f MiB): see var/log/'
                'scheduler.log for the rotations', directory, total / MIB,
                bound, path, size / MIB)
        else:
            self.logger.info('%s: %.1f MiB of logs', directory, total / MIB)

    def anomaly(self):
        return self._test(result_count=1, failure_amount=1)
