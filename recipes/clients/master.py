"""What the bundle tells the SlapOS master: connection parameters,
serialised as JSON-in-XML (one JSON object in the key ``_``), and a bang."""
import json

CONNECTION_OPTIONS = ('server-url', 'key-file', 'cert-file', 'computer-id',
                      'partition-id')


def computer_partition(options):
    """The partition, from the ``slap-connection`` values in ``options``
    (``server-url``, ``key-file``, ``cert-file``, ``computer-id``,
    ``partition-id``)."""
    from slapos import slap as slapmodule
    slap = slapmodule.slap()
    slap.initializeConnection(options['server-url'], options.get('key-file'),
                              options.get('cert-file'))
    return slap.registerComputerPartition(options['computer-id'],
                                          options['partition-id'])


def publish(partition, parameters, reference=None):
    """Publish ``parameters`` for the instance, or for its shared instance
    ``reference``."""
    partition.setConnectionDict(
        {'_': json.dumps(parameters, sort_keys=True)}, reference)


def bang(options, message):
    """Ask the master to process the partition again (with the instances
    it requested), as the watchdog does when a service dies: the node's
    next run takes what changed on disk."""
    computer_partition(options).bang(message)
