"""What the bundle tells the SlapOS master, and asks it: connection
parameters, serialised as JSON-in-XML (one JSON object in the key ``_``),
a bang, and the software release a ``urn:slapos:`` name stands for."""
import json

CONNECTION_OPTIONS = ('server-url', 'key-file', 'cert-file', 'computer-id',
                      'partition-id')
# urn:slapos:<name> names the Software Product <name> (upstream's default
# relay-sr-url is urn:slapos:mail-relay)
SOFTWARE_PRODUCT = 'urn:slapos:'


def connection(options):
    """The slap client, from the ``slap-connection`` values in ``options``
    (``server-url``, ``key-file``, ``cert-file``)."""
    from slapos import slap as slapmodule
    slap = slapmodule.slap()
    slap.initializeConnection(options['server-url'], options.get('key-file'),
                              options.get('cert-file'))
    return slap


def computer_partition(options):
    """The partition, from the ``slap-connection`` values in ``options``
    (those of ``connection``, ``computer-id``, ``partition-id``)."""
    return connection(options).registerComputerPartition(
        options['computer-id'], options['partition-id'])


def software_release_url(options, url):
    """``url``, or for ``urn:slapos:<name>`` the best release the master
    lists for the Software Product ``<name>`` (the first). ``url`` itself
    when the master lists none or cannot say (a master that resolves such
    names itself gets them as they are)."""
    if not url.startswith(SOFTWARE_PRODUCT):
        return url
    from slapos.slap.exception import SlapException
    try:
        found = connection(options).getSoftwareReleaseListFromSoftwareProduct(
            url[len(SOFTWARE_PRODUCT):])
    except (SlapException, OSError, ValueError):
        return url
    return found[0] if found else url


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
