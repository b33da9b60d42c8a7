"""Promise: the partition's backups are kept up. It fails when the last
scheduled backup failed, or when the last successful one is older than its
schedule allows (``recipes.decisions.backups.overdue``), as the backup
directory's ``status.json`` records them (``recipes.stores.backups``).

Config: ``directory`` (srv/backup), ``backup`` (the ``backup`` parameter,
JSON: enable, time, keep)."""
import json
import time

from recipes.decisions import backups, schedule
from recipes.promises import AlarmPromise
from recipes.stores.backups import read_status


class RunPromise(AlarmPromise):

    periodicity = 10

    def sense(self):
        parameter = json.loads(self.getConfig('backup'))
        if not parameter['enable']:
            self.logger.info('backups are disabled (backup parameter)')
            return
        status = read_status(self.getConfig('directory'))
        problem = backups.overdue(status, time.time(), schedule.DAY)
        if problem:
            self.logger.error('%s (daily at %s UTC; bin/backup create runs '
                              'one now)', problem, parameter['time'])
        elif status.get('last-success'):
            self.logger.info('last backup %s, at %s', status.get(
                'last-snapshot'), backups.utc(status['last-success']))
        else:
            self.logger.info('no backup yet: the scheduler runs the first '
                             'one when it starts')

    def anomaly(self):
        return self._test(result_count=1, failure_amount=1)
