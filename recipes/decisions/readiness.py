"""What a partition says while it waits for another instance's answer
(``recipes.stores.waiting`` keeps it, the ``waiting-for`` promise shows
it): one sentence that names what it waits for and what is missing.

A request is answered when the requested instance published every value
asked for (``return``). Until then it waits; an answer that is an error
(a relay that refused a domain: claimed by another, not verified yet) is
not the answer either, and is quoted, since it says what to do.
"""


def request_wait(waiting_for, missing, answer, request_error=None):
    """The sentence of a request that is not answered yet, or None when it
    is. ``waiting_for``: what the answer is (``the relay's answer to the
    order of domain example.com``); ``missing``: the values asked for that
    are not published; ``answer``: what is published (a dict);
    ``request_error``: why the master did not take the request, if so."""
    if request_error:
        return ('waiting for %s: the request is not taken yet (%s)'
                % (waiting_for, request_error))
    if not missing:
        return None
    error = (answer or {}).get('error')
    if error:
        return 'waiting for %s: it answered with an error: %s' % (
            waiting_for, ' '.join(str(error).split()))
    return 'waiting for %s: %s not published yet' % (
        waiting_for, ', '.join(missing))


def default_waiting_for(name, software_type, software_url, shared):
    """What a request waits for, when its section does not say it."""
    return 'the answer of %s%s (software type %s of %s)' % (
        'shared instance ' if shared else 'instance ', name, software_type,
        software_url)
