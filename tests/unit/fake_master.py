"""A stand-in for the SlapOS master (slapos.slap.slap()) that records."""
import json

from slapos import slap


class Instance:
    """A requested instance: its connection parameters, serialised as
    JSON-in-XML, once it has published them (``published`` not None)."""

    _computer_id = 'COMP-2'

    def __init__(self, published):
        self.published = published

    def getConnectionParameter(self, key):
        if key == '_' and self.published is not None:
            return json.dumps(self.published)
        raise slap.NotFoundError(key)

    def getInstanceGuid(self):
        return 'SOFTINST-2'

    def getState(self):
        return 'started'

    def getStatus(self):
        return 'ok'


class FakeMaster:
    """``slap.slap()``, its partition and the master behind them at once."""

    def __init__(self, answer=None, products=None):
        self.answer = answer            # what a requested instance published
        # Software Product -> its releases, the best first
        self.products = products or {}
        self.connections = []           # (server url, computer, partition)
        self.published = []             # (reference, connection dict)
        self.requests = []              # the keyword arguments of request()

    def install(self, monkeypatch):
        monkeypatch.setattr(slap, 'slap', lambda: self)
        return self

    def initializeConnection(self, url, key_file=None, cert_file=None):
        self.url = url

    def registerComputerPartition(self, computer_id, partition_id):
        self.connections.append((self.url, computer_id, partition_id))
        return self

    def setConnectionDict(self, connection_dict, slave_reference=None):
        self.published.append((slave_reference, connection_dict))

    def request(self, software_release, software_type, partition_reference,
                **kw):
        self.requests.append(dict(kw, software_release=software_release,
                                  software_type=software_type,
                                  partition_reference=partition_reference))
        return Instance(self.answer)

    def getSoftwareReleaseListFromSoftwareProduct(
            self, software_product_reference=None, software_release_url=None):
        return self.products.get(software_product_reference, [])

    def publications(self):
        """``[(reference, parameters)]`` in the order published, each
        checked to be JSON-in-XML (one JSON object under ``_``)."""
        decoded = []
        for reference, connection_dict in self.published:
            assert list(connection_dict) == ['_'], connection_dict
            decoded.append((reference, json.loads(connection_dict['_'])))
        return decoded
