"""Promise: the partition waits for no other instance's answer
(``recipes.stores.waiting``). While it does, the promise fails naming what
it waits for, so that the node's run fails with that message and the node
processes the partition again at its next run, until the answer is there
(what a partition can do without the answer runs meanwhile).

Config: ``directory`` (var/waiting)."""
from recipes.promises import Promise
from recipes.stores import waiting


class RunPromise(Promise):

    def sense(self):
        reasons = waiting.reasons(self.getConfig('directory'))
        if reasons:
            self.logger.error('; '.join(reasons))
        else:
            self.logger.info('waiting for no other instance')

    def anomaly(self):
        return self._test(result_count=1, failure_amount=1)
