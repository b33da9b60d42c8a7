"""Which backend each domain of a relay cluster goes to.

A domain is ordered as a shared instance of the cluster. It belongs to the
shared instance that claimed it first; every other claimant gets an error,
published to it only.
"""


def accept(shared_instances):
    """From the schema-valid shared instances ``[{reference, parameters}]``
    (in the order they were claimed), the accepted domains and the errors.

    Returns ``(accepted, errors)``: ``accepted`` is a list of the parameters
    of each accepted shared instance with its ``reference`` added; ``errors``
    maps a reference to its error message."""
    owner = {}
    accepted, errors = [], {}
    for shared in shared_instances:
        reference, parameters = shared['reference'], shared['parameters']
        name = parameters['name'].lower()
        if name in owner:
            errors[reference] = ('domain %s is already claimed by another '
                                 'shared instance' % name)
            continue
        owner[name] = reference
        accepted.append(dict(parameters, name=name, reference=reference))
    return accepted, errors
